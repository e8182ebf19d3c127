// Scoring cost per chip (all features + steps 122-133) and crop store inserts per second with
// fsync (single writer and 4 writers), on 150x150 RGB chips. Prints the figures.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <thread>
#include <vector>

#include <unistd.h>

#include <opencv2/imgproc.hpp>

#include "faceadapt/quality/crop_store.hpp"
#include "faceadapt/quality/enhancer.hpp"
#include "faceadapt/quality/quality.hpp"

namespace fs = std::filesystem;
namespace q = faceadapt::quality;
using Clock = std::chrono::steady_clock;

namespace {

// A face-like 150x150 chip with noise (PNG size close to a real chip's).
cv::Mat chip(int seed) {
    cv::Mat m(150, 150, CV_8UC3, cv::Scalar(90, 70, 60));
    cv::ellipse(m, {75, 80}, {45, 60}, 0, 0, 360, cv::Scalar(170, 130, 110), -1);
    cv::circle(m, {58, 65}, 6, cv::Scalar(30, 30, 30), -1);
    cv::circle(m, {92, 65}, 6, cv::Scalar(30, 30, 30), -1);
    cv::Mat noise(m.size(), CV_8UC3);
    cv::RNG rng(static_cast<std::uint64_t>(seed) + 1);
    rng.fill(noise, cv::RNG::NORMAL, 0, 10);
    cv::add(m, noise, m);
    return m;
}

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double store_rate(const fs::path& dir, int threads, int per_thread, bool fsync) {
    fs::remove_all(dir);
    faceadapt::config::StoreConfig limits;
    limits.per_camera_quota = 1'000'000;
    limits.disk_cap_mb = 100'000;
    q::CropStore store(dir, limits, q::CropStore::Options{fsync});
    std::vector<cv::Mat> chips;
    for (int i = 0; i < 16; ++i) chips.push_back(chip(i));
    const auto t0 = Clock::now();
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
        pool.emplace_back([&, t] {
            for (int i = 0; i < per_thread; ++i) {
                q::CropInput c;
                c.camera = "cam" + std::to_string(t);
                c.track_id = i;
                c.score = 0.5 + (i % 10) / 20.0;
                c.chip = chips[i % chips.size()];
                c.quality_json = R"({"score":0.5})";
                store.insert(c);
            }
        });
    for (auto& p : pool) p.join();
    const double rate = threads * per_thread / seconds_since(t0);
    fs::remove_all(dir);
    return rate;
}

}  // namespace

int main() {
    // Scoring.
    faceadapt::ingest::FaceObservation obs;
    obs.camera = "bench";
    obs.frame_size = {1920, 1080};
    obs.bbox = {900, 400, 160, 160};
    for (int i = 0; i < 68; ++i)
        obs.landmarks[i] = cv::Point2f(910.0f + (i % 10) * 14.0f, 420.0f + (i / 10) * 18.0f);
    obs.landmarks[30] = {980, 480};
    obs.landmarks[8] = {980, 550};
    obs.landmarks[36] = {935, 450};
    obs.landmarks[45] = {1025, 450};
    obs.landmarks[48] = {955, 515};
    obs.landmarks[54] = {1005, 515};
    obs.frame_brightness = 110;
    const q::QualityScorer scorer;
    std::vector<cv::Mat> chips;
    for (int i = 0; i < 32; ++i) chips.push_back(chip(i));
    double sink = 0;
    constexpr int kScores = 2000;
    auto t0 = Clock::now();
    for (int i = 0; i < kScores; ++i) {
        obs.chip = chips[i % chips.size()];
        sink += scorer.score(obs).normalized;
    }
    const double us_per_chip = seconds_since(t0) / kScores * 1e6;
    q::QualityFeatures f = q::compute_features(obs);
    t0 = Clock::now();
    for (int i = 0; i < 200000; ++i) {
        f.exposure = i % 255;
        sink += scorer.score(f).normalized;
    }
    const double us_steps = seconds_since(t0) / 200000 * 1e6;
    std::printf("scoring: %.1f us per chip (features + steps 122-133), of which steps 122-133 alone %.3f us "
                "(checksum %.1f)\n", us_per_chip, us_steps, sink);
    // Enhancer views.
    for (const auto& e : {q::Enhancer::first_view(), q::Enhancer::second_view()}) {
        t0 = Clock::now();
        for (int i = 0; i < 200; ++i) sink += e.apply(chips[i % chips.size()]).at<cv::Vec3b>(0, 0)[0];
        std::printf("enhancer %s (%s): %.1f us per chip\n", e.name().c_str(), e.spec().c_str(),
                    seconds_since(t0) / 200 * 1e6);
    }
    // Store.
    const fs::path dir = fs::temp_directory_path() / ("faceadapt-bench-store-" + std::to_string(::getpid()));
    const double one_fsync = store_rate(dir, 1, 1000, true);
    const double four_fsync = store_rate(dir, 4, 500, true);
    const double one_nofsync = store_rate(dir, 1, 1000, false);
    std::printf("crop store inserts/s (150x150 PNG, %s): 1 writer with fsync %.0f, 4 writers with fsync %.0f, "
                "1 writer without fsync %.0f (fsync costs x%.1f)\n",
                dir.parent_path().c_str(), one_fsync, four_fsync, one_nofsync, one_nofsync / one_fsync);
    return 0;
}
