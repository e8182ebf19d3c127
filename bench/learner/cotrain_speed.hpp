// The forward/backward limit of the co-training step (shared by bench_cotrain and adapt_benchmark).
#pragma once

#include <algorithm>
#include <chrono>

#include <torch/torch.h>

#include "faceadapt/learner/face_resnet.hpp"

namespace faceadapt::learner::bench {

struct FourNetLimit {
    double images_per_s = 0.0;               // batch / (forward_s + backward_s) of the best repetition
    double forward_s = 0.0, backward_s = 0.0;  // the best repetition's parts
};

// The bare four-net work of one co-training step on one batch of `chips` (net1 and net2
// forward+backward, both mean nets forward): no data loading, losses, optimiser or EMA.
// Best of `reps` after one warm-up.
inline FourNetLimit four_net_limit_parts(const FaceResNet& source, const torch::Tensor& chips, int batch, int reps,
                                         torch::Device device = torch::kCPU) {
    using Clock = std::chrono::steady_clock;
    auto n1 = clone_face_resnet(source), n2 = clone_face_resnet(source);
    auto m1 = clone_face_resnet(source), m2 = clone_face_resnet(source);
    for (auto* n : {&n1, &n2, &m1, &m2}) (*n)->to(device);
    n1->train();
    n2->train();
    const auto x1 = chips_to_input(chips.slice(0, 0, batch)).to(device), x2 = x1.flip({3}).contiguous();
    auto sync = [&] {
        if (device.is_cuda()) torch::cuda::synchronize();
    };
    FourNetLimit best;
    double best_s = 1e30;
    for (int r = 0; r < reps + 1; ++r) {
        const auto t0 = Clock::now();
        auto loss = n1->forward(x1).pow(2).sum() + n2->forward(x2).pow(2).sum();
        {
            torch::NoGradGuard ng;
            m1->forward(x1);
            m2->forward(x2);
        }
        sync();
        const auto t1 = Clock::now();
        loss.backward();
        sync();
        const double f = std::chrono::duration<double>(t1 - t0).count();
        const double b = std::chrono::duration<double>(Clock::now() - t1).count();
        if (r > 0 && f + b < best_s) best_s = f + b, best = {batch / (f + b), f, b};
    }
    return best;
}

// Images/s of four_net_limit_parts().
inline double four_net_limit(const FaceResNet& source, const torch::Tensor& chips, int batch, int reps,
                             torch::Device device = torch::kCPU) {
    return four_net_limit_parts(source, chips, batch, reps, device).images_per_s;
}

}  // namespace faceadapt::learner::bench
