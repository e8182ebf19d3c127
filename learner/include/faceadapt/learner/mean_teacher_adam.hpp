// MeanTeacherAdam: one student's optimiser step of the co-training, fused per parameter tensor:
//   g'   = g + 2 alpha (w - w0)                    L2-SP toward the anchor w0 (analytic gradient)
//   w    = Adam(w, g')                             torch::optim::Adam's update
//   mean = lambda mean + (1 - lambda) w            the mean model's EMA (claim 3)
//
// WHAT THIS REPRESENTS
//   A torch::optim::Adam (subclass: same options, same per-parameter state, same save()/load()
//   archive, so checkpoints written with torch::optim::Adam load unchanged) whose step also
//   applies the L2-SP gradient and the EMA. The three were separate passes over every parameter
//   (autograd penalty forward + backward, ~10 Adam tensor ops, 2 EMA ops); here a float32
//   contiguous CPU tensor is read and written once (w, g, w0, m, v, mean). Other tensors (CUDA)
//   take the same update as torch tensor ops, in torch::optim::Adam's order.
//   The update is bit-identical to torch::optim::Adam + ema_update (libtorch 1.13 CPU): the loop
//   performs torch's operations in torch's order with torch's roundings, including the fused
//   multiply-adds of torch's AVX2/AVX512 kernels (add_ with alpha, addcmul_) on CPUs with FMA
//   (a runtime check; ATEN_CPU_CAPABILITY=default would make torch round differently).
//   tests/learner check it within 1e-6 and exactly. The L2-SP gradient is bit-identical to
//   autograd's: 2 alpha is exact in float, so (2 alpha) * d rounds like autograd's alpha * (2 * d).
//   Only parameters are averaged; the students' buffers are copied by copy_buffers() (ema.hpp),
//   FaceResNet has none.
//   Supported: amsgrad off, weight_decay 0 (the co-trainer's Adam; the constructor throws else).
//
//   Per step: configure(alpha, lambda) (the EMA rule changes lambda every step), then either
//   step() (reads each parameter's .grad(), like any torch optimiser), or, to overlap the updates
//   with the backward pass (OverlappedUpdates below): begin_step(); update(i, grad) for each
//   parameter as its gradient is final; finish_step() (steps the parameters update() did not see
//   with their .grad(), if any, and averages them).
//   A parameter without a gradient is not moved by Adam (as torch::optim::Adam skips it) but its
//   mean is still averaged.
// THREAD SAFETY
//   update() may run on another thread for distinct i between begin_step() and finish_step(),
//   while nothing else touches those parameters, their means or this optimiser. Everything else:
//   one thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include <torch/torch.h>

namespace faceadapt::learner {

class MeanTeacherAdam : public torch::optim::Adam {
public:
    // requires: anchors and means hold, for each parameter of every group in order, its L2-SP
    //           anchor and its mean model tensor (same shape, dtype and device as the parameter),
    //           or an undefined tensor (no L2-SP / no EMA for it); empty vectors = none at all.
    // throws:   std::invalid_argument for a length or shape mismatch, amsgrad or weight decay.
    MeanTeacherAdam(std::vector<torch::optim::OptimizerParamGroup> groups, torch::optim::AdamOptions defaults,
                    std::vector<torch::Tensor> anchors, std::vector<torch::Tensor> means);

    // Sets the next steps' L2-SP weight (>= 0) and EMA lambda (in [0, 1]).
    void configure(double l2sp_alpha, double ema_lambda);

    // The whole fused step from each parameter's .grad(). Returns an undefined tensor (no closure).
    torch::Tensor step(LossClosure closure = nullptr) override;

    // The parameters of every group in order (the index i of update()).
    const std::vector<torch::Tensor>& flat_parameters() const { return params_; }

    // Starts a step: creates missing Adam state (as Adam's first step does).
    void begin_step();
    // Updates parameter i from `grad` (its final gradient of this step). See THREAD SAFETY.
    void update(size_t i, const torch::Tensor& grad);
    // Ends the step (see above). Returns sum over anchored parameters of ||w - w0||^2 before the
    // step (the L2-SP penalty without alpha), summed in parameter order.
    double finish_step();

    // ||w - w0||^2 of the last finished step (before its update).
    double last_l2sp_penalty() const { return last_penalty_; }
    // Seconds the last finished step's update() calls took, whichever thread ran them.
    double last_update_seconds() const { return last_seconds_; }

private:
    struct Slot {
        torch::optim::AdamParamState* state = nullptr;
        const torch::optim::AdamOptions* options = nullptr;
        torch::Tensor anchor, mean;
        double penalty = 0.0, seconds = 0.0;
        bool done = false;
    };

    std::vector<torch::Tensor> params_;
    std::vector<Slot> slots_;
    double alpha_ = 0.0, lambda_ = 1.0;
    double last_penalty_ = 0.0, last_seconds_ = 0.0;
};

// Runs MeanTeacherAdam::update() for each parameter on a worker thread as soon as backward has
// its gradient (a tensor hook), so the optimiser and EMA passes overlap the rest of the backward
// pass on the second core. Deterministic: each element's update does not depend on the timing.
// RAII: the constructor registers the hooks and starts the worker; the destructor removes the
// hooks and joins the worker. CPU float32 only (the hook runs a raw loop, no torch op).
// Usage per step: for each opt begin_step(); backward(); wait(); for each opt finish_step().
class OverlappedUpdates {
public:
    explicit OverlappedUpdates(std::vector<MeanTeacherAdam*> optimisers);
    ~OverlappedUpdates();
    OverlappedUpdates(const OverlappedUpdates&) = delete;
    OverlappedUpdates& operator=(const OverlappedUpdates&) = delete;

    // Blocks until every queued update is done; rethrows the first error of the worker.
    void wait();

private:
    void enqueue(std::function<void()> job);
    void work();

    struct Hook {
        torch::Tensor param;
        unsigned index;
    };
    std::vector<Hook> hooks_;
    std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<std::function<void()>> jobs_;
    int running_ = 0;
    bool quit_ = false;
    std::exception_ptr error_;
    std::thread worker_;
};

}  // namespace faceadapt::learner
