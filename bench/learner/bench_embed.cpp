// bench_embed: Embedder throughput (chips/s) on this machine's CPU cores, beside the raw
// forward-pass limit of the same network measured in the same run (input already normalised,
// InferenceMode, no copies), contiguous (NCHW) and channels-last.
//   usage: bench_embed [chips]   (default 256 chips per measurement)
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <thread>
#include <vector>

#include <torch/torch.h>

#include "faceadapt/learner/embedder.hpp"
#include "faceadapt/learner/face_resnet.hpp"
#include "faceadapt/learner/weights_import.hpp"

using namespace faceadapt::learner;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double raw_forward_rate(FaceResNet& net, int batch, int chips, bool channels_last) {
    torch::InferenceMode guard;
    auto x = torch::randn({batch, 3, 150, 150}) * 0.3;
    if (channels_last) x = x.contiguous(torch::MemoryFormat::ChannelsLast);
    net->forward(x);  // warm-up
    const int iters = std::max(1, chips / batch);
    const auto t0 = Clock::now();
    for (int i = 0; i < iters; ++i) net->forward(x);
    return iters * batch / seconds_since(t0);
}

double embedder_rate(const Embedder& e, const std::vector<std::uint8_t>& raw, int chips) {
    e.embed(raw.data(), static_cast<std::size_t>(e.batch()));  // warm-up
    const auto t0 = Clock::now();
    const auto out = e.embed(raw.data(), static_cast<std::size_t>(chips));
    const double rate = chips / seconds_since(t0);
    if (out.size() != static_cast<std::size_t>(chips)) std::abort();
    return rate;
}

}  // namespace

int main(int argc, char** argv) {
    const int chips = argc > 1 ? std::max(64, std::atoi(argv[1])) : 256;
    const bool have_weights = std::filesystem::exists(default_weights_dir() / "model" /
                                                      "face_recognition_model-weights_manifest.json");
    if (!have_weights) {
        std::printf("bench_embed: source weights absent under %s (run scripts/fetch-weights); skipped\n",
                    default_weights_dir().c_str());
        return 0;
    }
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    torch::set_num_threads(static_cast<int>(cores));
    std::printf("bench_embed: %d chips per measurement, %u CPU threads, libtorch %s\n", chips, cores,
                TORCH_VERSION);

    std::vector<std::uint8_t> raw(static_cast<std::size_t>(chips) * 150 * 150 * 3);
    std::mt19937 rng(1);
    for (auto& b : raw) b = static_cast<std::uint8_t>(rng());

    FaceResNet net = load_source_model();
    net->eval();
    double best_raw = 0.0;
    for (int batch : {16, 64}) {
        const double nchw = raw_forward_rate(net, batch, chips, false);
        best_raw = std::max(best_raw, nchw);
        std::printf("raw forward  batch %2d  NCHW          %7.1f chips/s\n", batch, nchw);
    }
    FaceResNet net_cl = clone_face_resnet(net);
    {
        torch::NoGradGuard ng;
        for (auto& p : net_cl->parameters())
            if (p.dim() == 4) p.set_data(p.contiguous(torch::MemoryFormat::ChannelsLast));
    }
    for (int batch : {16, 64}) {
        const double cl = raw_forward_rate(net_cl, batch, chips, true);
        best_raw = std::max(best_raw, cl);
        std::printf("raw forward  batch %2d  channels-last %7.1f chips/s\n", batch, cl);
    }
    for (int batch : {16, 64}) {
        Embedder e({}, "cpu", batch);
        const double rate = embedder_rate(e, raw, chips);
        std::printf("Embedder     batch %2d  (uint8 chips in, embeddings out) %7.1f chips/s = %.2f of the best raw forward\n",
                    batch, rate, rate / best_raw);
    }
    return 0;
}
