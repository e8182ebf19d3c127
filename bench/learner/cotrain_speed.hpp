// The forward/backward limit of the co-training step (shared by bench_cotrain and adapt_benchmark).
#pragma once

#include <algorithm>
#include <chrono>
#include <vector>

#include <torch/torch.h>

#include "faceadapt/learner/face_resnet.hpp"

namespace faceadapt::learner::bench {

struct FourNetLimit {
    double images_per_s = 0.0;                 // batch / the median repetition's seconds
    double best_images_per_s = 0.0;            // batch / the fastest repetition's seconds
    double forward_s = 0.0, backward_s = 0.0;  // the median repetition's parts
};

// The median of `seconds` (a copy is sorted); 0 when empty.
inline double median_seconds(std::vector<double> seconds) {
    if (seconds.empty()) return 0.0;
    const auto mid = seconds.begin() + static_cast<std::ptrdiff_t>(seconds.size() / 2);
    std::nth_element(seconds.begin(), mid, seconds.end());
    return *mid;
}

// Images/s of the median co-training step, leaving out the first (warm-up) step as the limit
// leaves out its warm-up repetition; medians on both sides keep a load spike on the shared
// machine from deciding the ratio.
inline double median_step_images_per_s(const std::vector<double>& step_seconds, int batch) {
    if (step_seconds.size() < 2) return step_seconds.empty() ? 0.0 : batch / step_seconds.front();
    const double m = median_seconds(std::vector<double>(step_seconds.begin() + 1, step_seconds.end()));
    return m > 0 ? batch / m : 0.0;
}

// The bare four-net work of one co-training step on one batch of `chips` (net1 and net2
// forward+backward, both mean nets forward): no data loading, losses, optimiser or EMA.
// Median (and best) of `reps` after one warm-up.
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
    std::vector<double> total, forward, backward;
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
        if (r > 0) total.push_back(f + b), forward.push_back(f), backward.push_back(b);
    }
    FourNetLimit out;
    const double median = median_seconds(total);
    const auto at = std::find(total.begin(), total.end(), median) - total.begin();
    out.images_per_s = median > 0 ? batch / median : 0.0;
    out.best_images_per_s = batch / *std::min_element(total.begin(), total.end());
    out.forward_s = forward[static_cast<std::size_t>(at)];
    out.backward_s = backward[static_cast<std::size_t>(at)];
    return out;
}

// Images/s of four_net_limit_parts().
inline double four_net_limit(const FaceResNet& source, const torch::Tensor& chips, int batch, int reps,
                             torch::Device device = torch::kCPU) {
    return four_net_limit_parts(source, chips, batch, reps, device).images_per_s;
}

}  // namespace faceadapt::learner::bench
