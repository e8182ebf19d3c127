// bench_face_stage: the face stage on walkers-1080p.mp4, motion-gated beside full-frame HOG.
//
// For the same frames (sampled at --fps, default 5 = a camera's detect_fps), two FaceStages run:
//   full:  motion_gating = false, HOG over the whole full-resolution frame (the reference);
//   gated: motion_gating = true (MOG2 on a small copy + regions around live tracks).
// Both include landmarks and alignment (the whole FaceStage::process). Printed: CPU ms per
// 1080p frame (this thread's CPU time; OpenCV runs single-threaded here so nothing escapes),
// faces per second of CPU, the gated stage's recall of the reference's faces (IoU >= 0.5),
// faces it found that the reference did not, the CPU-time ratio, and the mean area searched.
// Usage: bench_face_stage [--video FILE] [--fps F] [--min-face-px N] [--frames N] [--verbose] [--why]
//        and motion-gate tuning (MotionOptions; with any of them only that gate runs):
//        [--tile FACES] [--margin FACES] [--track-margin BOXES] [--diff GREY] [--tile-motion F]
//        [--regions N] [--width PX] [--budget F] [--defer N] [--band FACES] [--gap FACES]
//        [--every N] [--close FACES] [--track-scale F] [--tracked-grow BOXES]
//        [--track-grace-s SECONDS]
// --why: for each reference face a gate missed, whether it lay outside every searched region
//        or inside one (and at which HOG pyramid level a face of its size is found) and missed.
// Without tuning flags three gates run: the defaults (what faceadaptd runs, printed first),
// "motion 1 in 1" (motion searched on every frame) and "motion 1 in 4" (every 4th frame; tracks
// are searched on every frame in all three).
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/videoio.hpp>

#include "faceadapt/config/config.hpp"
#include "faceadapt/ingest/face_landmarks.hpp"
#include "faceadapt/ingest/face_stage.hpp"
#include "faceadapt/ingest/tracker.hpp"

namespace fs = std::filesystem;
using namespace faceadapt;

namespace {

double thread_cpu_ms() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

struct Totals {
    double cpu_ms = 0;
    double cpu_ms_after_first = 0;
    std::size_t faces = 0;
    double coverage = 0;
};

// Greedy one-to-one matching of `found` against `reference` at IoU >= 0.5; returns matches and,
// when `missed` is given, the reference faces left unmatched.
std::size_t matched(const std::vector<ingest::FaceObservation>& reference,
                    const std::vector<ingest::FaceObservation>& found, std::vector<cv::Rect>* missed = nullptr) {
    std::vector<bool> used(found.size(), false);
    std::size_t hits = 0;
    for (const auto& r : reference) {
        double best = 0.5;
        std::size_t best_j = found.size();
        for (std::size_t j = 0; j < found.size(); ++j)
            if (!used[j] && ingest::iou(r.bbox, found[j].bbox) >= best) best = ingest::iou(r.bbox, found[j].bbox), best_j = j;
        if (best_j < found.size()) used[best_j] = true, ++hits;
        else if (missed) missed->push_back(r.bbox);
    }
    return hits;
}

}  // namespace

int main(int argc, char** argv) {
    fs::path video = fs::path(FACEADAPT_SHARED_DIR) / "datasets" / "videos" / "walkers-1080p.mp4";
    double fps = 5.0;
    int min_face_px = 80;
    int max_frames = 1000;
    bool verbose = false;
    bool why = false;
    ingest::MotionOptions motion;
    bool tuned = false;  // a tuning flag was given: run only that gate beside the reference
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        static const std::set<std::string> tuning = {"--tile", "--margin", "--track-margin", "--diff", "--tile-motion",
                                                     "--regions", "--width", "--budget", "--defer", "--band",
                                                     "--gap", "--every", "--close", "--track-scale",
                                                     "--tracked-grow", "--track-grace-s"};
        tuned = tuned || tuning.count(a) > 0;
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) { std::fprintf(stderr, "%s needs a value\n", a.c_str()); std::exit(2); }
            return argv[++i];
        };
        if (a == "--video") video = next();
        else if (a == "--fps") fps = std::stod(next());
        else if (a == "--min-face-px") min_face_px = std::stoi(next());
        else if (a == "--frames") max_frames = std::stoi(next());
        else if (a == "--verbose") verbose = true;
        else if (a == "--why") why = true;
        else if (a == "--track-grace-s") motion.track_grace_s = std::stod(next());
        else if (a == "--tracked-grow") motion.tracked_grow = std::stod(next());
        else if (a == "--budget") motion.body_budget = std::stod(next());
        else if (a == "--defer") motion.body_max_defer = std::stoi(next());
        else if (a == "--close") motion.close_faces = std::stod(next());
        else if (a == "--every") motion.motion_every = std::stoi(next());
        else if (a == "--gap") motion.head_gap_faces = std::stod(next());
        else if (a == "--band") motion.head_band_faces = std::stod(next());
        else if (a == "--tile") motion.tile_faces = std::stod(next());
        else if (a == "--margin") motion.margin_faces = std::stod(next());
        else if (a == "--track-margin") motion.track_margin = std::stod(next());
        else if (a == "--track-scale") motion.track_scale = std::stod(next());
        else if (a == "--diff") motion.diff_threshold = std::stoi(next());
        else if (a == "--tile-motion") motion.min_tile_motion = std::stod(next());
        else if (a == "--regions") motion.max_regions = std::stoul(next());
        else if (a == "--width") motion.analysis_width = std::stoi(next());
        else { std::fprintf(stderr, "unknown argument %s\n", a.c_str()); return 2; }
    }
    if (!fs::exists(video)) {
        std::printf("bench_face_stage: skipped: needs %s (see ../shared/datasets/README.md)\n", video.c_str());
        return 0;
    }
    cv::setNumThreads(0);  // everything on this thread, so its CPU time is the whole cost

    cv::VideoCapture capture(video.string());
    if (!capture.isOpened()) {
        std::fprintf(stderr, "bench_face_stage: cannot open %s\n", video.c_str());
        return 1;
    }
    const double video_fps = capture.get(cv::CAP_PROP_FPS) > 0 ? capture.get(cv::CAP_PROP_FPS) : 25.0;
    const int step = std::max(1, static_cast<int>(std::lround(video_fps / fps)));
    std::vector<cv::Mat> frames;
    std::vector<double> frame_s;
    cv::Mat frame;
    for (int index = 0; capture.read(frame) && static_cast<int>(frames.size()) < max_frames; ++index)
        if (index % step == 0) frames.push_back(frame.clone()), frame_s.push_back(index / video_fps);
    if (frames.empty()) {
        std::fprintf(stderr, "bench_face_stage: no frames decoded from %s\n", video.c_str());
        return 1;
    }

    const auto landmarks = std::make_shared<const ingest::LandmarkModel>();
    config::DetectConfig full_cfg;
    full_cfg.motion_gating = false;
    config::DetectConfig gated_cfg;
    gated_cfg.motion_gating = true;
    ingest::FaceStage full("full", full_cfg, min_face_px, landmarks);

    // The gate as configured (defaults or the tuning flags), and two variants beside it.
    struct Variant {
        std::string name;
        std::unique_ptr<ingest::FaceStage> stage;
        Totals totals;
        std::size_t recalled = 0, recalled_after_first = 0, extra = 0;
    };
    std::vector<Variant> variants;
    auto add = [&](std::string name, ingest::MotionOptions options) {
        variants.push_back({std::move(name),
                            std::make_unique<ingest::FaceStage>("gated", gated_cfg, min_face_px, landmarks, options),
                            {}, 0, 0, 0});
    };
    add(tuned ? "motion-gated (tuned)" : "motion-gated (default)", motion);
    if (!tuned) {
        ingest::MotionOptions every_frame = motion;
        every_frame.motion_every = 1;    // motion searched on every frame
        add("gated, motion 1 in 1", every_frame);
        ingest::MotionOptions sparser = motion;
        sparser.motion_every = 4;        // motion searched every 4th frame, tracks every frame
        add("gated, motion 1 in 4", sparser);
    }

    Totals tf;
    std::size_t reference_faces = 0, reference_after_first = 0;
    const auto t0 = std::chrono::system_clock::now();
    for (std::size_t i = 0; i < frames.size(); ++i) {
        const auto ts = t0 + std::chrono::microseconds(static_cast<long long>(frame_s[i] * 1e6));
        const double c0 = thread_cpu_ms();
        const auto ref = full.process(frames[i], ts);
        const double c1 = thread_cpu_ms();
        tf.cpu_ms += c1 - c0;
        tf.faces += ref.size();
        reference_faces += ref.size();
        if (i > 0) tf.cpu_ms_after_first += c1 - c0, reference_after_first += ref.size();
        if (verbose) {
            std::printf("frame %3zu t=%.2fs full %zu faces %6.1f ms\n", i, frame_s[i], ref.size(), c1 - c0);
            for (const auto& o : ref) std::printf("    ref  %4d,%4d %3dx%3d\n", o.bbox.x, o.bbox.y, o.bbox.width, o.bbox.height);
        }
        for (auto& v : variants) {
            const double g0 = thread_cpu_ms();
            const auto got = v.stage->process(frames[i], ts);
            const double g1 = thread_cpu_ms();
            std::vector<cv::Rect> missed;
            const std::size_t hits = matched(ref, got, &missed);
            if (why)
                for (const auto& m : missed) {
                    const auto& crops = v.stage->last_stats().crops;
                    const bool inside = std::any_of(crops.begin(), crops.end(), [&](const cv::Rect& c) { return (c & m) == m; });
                    const bool touched = std::any_of(crops.begin(), crops.end(), [&](const cv::Rect& c) { return (c & m).area() > 0; });
                    // dlib's pyramid_down<6>: level l finds boxes of ~80 * (6/5)^l px of the image HOG runs on.
                    const double side = std::min(m.width, m.height) * 80.0 / min_face_px;
                    const int level = static_cast<int>(std::lround(std::log(side / 80.0) / std::log(1.2)));
                    std::printf("  why: %-22s frame %2zu missed %4d,%4d %3dx%3d: %s (level %d)\n", v.name.c_str(), i,
                                m.x, m.y, m.width, m.height,
                                inside ? "inside a searched region, not found" : touched ? "partly inside a region" : "outside every region",
                                level);
                }
            v.totals.cpu_ms += g1 - g0;
            v.totals.faces += got.size();
            v.totals.coverage += v.stage->last_stats().coverage;
            v.recalled += hits;
            v.extra += got.size() - matched(got, ref);
            if (i > 0) v.totals.cpu_ms_after_first += g1 - g0, v.recalled_after_first += hits;
            if (verbose) {
                std::printf("  %-22s %zu faces %6.1f ms, %zu crops, %4.1f%% of frame, recalled %zu\n", v.name.c_str(),
                            got.size(), g1 - g0, v.stage->last_stats().regions, 100 * v.stage->last_stats().coverage, hits);
                for (const auto& r : v.stage->last_stats().crops)
                    std::printf("    crop %4d,%4d %4dx%4d\n", r.x, r.y, r.width, r.height);
                for (const auto& o : got)
                    std::printf("    got  %4d,%4d %3dx%3d track %lld\n", o.bbox.x, o.bbox.y, o.bbox.width, o.bbox.height,
                                static_cast<long long>(o.track_id));
            }
        }
    }
    const double n = static_cast<double>(frames.size());
    auto ratio = [](std::size_t a, std::size_t b) { return b ? double(a) / double(b) : 0.0; };
    std::printf("bench_face_stage: %s, %zu frames %dx%d sampled at %.1f fps, min_face_px %d; CPU = this thread, "
                "detection + landmarks + alignment + tracking\n",
                video.filename().c_str(), frames.size(), frames[0].cols, frames[0].rows, video_fps / step, min_face_px);
    std::printf("  %-22s %7.1f ms CPU per frame, %3zu faces, %6.2f faces/s of CPU, 100%% of the frame searched\n",
                "full-frame HOG (ref)", tf.cpu_ms / n, tf.faces, tf.faces / (tf.cpu_ms / 1e3));
    for (const auto& v : variants) {
        std::printf("  %-22s %7.1f ms CPU per frame, %3zu faces, %6.2f faces/s of CPU, %4.1f%% of the frame searched\n",
                    v.name.c_str(), v.totals.cpu_ms / n, v.totals.faces, v.totals.faces / (v.totals.cpu_ms / 1e3),
                    100 * v.totals.coverage / n);
        std::printf("  %-22s recall %.3f (%zu of %zu reference faces, IoU >= 0.5), CPU ratio %.3f, %zu faces not in "
                    "the reference; after the first frame: recall %.3f, CPU ratio %.3f\n",
                    "", ratio(v.recalled, reference_faces), v.recalled, reference_faces, v.totals.cpu_ms / tf.cpu_ms,
                    v.extra, ratio(v.recalled_after_first, reference_after_first),
                    frames.size() > 1 ? v.totals.cpu_ms_after_first / tf.cpu_ms_after_first : 0.0);
    }
    std::printf("  target: recall >= 0.90 at CPU ratio <= 0.25\n");
    return 0;
}
