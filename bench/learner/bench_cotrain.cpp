// bench_cotrain: throughput of the full MMT co-training step (4 nets, losses, EMA, prefetched
// augmentation) against the bare forward/backward limit of the same four nets on the same batch
// (target ratio >= 0.9). Synthetic chips; the source weights when present, else random init.
// Optional arguments: device (cpu|cuda), iterations, batch ids P (K = 4). BENCH_COTRAIN_LOG=1 prints
// the trainer's progress lines (the running images/s after each step; the first step is the slowest).
#include <cstdio>
#include <algorithm>
#include <cstdlib>
#include <string>

#include <torch/torch.h>

#include "cotrain_speed.hpp"
#include "faceadapt/learner/cotrainer.hpp"
#include "faceadapt/learner/weights_import.hpp"

namespace fl = faceadapt::learner;

int main(int argc, char** argv) {
    const std::string device = argc > 1 ? argv[1] : "cpu";
    const int iters = argc > 2 ? std::atoi(argv[2]) : 6;
    const int p = argc > 3 ? std::atoi(argv[3]) : 8;
    fl::FaceResNet source{nullptr};
    try {
        source = fl::load_source_model();
    } catch (const std::exception& e) {
        std::printf("source weights unavailable (%s): random init\n", e.what());
        source = fl::FaceResNet(fl::FaceResNetOptions{});
    }
    // 16 synthetic identities x 8 chips: a smooth random pattern each plus noise.
    auto gen = at::detail::createCPUGenerator(1);
    const auto ids = at::rand({16, 3, 12, 12}, gen) * 200;
    const auto up = torch::nn::functional::interpolate(
        ids.repeat_interleave(8, 0),
        torch::nn::functional::InterpolateFuncOptions().size(std::vector<int64_t>{150, 150}).mode(torch::kBilinear).align_corners(false));
    const auto chips = (up.permute({0, 2, 3, 1}) + at::randn({128, 150, 150, 3}, gen) * 10).clamp(0, 255).to(torch::kUInt8).contiguous();

    fl::CoTrainOptions o;
    o.device = device;
    o.cycles = 1;
    o.iters = iters;
    o.batch_ids = p;
    o.cluster.method = "kmeans";
    o.cluster.kmeans_k = 16;
    fl::CoTrainer t(source, fl::enhance_chips(chips, fl::kFirstViewSpec), fl::enhance_chips(chips, fl::kSecondViewSpec), o);
    if (std::getenv("BENCH_COTRAIN_LOG")) t.set_log([](const std::string& l) { std::printf("%s\n", l.c_str()); });
    const auto r = t.run();
    const auto& c = r.cycles.at(0);
    const double step = fl::bench::median_step_images_per_s(c.step_seconds, p * 4);
    const auto limit = fl::bench::four_net_limit_parts(source, chips, p * 4, std::max(3, iters - 1),
                                                       torch::Device(device == "cuda" ? torch::kCUDA : torch::kCPU));
    std::printf("cotrain %s batch %dx4, torch threads %d: full co-training step %.1f images/s (median of %d steps after "
                "the first; mean of all %.1f; prefetch wait %.2f s), four-net forward/backward limit %.1f images/s "
                "(median of %d after a warm-up; best %.1f), ratio %.2f (target >= 0.9)\n",
                device.c_str(), p, at::get_num_threads(), step, iters - 1, c.images_per_s, c.prefetch_wait_s,
                limit.images_per_s, std::max(3, iters - 1), limit.best_images_per_s, step / limit.images_per_s);
    std::printf("step breakdown: %s\n", c.step_times.text(c.steps_timed).c_str());
    std::printf("limit breakdown: forward %.1f, backward %.1f ms (the median repetition)\n", limit.forward_s * 1e3,
                limit.backward_s * 1e3);
    return 0;
}
