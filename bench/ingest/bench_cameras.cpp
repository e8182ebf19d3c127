// bench_cameras: how many 720p H.264 25 fps RTSP cameras this machine sustains at detect 5 fps,
// and the CPU cost per camera of
//   bare    rtspsrc ! decodebin ! fakesink                         (the floor: network + decode)
//   naive   rtspsrc ! decodebin ! videoconvert ! BGR ! fakesink    (converting every frame)
//   source  CameraSource: decode, sample 5 fps, BGR on sampled frames only
//   full    FacePipeline with the real FaceStage (motion-gated HOG, landmarks, chips)
// all measured in this one run against the same streams. "Sustained" = the face workers keep
// up (no growing queue): >= 95% of the offered 5 fps x N frames processed in the window and at
// most 2% of them dropped from the bounded queues.
//
// The cameras are a child process (this executable with --serve) running RtspTestServer with
// one mount per camera, passing a 720p25 H.264 file through (no encoding in the measurement).
// The file is made once from ../shared/datasets/videos/walkers-1080p.mp4 (or, when absent, from
// a synthetic test pattern) and cached beside this executable.
//
// Usage: bench_cameras [--window S] [--max-cameras N]   (defaults 8 s, 12)
// CPU is process CPU time (getrusage) over the window, in cores (1.0 = one core busy).
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <gst/gst.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include "faceadapt/ingest/camera_source.hpp"
#include "faceadapt/ingest/face_pipeline.hpp"
#include "faceadapt/ingest/rtsp_test_server.hpp"

extern char** environ;

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using namespace faceadapt;

namespace {

constexpr double kDetectFps = 5.0;
constexpr double kStreamFps = 25.0;

double process_cpu_s() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

double thread_cpu_s() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

double child_cpu_s(pid_t pid) {  // utime + stime of a child from /proc
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(f)), {});
    const auto close = stat.rfind(')');
    if (close == std::string::npos) return 0.0;
    std::vector<std::string> fields;
    std::string field;
    for (char c : stat.substr(close + 2)) {
        if (c == ' ') {
            fields.push_back(field);
            field.clear();
        } else {
            field += c;
        }
    }
    if (fields.size() < 13) return 0.0;
    const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
    return (std::stod(fields[11]) + std::stod(fields[12])) / ticks;  // fields 14, 15 of stat
}

double load_average() {
    double l[1] = {0};
    return getloadavg(l, 1) == 1 ? l[0] : -1;
}

int free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(fd);
    return ntohs(a.sin_port);
}

bool port_accepts(int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    return ok;
}

// Runs a gst-launch style pipeline to EOS; returns "" or the error.
std::string run_to_eos(const std::string& description) {
    GError* error = nullptr;
    GstElement* p = gst_parse_launch(description.c_str(), &error);
    if (error) {
        std::string e = error->message;
        g_error_free(error);
        return e;
    }
    gst_element_set_state(p, GST_STATE_PLAYING);
    GstBus* bus = gst_element_get_bus(p);
    GstMessage* m = gst_bus_timed_pop_filtered(bus, 600 * GST_SECOND,
                                               static_cast<GstMessageType>(GST_MESSAGE_EOS | GST_MESSAGE_ERROR));
    std::string result = !m ? "timeout" : GST_MESSAGE_TYPE(m) == GST_MESSAGE_EOS ? "" : "pipeline error";
    if (m) gst_message_unref(m);
    gst_object_unref(bus);
    gst_element_set_state(p, GST_STATE_NULL);
    gst_object_unref(p);
    return result;
}

// The 720p25 H.264 clip the cameras stream (made once, cached beside the executable).
fs::path prepare_clip(std::string& origin) {
    const fs::path dir = fs::read_symlink("/proc/self/exe").parent_path();
    const fs::path walkers = fs::path(FACEADAPT_SHARED_DIR) / "datasets" / "videos" / "walkers-1080p.mp4";
    const bool have_walkers = fs::exists(walkers);
    origin = have_walkers ? walkers.string() + " scaled to 1280x720" : "videotestsrc (walkers-1080p.mp4 absent)";
    const fs::path clip = dir / (have_walkers ? "bench-walkers-720p25.mp4" : "bench-pattern-720p25.mp4");
    if (fs::exists(clip) && fs::file_size(clip) > 0) return clip;
    const std::string encode =
        " ! videoconvert ! videoscale ! videorate ! video/x-raw,format=I420,width=1280,height=720,framerate=25/1"
        " ! x264enc speed-preset=veryfast tune=zerolatency key-int-max=50 bitrate=2500 ! h264parse ! mp4mux"
        " ! filesink location=\"" + (clip.string() + ".part") + "\"";
    const std::string src = have_walkers ? "filesrc location=\"" + walkers.string() + "\" ! decodebin"
                                         : "videotestsrc pattern=ball num-buffers=500";
    std::cout << "preparing " << clip << " (once) ..." << std::endl;
    if (auto e = run_to_eos(src + encode); !e.empty()) throw std::runtime_error("cannot prepare the clip: " + e);
    fs::rename(clip.string() + ".part", clip);
    return clip;
}

int serve_main(char** argv) {
    // --serve PORT FILE N
    spdlog::set_level(spdlog::level::warn);
    ingest::RtspServerOptions o;
    o.port = std::stoi(argv[2]);
    const int n = std::stoi(argv[4]);
    for (int i = 0; i < n; ++i) {
        ingest::RtspMount m;
        m.path = "/cam" + std::to_string(i);
        m.source = argv[3];
        o.mounts.push_back(m);
    }
    ingest::RtspTestServer::serve_until_signal(o);
    return 0;
}

struct Measure {
    double cpu_cores = 0;          // process CPU over the window / window
    double fps_per_camera = 0;     // decoded (bare, source) or processed (full) frames / s / camera
    std::uint64_t drops = 0;       // full: frames dropped from queues in the window
    double faces_per_s = 0;        // full
    double detect_cores = 0;       // full: CPU of the face stage calls / window
    double stage_ms = 0;           // full: CPU ms per processed frame
    bool all_streaming = true;
};

// Runs `setup` (which starts N cameras), lets them settle, then measures a window.
template <typename Counters>
Measure measure(double window_s, Counters&& counters) {
    std::this_thread::sleep_for(3s);  // connect, first key frame, queues fill
    auto [f0, d0, faces0, det0] = counters();
    const double c0 = process_cpu_s();
    const auto t0 = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(std::chrono::duration<double>(window_s));
    auto [f1, d1, faces1, det1] = counters();
    const double c1 = process_cpu_s();
    const double w = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    Measure m;
    m.cpu_cores = (c1 - c0) / w;
    m.fps_per_camera = static_cast<double>(f1 - f0) / w;  // caller divides by N
    m.drops = d1 - d0;
    m.faces_per_s = static_cast<double>(faces1 - faces0) / w;
    m.detect_cores = (det1 - det0) / w;
    m.stage_ms = f1 > f0 ? (det1 - det0) * 1000.0 / static_cast<double>(f1 - f0) : 0;
    return m;
}

using Tally = std::tuple<std::uint64_t, std::uint64_t, std::uint64_t, double>;

// N plain GStreamer pipelines `rtspsrc ! decodebin ! <tail>` whose sink is named "sink".
Measure plain_pipelines(const std::string& base_url, int n, double window_s, const std::string& tail) {
    std::vector<GstElement*> pipelines;
    std::atomic<std::uint64_t> frames{0};
    for (int i = 0; i < n; ++i) {
        const std::string d = "rtspsrc location=" + base_url + std::to_string(i) +
                              " protocols=tcp latency=200 ! decodebin ! " + tail;
        GstElement* p = gst_parse_launch(d.c_str(), nullptr);
        GstElement* sink = gst_bin_get_by_name(GST_BIN(p), "sink");
        GstPad* pad = gst_element_get_static_pad(sink, "sink");
        gst_pad_add_probe(
            pad, GST_PAD_PROBE_TYPE_BUFFER,
            [](GstPad*, GstPadProbeInfo*, gpointer c) {
                ++*static_cast<std::atomic<std::uint64_t>*>(c);
                return GST_PAD_PROBE_OK;
            },
            &frames, nullptr);
        gst_object_unref(pad);
        gst_object_unref(sink);
        gst_element_set_state(p, GST_STATE_PLAYING);
        pipelines.push_back(p);
    }
    Measure m = measure(window_s, [&] { return Tally{frames.load(), 0, 0, 0.0}; });
    for (auto* p : pipelines) {
        gst_element_set_state(p, GST_STATE_NULL);
        gst_object_unref(p);
    }
    m.fps_per_camera /= n;
    return m;
}

config::CameraConfig bench_camera(const std::string& base_url, int i) {
    config::CameraConfig c;
    c.id = "cam" + std::to_string(i);
    c.url = base_url + std::to_string(i);
    c.detect_fps = kDetectFps;
    return c;
}

Measure source_only(const std::string& base_url, int n, double window_s) {
    std::vector<std::unique_ptr<ingest::CameraSource>> cams;
    std::atomic<std::uint64_t> frames{0};
    for (int i = 0; i < n; ++i) {
        cams.push_back(std::make_unique<ingest::CameraSource>(bench_camera(base_url, i), [&](ingest::Frame&&) { ++frames; }));
        cams.back()->start();
    }
    Measure m = measure(window_s, [&] {
        std::uint64_t decoded = 0;
        for (auto& c : cams) decoded += c->stats().decoded;
        return Tally{decoded, 0, frames.load(), 0.0};
    });
    for (auto& c : cams) c->request_stop();
    for (auto& c : cams) m.all_streaming &= c->stats().state == ingest::CameraState::streaming;
    cams.clear();
    m.fps_per_camera /= n;
    m.faces_per_s /= n;  // here: sampled frames per s per camera
    return m;
}

Measure full_pipeline(const std::string& base_url, int n, double window_s, const config::DetectConfig& detect) {
    std::vector<config::CameraConfig> cams;
    for (int i = 0; i < n; ++i) cams.push_back(bench_camera(base_url, i));
    std::mutex mutex;
    double stage_cpu = 0;
    auto stage = ingest::face_stage_factory(detect);
    auto timed = [&](const config::CameraConfig& c) -> ingest::FrameProcessor {
        auto inner = stage(c);
        return [&, inner](const ingest::Frame& f) {
            const double t0 = thread_cpu_s();
            auto out = inner(f);
            const double dt = thread_cpu_s() - t0;
            std::lock_guard lock(mutex);
            stage_cpu += dt;
            return out;
        };
    };
    std::atomic<std::uint64_t> faces{0};
    ingest::FacePipeline pipeline(cams, detect, [&](ingest::FaceObservation&&) { ++faces; }, timed);
    pipeline.start();
    Measure m = measure(window_s, [&] {
        std::uint64_t processed = 0, drops = 0;
        for (const auto& s : pipeline.stats()) {
            processed += s.processed;
            drops += s.drops;
        }
        std::lock_guard lock(mutex);
        return Tally{processed, drops, faces.load(), stage_cpu};
    });
    for (const auto& s : pipeline.stats()) m.all_streaming &= s.source.state == ingest::CameraState::streaming;
    pipeline.stop();
    m.fps_per_camera /= n;
    return m;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc > 1 && std::strcmp(argv[1], "--serve") == 0) return serve_main(argv);
    double window_s = 8.0;
    int max_cameras = 12;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (std::strcmp(argv[i], "--window") == 0) window_s = std::stod(argv[i + 1]);
        if (std::strcmp(argv[i], "--max-cameras") == 0) max_cameras = std::stoi(argv[i + 1]);
    }
    spdlog::set_level(spdlog::level::warn);
    gst_init(&argc, &argv);
    std::string origin;
    const fs::path clip = prepare_clip(origin);

    const int port = free_port();
    std::vector<std::string> words{"/proc/self/exe", "--serve", std::to_string(port), clip.string(),
                                   std::to_string(max_cameras)};
    std::vector<char*> args;
    for (auto& w : words) args.push_back(w.data());
    args.push_back(nullptr);
    pid_t server = -1;
    if (posix_spawn(&server, "/proc/self/exe", nullptr, nullptr, args.data(), environ) != 0) {
        std::cerr << "cannot start the camera server\n";
        return 1;
    }
    for (int i = 0; i < 300 && !port_accepts(port); ++i) std::this_thread::sleep_for(50ms);
    const std::string base = "rtsp://127.0.0.1:" + std::to_string(port) + "/cam";

    const unsigned cores = std::thread::hardware_concurrency();
    std::printf("bench_cameras: 720p H.264 %.0f fps RTSP cameras on loopback (%s), detect %.0f fps\n", kStreamFps,
                origin.c_str(), kDetectFps);
    std::printf("machine: %u cores, load average %.2f at start (a shared machine makes these figures noisy)\n",
                cores, load_average());
    std::printf("window %.0f s per measurement; CPU in cores of this process (server in its own process)\n\n",
                window_s);

    config::DetectConfig detect;  // defaults: min_face_px 80, motion gating, workers = cores, queue 4
    const int n_ref = std::min(8, max_cameras);
    const double server0 = child_cpu_s(server);
    const auto t_server0 = std::chrono::steady_clock::now();
    const Measure bare = plain_pipelines(base, n_ref, window_s, "fakesink name=sink sync=false");
    const Measure naive = plain_pipelines(base, n_ref, window_s,
                                          "videoconvert ! video/x-raw,format=BGR ! fakesink name=sink sync=false");
    const Measure src = source_only(base, n_ref, window_s);
    const double server_cores = (child_cpu_s(server) - server0) /
                                std::chrono::duration<double>(std::chrono::steady_clock::now() - t_server0).count();
    std::printf("%-44s %8s %10s %12s\n", ("stage (N = " + std::to_string(n_ref) + " cameras)").c_str(), "cores", "per cam", "fps/cam");
    std::printf("%-44s %8.2f %10.3f %12.1f\n", "bare decode rtspsrc ! decodebin ! fakesink", bare.cpu_cores,
                bare.cpu_cores / n_ref, bare.fps_per_camera);
    std::printf("%-44s %8.2f %10.3f %12.1f\n", "decode + BGR on every frame (not used)", naive.cpu_cores,
                naive.cpu_cores / n_ref, naive.fps_per_camera);
    std::printf("%-44s %8.2f %10.3f %12.1f (sampled %.1f fps)\n", "CameraSource (decode + 5 fps BGR)", src.cpu_cores,
                src.cpu_cores / n_ref, src.fps_per_camera, src.faces_per_s);
    std::printf("source / bare decode CPU ratio: %.2f   (server process: %.2f cores for %d streams)\n\n",
                bare.cpu_cores > 0 ? src.cpu_cores / bare.cpu_cores : 0.0, server_cores, n_ref);

    std::printf("%5s %8s %10s %10s %10s %8s %9s %10s %12s %s\n", "N", "cores", "per cam", "detect", "ms/frame",
                "fps/cam", "drops", "faces/s", "full/(bare+det)", "sustained");
    int sustained_max = 0;
    Measure at_ref;
    double stage_cpu_per_frame = 0;  // lowest CPU seconds of the face stage per processed frame
    for (int n : {2, 4, 6, 8, 10, 12}) {
        if (n > max_cameras) break;
        const Measure full = full_pipeline(base, n, window_s, detect);
        const double bare_n = bare.cpu_cores / n_ref * n;  // bare decode scales per camera
        const double ratio = full.cpu_cores / (bare_n + full.detect_cores);
        // Steady state: the workers keep up with what the cameras offer (a frame or two dropped
        // in a burst is not a growing queue).
        const double offered = kDetectFps * n * window_s;
        const bool ok = full.all_streaming && full.fps_per_camera >= 0.95 * kDetectFps &&
                        static_cast<double>(full.drops) <= 0.02 * offered;
        if (ok) sustained_max = n;
        // Contention inflates CPU time per frame (shared caches, SMT): keep the lowest seen.
        if (full.stage_ms > 0 && (stage_cpu_per_frame == 0 || full.stage_ms / 1000.0 < stage_cpu_per_frame))
            stage_cpu_per_frame = full.stage_ms / 1000.0;
        std::printf("%5d %8.2f %10.3f %10.2f %10.1f %8.2f %9llu %10.1f %12.2f %s\n", n, full.cpu_cores,
                    full.cpu_cores / n, full.detect_cores, full.stage_ms, full.fps_per_camera,
                    static_cast<unsigned long long>(full.drops), full.faces_per_s, ratio, ok ? "yes" : "no");
        if (!ok && n >= n_ref) break;
    }
    std::printf("(full/(bare+det) compares like with like only where sustained: a starved run decodes less)\n");
    std::printf("\ncameras sustained at detect %.0f fps (measured, this load): %d (goal >= 8)\n", kDetectFps,
                sustained_max);
    const double per_camera = bare.cpu_cores / n_ref + kDetectFps * stage_cpu_per_frame;
    std::printf("CPU per camera: bare decode %.3f + face stage %.0f fps x %.1f ms = %.3f cores -> %u idle cores "
                "would carry %.1f cameras (projection, not a measurement)\n",
                bare.cpu_cores / n_ref, kDetectFps, stage_cpu_per_frame * 1000.0, per_camera, cores,
                per_camera > 0 ? cores / per_camera : 0.0);
    std::printf("ingest overhead per camera beyond bare decode: %.3f cores\n", (src.cpu_cores - bare.cpu_cores) / n_ref);
    std::printf("load average at end %.2f\n", load_average());
    ::kill(server, SIGTERM);
    int status = 0;
    ::waitpid(server, &status, 0);
    return 0;
}
