// bench_door: the torch-free door (faceadapt-door: ONNX on OpenCV DNN) side by side with the
// libtorch door of before issue 16 (faceadapt-door-libtorch), as processes:
//   binary size, shared libraries (count and bytes, from ldd), idle RSS of `run` connected to a
//   real mosquitto on loopback, peak RSS of `match`, match latency per face on 1 thread (the
//   embedding alone, mean of 20 after a first one; and detection + alignment), package sizes
//   (ONNX float32, ONNX float16, libtorch), and the float16 package's distance error. Leaves
//   the two ONNX packages in <build>/bench/door/packages/ for scripts/run-benchmarks.
// Usage: bench_door [--repeat N]   (default 20). Needs the built tools and scripts/fetch-weights.
#include <sys/types.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "mosquitto_fixture.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using faceadapt::test::run_command;

namespace {

std::string tool(const std::string& name) { return (faceadapt::test::binary_dir() / "tools" / name).string(); }

void must(const std::string& command) {
    std::string out;
    if (run_command(command, &out) != 0) throw std::runtime_error("failed: " + command + "\n" + out);
}

struct Libraries {
    int count = 0;
    double mb = 0;
};

Libraries shared_libraries(const std::string& binary) {
    std::string out;
    run_command("ldd " + binary, &out);
    Libraries l;
    std::istringstream lines(out);
    for (std::string line; std::getline(lines, line);) {
        auto arrow = line.find("=> /");
        if (arrow == std::string::npos) continue;
        auto path = line.substr(arrow + 3, line.find(" (", arrow) - arrow - 3);
        std::error_code ec;
        auto size = fs::file_size(path, ec);  // follows the symlink
        if (ec) continue;
        ++l.count;
        l.mb += static_cast<double>(size) / 1e6;
    }
    return l;
}

long vm_rss_kb(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(in, line);)
        if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    return -1;
}

// Idle RSS of `door run`, connected to `broker_url`, once its log says it runs and its RSS has
// not changed over 5 reads 200 ms apart.
long idle_rss_kb(const std::string& door, const std::string& broker_url, const fs::path& pub, const fs::path& dir,
                 const fs::path& work) {
    const auto log = work / (fs::path(door).filename().string() + ".log"), pid_file = work / "pid";
    must("sh -c '" + door + " run --broker " + broker_url + " --site bench --door d1 --pubkey " + pub.string() +
         " --dir " + dir.string() + " > " + log.string() + " 2>&1 & echo $! > " + pid_file.string() + "'");
    pid_t pid = -1;
    std::ifstream(pid_file) >> pid;
    long rss = -1;
    for (int i = 0, stable = 0; i < 300 && stable < 5; ++i) {
        std::this_thread::sleep_for(200ms);
        std::ifstream in(log);
        std::string text((std::istreambuf_iterator<char>(in)), {});
        if (text.find("running") == std::string::npos) continue;
        const long now = vm_rss_kb(pid);
        stable = now == rss ? stable + 1 : 0;
        rss = now;
    }
    ::kill(pid, SIGTERM);
    for (int i = 0; i < 200 && ::kill(pid, 0) == 0; ++i) std::this_thread::sleep_for(25ms);
    return rss;
}

nlohmann::json match(const std::string& door, const fs::path& dir, const fs::path& photo, int repeat) {
    std::string out;
    if (run_command(door + " match --json --threads 1 --repeat " + std::to_string(repeat) + " " + photo.string() +
                        " --dir " + dir.string(), &out) != 0)
        throw std::runtime_error(door + " match failed:\n" + out);
    return nlohmann::json::parse(out.substr(out.find('{')));
}

}  // namespace

int main(int argc, char** argv) {
    int repeat = 20;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--repeat") && i + 1 < argc) repeat = std::max(2, std::atoi(argv[++i]));
        else {
            std::fprintf(stderr, "usage: bench_door [--repeat N]\n");
            return 2;
        }
    }
    const auto demo = faceadapt::test::weights_dir() / "demo";
    for (const auto& t : {tool("faceadapt"), tool("faceadapt-door"), tool("faceadapt-door-libtorch")})
        if (!fs::exists(t)) {
            std::printf("bench_door: skipped, %s is not built\n", t.c_str());
            return 0;
        }
    if (!fs::exists(demo / "sample1.jpg")) {
        std::printf("bench_door: skipped, no demo photos in %s (scripts/fetch-weights)\n", demo.c_str());
        return 0;
    }
    faceadapt::test::TempDir tmp;
    const auto t = tmp.path();
    must(tool("faceadapt") + " keygen --out " + (t / "keys").string());
    fs::create_directories(t / "gallery" / "one");
    fs::copy_file(demo / "sample1.jpg", t / "gallery" / "one" / "a.jpg");
    const std::string common = " --key " + (t / "keys").string() + " --site bench --version 1 --threshold 0.6 --gallery " + (t / "gallery").string();
    must(tool("faceadapt") + " package" + common + " --out " + (t / "onnx32.fapkg").string());
    must(tool("faceadapt") + " package" + common + " --weights float16 --out " + (t / "onnx16.fapkg").string());
    must(tool("faceadapt") + " package" + common + " --model-format libtorch --out " + (t / "torch.fapkg").string());
    const auto pub = t / "keys" / "signing.pub";
    must(tool("faceadapt-door") + " install " + (t / "onnx32.fapkg").string() + " --dir " + (t / "d32").string() +
         " --pubkey " + pub.string() + " --site bench");
    must(tool("faceadapt-door") + " install " + (t / "onnx16.fapkg").string() + " --dir " + (t / "d16").string() +
         " --pubkey " + pub.string() + " --site bench");
    must(tool("faceadapt-door-libtorch") + " install " + (t / "torch.fapkg").string() + " --dir " + (t / "dt").string() +
         " --pubkey " + pub.string() + " --site bench");

    faceadapt::test::Mosquitto broker;
    const auto onnx_libs = shared_libraries(tool("faceadapt-door"));
    const auto torch_libs = shared_libraries(tool("faceadapt-door-libtorch"));
    const long onnx_idle = idle_rss_kb(tool("faceadapt-door"), broker.url(), pub, t / "d32", t);
    const long torch_idle = idle_rss_kb(tool("faceadapt-door-libtorch"), broker.url(), pub, t / "dt", t);
    const auto photo = demo / "sample2.jpg";
    const auto m32 = match(tool("faceadapt-door"), t / "d32", photo, repeat);
    const auto m16 = match(tool("faceadapt-door"), t / "d16", photo, repeat);
    const auto mt = match(tool("faceadapt-door-libtorch"), t / "dt", photo, repeat);

    auto mb = [](const fs::path& p) { return static_cast<double>(fs::file_size(p)) / 1e6; };
    std::printf("bench_door: torch-free door (ONNX, OpenCV DNN) vs the libtorch door; match of %s, 1 thread, "
                "embedding mean of %d (%u cores)\n", photo.filename().c_str(), repeat - 1, std::thread::hardware_concurrency());
    std::printf("%-34s %16s %16s %8s\n", "", "faceadapt-door", "door-libtorch", "ratio");
    auto row = [](const char* what, double a, double b, const char* unit) {
        std::printf("%-34s %13.1f %-2s %13.1f %-2s %8.2f\n", what, a, unit, b, unit, b != 0 ? a / b : 0.0);
    };
    row("binary size", mb(tool("faceadapt-door")), mb(tool("faceadapt-door-libtorch")), "MB");
    row("shared libraries (ldd), count", onnx_libs.count, torch_libs.count, "");
    row("shared libraries (ldd), bytes", onnx_libs.mb, torch_libs.mb, "MB");
    row("idle RSS (run, connected)", onnx_idle / 1024.0, torch_idle / 1024.0, "MB");
    row("peak RSS during match", m32["max_rss_kb"].get<double>() / 1024.0, mt["max_rss_kb"].get<double>() / 1024.0, "MB");
    row("match: embedding per face, 1 thread", m32["embed_ms"].get<double>(), mt["embed_ms"].get<double>(), "ms");
    row("match: first embedding", m32["first_embed_ms"].get<double>(), mt["first_embed_ms"].get<double>(), "ms");
    row("match: model load", m32["load_ms"].get<double>(), mt["load_ms"].get<double>(), "ms");
    row("match: detect + align (dlib)", m32["detect_align_ms"].get<double>(), mt["detect_align_ms"].get<double>(), "ms");
    row("package (ONNX float32 | libtorch)", mb(t / "onnx32.fapkg"), mb(t / "torch.fapkg"), "MB");
    std::printf("package with ONNX float16 weights: %.1f MB (%.2f of float32); its match distance %.6f vs %.6f float32 "
                "(difference %.2g), same decision: %s; embedding %.1f ms per face\n",
                mb(t / "onnx16.fapkg"), mb(t / "onnx16.fapkg") / mb(t / "onnx32.fapkg"), m16["distance"].get<double>(),
                m32["distance"].get<double>(), std::abs(m16["distance"].get<double>() - m32["distance"].get<double>()),
                m16["matched"] == m32["matched"] ? "yes" : "no", m16["embed_ms"].get<double>());
    std::printf("distance ONNX float32 door %.6f vs libtorch door %.6f (difference %.2g)\n", m32["distance"].get<double>(),
                mt["distance"].get<double>(), std::abs(m32["distance"].get<double>() - mt["distance"].get<double>()));
    std::printf("targets: idle RSS ratio %.2f (under 0.5 wanted), embedding latency ratio %.2f (at most 1 wanted)\n",
                double(onnx_idle) / double(torch_idle), m32["embed_ms"].get<double>() / mt["embed_ms"].get<double>());
    std::fflush(stdout);
    // Kept for scripts/run-benchmarks, which delivers them to 100 doors with bench_publish.
    const auto keep = faceadapt::test::binary_dir() / "bench" / "door" / "packages";
    fs::create_directories(keep);
    fs::copy_file(t / "onnx16.fapkg", keep / "float16.fapkg", fs::copy_options::overwrite_existing);
    fs::copy_file(t / "onnx32.fapkg", keep / "float32.fapkg", fs::copy_options::overwrite_existing);
    return 0;
}
