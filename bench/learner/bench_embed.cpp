// bench_embed: Embedder throughput (chips/s) on this machine's CPU cores, beside the raw
// forward-pass limit of the same network measured in the same run (input already normalised,
// InferenceMode, no copies), contiguous (NCHW) and channels-last.
//   usage: bench_embed [chips]   (default 256 chips per measurement)
#include <sys/resource.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
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

// Process CPU seconds (all threads): CPU ms per chip stays meaningful when other jobs share the
// cores and wall-clock chips/s does not.
double cpu_seconds() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return u.ru_utime.tv_sec + u.ru_stime.tv_sec + 1e-6 * (u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

struct Rate {
    double chips_per_s = 0.0;
    double cpu_ms_per_chip = 0.0;
};

std::string load_average() {
    std::FILE* f = std::fopen("/proc/loadavg", "r");
    if (!f) return "?";
    char buf[64] = {0};
    if (!std::fgets(buf, sizeof buf, f)) buf[0] = 0;
    std::fclose(f);
    std::string s(buf);
    return s.substr(0, s.find(' '));
}

Rate raw_forward_rate(FaceResNet& net, int batch, int chips, bool channels_last) {
    torch::InferenceMode guard;
    auto x = torch::randn({batch, 3, 150, 150}) * 0.3;
    if (channels_last) x = x.contiguous(torch::MemoryFormat::ChannelsLast);
    net->forward(x);  // warm-up
    const int iters = std::max(1, chips / batch);
    const auto t0 = Clock::now();
    const double c0 = cpu_seconds();
    for (int i = 0; i < iters; ++i) net->forward(x);
    const double n = static_cast<double>(iters) * batch;
    return {n / seconds_since(t0), 1e3 * (cpu_seconds() - c0) / n};
}

Rate embedder_rate(const Embedder& e, const std::vector<std::uint8_t>& raw, int chips) {
    e.embed(raw.data(), static_cast<std::size_t>(e.batch()));  // warm-up
    const auto t0 = Clock::now();
    const double c0 = cpu_seconds();
    const auto out = e.embed(raw.data(), static_cast<std::size_t>(chips));
    const Rate r{chips / seconds_since(t0), 1e3 * (cpu_seconds() - c0) / chips};
    if (out.size() != static_cast<std::size_t>(chips)) std::abort();
    return r;
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

    std::printf("load average at start %s (wall chips/s is only meaningful when it is below the core count;\n"
                "CPU ms per chip is the contention-robust figure)\n", load_average().c_str());
    FaceResNet net = load_source_model();
    net->eval();
    FaceResNet net_cl = clone_face_resnet(net);
    {
        torch::NoGradGuard ng;
        for (auto& p : net_cl->parameters())
            if (p.dim() == 4) p.set_data(p.contiguous(torch::MemoryFormat::ChannelsLast));
    }
    double best_raw = 0.0;
    for (int batch : {16, 64}) {
        for (bool cl : {false, true}) {
            const Rate r = raw_forward_rate(cl ? net_cl : net, batch, chips, cl);
            best_raw = std::max(best_raw, r.chips_per_s);
            std::printf("raw forward  batch %2d  %-13s %7.1f chips/s  %6.1f CPU ms/chip\n", batch,
                        cl ? "channels-last" : "NCHW", r.chips_per_s, r.cpu_ms_per_chip);
        }
    }
    for (int batch : {16, 64}) {
        Embedder e({}, "cpu", batch);
        const Rate r = embedder_rate(e, raw, chips);
        std::printf("Embedder     batch %2d  (uint8 chips in) %7.1f chips/s  %6.1f CPU ms/chip  = %.2f of the best raw forward\n",
                    batch, r.chips_per_s, r.cpu_ms_per_chip, r.chips_per_s / best_raw);
    }
    std::printf("load average at end %s\n", load_average().c_str());
    return 0;
}
