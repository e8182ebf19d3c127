// FrameQueue and FacePipeline: drop-oldest queues, per-camera serialisation in the worker pool,
// prompt shutdown; with the real FaceStage on the slideshow camera when it is built.
#include <atomic>
#include <cmath>
#include <mutex>
#include <set>

#include <gtest/gtest.h>

#include "faceadapt/ingest/face_landmarks.hpp"
#include "faceadapt/ingest/face_pipeline.hpp"
#include "faceadapt/ingest/frame_queue.hpp"
#include "test_stream_support.hpp"
#include "test_support.hpp"

namespace faceadapt::test {
namespace {

using namespace std::chrono_literals;
using ingest::CameraState;
using ingest::FaceObservation;
using ingest::FacePipeline;
using ingest::Frame;
using ingest::FrameQueue;

Frame numbered(std::uint64_t n) {
    Frame f;
    f.camera = "q";
    f.sequence = n;
    return f;
}

TEST(FrameQueue, DropsTheOldestWhenFullAndCountsIt) {
    FrameQueue q(3);
    EXPECT_TRUE(q.empty());
    for (std::uint64_t i = 0; i < 3; ++i) EXPECT_FALSE(q.push(numbered(i)));
    EXPECT_EQ(q.drops(), 0u);
    EXPECT_TRUE(q.push(numbered(3)));
    EXPECT_TRUE(q.push(numbered(4)));
    EXPECT_EQ(q.size(), 3u);
    EXPECT_EQ(q.drops(), 2u);
    EXPECT_EQ(q.pushed(), 5u);
    for (std::uint64_t want = 2; want < 5; ++want) {
        auto f = q.pop();
        ASSERT_TRUE(f.has_value());
        EXPECT_EQ(f->sequence, want) << "oldest frames go first";
    }
    EXPECT_FALSE(q.pop().has_value());
    q.push(numbered(9));
    q.clear();
    EXPECT_TRUE(q.empty());
    EXPECT_EQ(q.drops(), 3u);
}

TEST(FrameQueue, RejectsZeroCapacity) { EXPECT_THROW(FrameQueue(0), std::invalid_argument); }

std::map<std::string, std::string> slideshow_args() {
    return {{"source", demo_photos_dir().string()}, {"fps", "10"}, {"size", "640x360"}};
}

TEST(FacePipeline, SlowStageDropsOldestFramesSerialisesPerCameraAndStopsPromptly) {
    FACEADAPT_REQUIRE_PATH(demo_photos_dir());
    ServerProcess server(slideshow_args());
    server.start();
    config::DetectConfig detect;
    detect.workers = 2;
    detect.queue_depth = 2;
    std::vector<config::CameraConfig> cameras{test_camera("c1", server.url(), 10.0), test_camera("c2", server.url(), 10.0),
                                              test_camera("c3", server.url(), 10.0)};
    std::mutex mutex;
    std::map<std::string, int> in_flight;  // per camera: must never exceed 1
    int max_in_flight_per_camera = 0;
    std::map<std::string, std::uint64_t> last_seq;
    bool in_order = true;
    std::atomic<int> observations{0};
    auto factory = [&](const config::CameraConfig& cam) -> ingest::FrameProcessor {
        return [&, id = cam.id](const Frame& f) {
            {
                std::lock_guard lock(mutex);
                max_in_flight_per_camera = std::max(max_in_flight_per_camera, ++in_flight[id]);
                if (last_seq.count(id) && f.sequence <= last_seq[id]) in_order = false;
                last_seq[id] = f.sequence;
            }
            std::this_thread::sleep_for(150ms);  // ~6 frames/s per worker for 30 frames/s offered
            {
                std::lock_guard lock(mutex);
                --in_flight[id];
            }
            FaceObservation o;
            o.camera = id;
            o.timestamp = f.timestamp;
            return std::vector<FaceObservation>{o};
        };
    };
    FacePipeline pipeline(cameras, detect, [&](FaceObservation&&) { ++observations; }, factory);
    EXPECT_EQ(pipeline.worker_count(), 2u);
    pipeline.start();
    // Until every camera has had frames processed and, its stage being slower than it, dropped.
    ASSERT_TRUE(wait_until(
        [&] {
            for (const auto& s : pipeline.stats())
                if (s.processed < 3 || s.drops == 0) return false;
            return true;
        },
        30s));
    const auto stats = pipeline.stats();
    ASSERT_EQ(stats.size(), 3u);
    std::uint64_t processed = 0;
    for (const auto& s : stats) {
        EXPECT_EQ(s.source.state, CameraState::streaming) << s.camera << ": " << s.source.last_error;
        EXPECT_GT(s.drops, 0u) << s.camera << ": a stage slower than the cameras must drop frames";
        EXPECT_LE(s.queued, 2u);
        EXPECT_EQ(s.faces, s.processed) << "one observation per frame from this stage";
        processed += s.processed;
    }
    const auto t0 = std::chrono::steady_clock::now();
    pipeline.stop();
    const double stop_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_LT(stop_s, 2.0) << "stop must be prompt";
    std::lock_guard lock(mutex);
    EXPECT_EQ(max_in_flight_per_camera, 1) << "a camera's frames are processed one at a time";
    EXPECT_TRUE(in_order) << "a camera's frames are processed in order";
    EXPECT_GE(observations.load(), static_cast<int>(processed));
    for (const auto& s : pipeline.stats()) {
        EXPECT_EQ(s.source.state, CameraState::stopped);
        EXPECT_EQ(s.queued, 0u);
    }
}

TEST(FacePipeline, StageErrorsAreCountedAndTheCameraCarriesOn) {
    FACEADAPT_REQUIRE_PATH(demo_photos_dir());
    ServerProcess server(slideshow_args());
    server.start();
    config::DetectConfig detect;
    detect.workers = 1;
    auto factory = [](const config::CameraConfig&) -> ingest::FrameProcessor {
        return [](const Frame& f) -> std::vector<FaceObservation> {
            if (f.sequence % 2 == 0) throw std::runtime_error("odd failure");
            return {};
        };
    };
    FacePipeline pipeline({test_camera("flaky", server.url())}, detect, nullptr, factory);
    pipeline.start();
    ASSERT_TRUE(wait_until([&] { return pipeline.stats()[0].processed >= 6; }, 15s));
    const auto s = pipeline.stats()[0];
    EXPECT_GE(s.stage_errors, 2u);
    EXPECT_LT(s.stage_errors, s.processed);
    EXPECT_EQ(s.source.state, CameraState::streaming);
}

TEST(FacePipeline, RejectsDuplicateCameraIds) {
    config::DetectConfig detect;
    auto factory = [](const config::CameraConfig&) -> ingest::FrameProcessor {
        return [](const Frame&) { return std::vector<FaceObservation>{}; };
    };
    std::vector<config::CameraConfig> cams{test_camera("x", "rtsp://127.0.0.1:1/a"), test_camera("x", "rtsp://127.0.0.1:1/b")};
    EXPECT_THROW(FacePipeline(cams, detect, nullptr, factory), std::invalid_argument);
}

}  // namespace
}  // namespace faceadapt::test

namespace faceadapt::test {
namespace {

TEST(FacePipeline, FaceStageFactorySharesAGivenLandmarkModel) {
    config::DetectConfig detect;
    FACEADAPT_REQUIRE_PATH(detect.landmarks_model);
    EXPECT_THROW(ingest::face_stage_factory(detect, nullptr), std::invalid_argument);
    auto model = std::make_shared<const ingest::LandmarkModel>(detect.landmarks_model);
    auto factory = ingest::face_stage_factory(detect, model);
    auto a = factory(test_camera("a", "rtsp://127.0.0.1:1/a"));
    auto b = factory(test_camera("b", "rtsp://127.0.0.1:1/b"));
    EXPECT_EQ(model.use_count(), 4) << "the caller, the factory and the two cameras' stages share one model";
    Frame blank;
    blank.camera = "a";
    blank.bgr = cv::Mat(360, 640, CV_8UC3, cv::Scalar(90, 90, 90));
    EXPECT_TRUE(a(blank).empty()) << "no face in a grey frame";
    blank.bgr = cv::Mat();
    EXPECT_THROW(b(blank), std::invalid_argument) << "an empty frame is bad input";
}

// Landmarks that look like a face: inside (a margin around) the box, the nose tip between the
// eyes and the mouth, the eyes apart.
void expect_plausible(const ingest::FaceObservation& o) {
    const cv::Rect2f box(o.bbox);
    const cv::Rect2f margin(box.x - box.width * 0.3f, box.y - box.height * 0.3f, box.width * 1.6f, box.height * 1.6f);
    for (const auto& p : o.landmarks) EXPECT_TRUE(margin.contains(p)) << "landmark " << p << " far from box " << o.bbox;
    auto mean = [&](int from, int to) {
        cv::Point2f m(0, 0);
        for (int i = from; i <= to; ++i) m += o.landmarks[i];
        return m * (1.0f / static_cast<float>(to - from + 1));
    };
    const cv::Point2f left_eye = mean(36, 41), right_eye = mean(42, 47), mouth = mean(48, 67);
    const cv::Point2f nose = o.landmarks[30];
    // In the face's own frame (heads tilt): x along the eyes, y from the eyes to the mouth.
    const cv::Point2f eyes = (left_eye + right_eye) * 0.5f, across = right_eye - left_eye, down = mouth - eyes;
    const float cross = across.x * down.y - across.y * down.x;
    EXPECT_GT(cross, 0.0f) << "mouth below the eyes, left eye on the left";
    const float t = (nose - eyes).dot(down) / down.dot(down);
    EXPECT_GT(t, 0.1f) << "nose tip between eyes and mouth";
    EXPECT_LT(t, 0.95f) << "nose tip between eyes and mouth";
    EXPECT_GT(std::sqrt(across.dot(across)), box.width * 0.2f) << "eyes apart";
    EXPECT_EQ(o.chip.rows, 150);
    EXPECT_EQ(o.chip.cols, 150);
    EXPECT_EQ(o.chip.type(), CV_8UC3);
    EXPECT_GE(o.track_id, 1);
}

struct Collected {
    std::mutex mutex;
    std::vector<FaceObservation> all;
    void operator()(FaceObservation&& o) {
        std::lock_guard lock(mutex);
        all.push_back(std::move(o));
    }
    std::size_t size() {
        std::lock_guard lock(mutex);
        return all.size();
    }
};

// Runs one camera of `server_args` through the real FaceStage until `min_faces` observations
// arrive; checks each of them and the camera's counters.
void expect_aligned_chips(std::map<std::string, std::string> server_args, const std::string& id, double detect_fps,
                          std::size_t min_faces, cv::Size frame_size) {
    ServerProcess server(std::move(server_args));
    server.start();
    config::DetectConfig detect;
    detect.min_face_px = 60;
    Collected faces;
    FacePipeline pipeline({test_camera(id, server.url(), detect_fps)}, detect, std::ref(faces),
                          ingest::face_stage_factory(detect));
    pipeline.start();
    EXPECT_TRUE(wait_until([&] { return faces.size() >= min_faces; }, 30s))
        << "faces " << faces.size() << ", frames processed " << pipeline.stats()[0].processed << ", "
        << pipeline.stats()[0].source.last_error;
    pipeline.stop();
    const auto s = pipeline.stats()[0];
    EXPECT_EQ(s.faces, faces.size());
    EXPECT_EQ(s.stage_errors, 0u);
    std::lock_guard lock(faces.mutex);
    for (const auto& o : faces.all) {
        EXPECT_EQ(o.camera, id);
        EXPECT_EQ(o.frame_size, frame_size);
        expect_plausible(o);
    }
}

TEST(FacePipeline, FaceStageOnTheSlideshowCameraYieldsAlignedChips) {
    FACEADAPT_REQUIRE_PATH(demo_photos_dir());
    FACEADAPT_REQUIRE_PATH(config::DetectConfig{}.landmarks_model);
    expect_aligned_chips({{"source", demo_photos_dir().string()}, {"fps", "5"}, {"size", "1280x720"}}, "photos", 2.0, 3,
                         {1280, 720});
}

TEST(FacePipeline, FaceStageOnTheWalkersCameraYieldsAlignedChips) {
    FACEADAPT_REQUIRE_PATH(walkers_video());
    FACEADAPT_REQUIRE_PATH(config::DetectConfig{}.landmarks_model);
    expect_aligned_chips({{"source", walkers_video().string()}}, "walkers", 3.0, 2, {1920, 1080});
}

}  // namespace
}  // namespace faceadapt::test
