// FrameSnapshots (ingest/frame_snapshot.hpp): real frames encoded as JPEG, decoded back.
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

#include "faceadapt/ingest/frame_snapshot.hpp"

using namespace faceadapt::ingest;
using namespace std::chrono_literals;

namespace {

Frame frame(const std::string& camera, std::chrono::system_clock::time_point t, int cols, int rows, int shade) {
    Frame f;
    f.camera = camera;
    f.timestamp = t;
    f.bgr = cv::Mat(rows, cols, CV_8UC3, cv::Scalar(shade, 100, 255 - shade));
    return f;
}

cv::Mat decode(const FrameSnapshot& s) {
    return cv::imdecode(std::vector<uchar>(s.jpeg.begin(), s.jpeg.end()), cv::IMREAD_COLOR);
}

TEST(FrameSnapshots, KeepsADownscaledJpegOfTheLatestFramePerCameraAtMostOncePerInterval) {
    FrameSnapshots snaps({2000ms, 640, 80});
    EXPECT_FALSE(snaps.latest("gate"));
    const auto t0 = std::chrono::system_clock::now();
    EXPECT_TRUE(snaps.offer(frame("gate", t0, 1920, 1080, 10)));
    auto s = snaps.latest("gate");
    ASSERT_TRUE(s);
    EXPECT_EQ(s->width, 640);
    EXPECT_EQ(s->height, 360) << "aspect kept";
    EXPECT_EQ(s->timestamp, t0);
    const cv::Mat first = decode(*s);
    ASSERT_EQ(first.cols, 640);
    EXPECT_NEAR(first.at<cv::Vec3b>(100, 100)[0], 10, 4);
    // Within the interval: not replaced; after it: replaced.
    EXPECT_FALSE(snaps.offer(frame("gate", t0 + 1500ms, 1920, 1080, 200)));
    EXPECT_EQ(snaps.latest("gate")->timestamp, t0);
    EXPECT_TRUE(snaps.offer(frame("gate", t0 + 2000ms, 1920, 1080, 200)));
    EXPECT_NEAR(decode(*snaps.latest("gate")).at<cv::Vec3b>(100, 100)[0], 200, 4);
    // Another camera has its own; a small frame is not enlarged; an empty one is skipped.
    EXPECT_TRUE(snaps.offer(frame("yard", t0 + 100ms, 320, 240, 50)));
    EXPECT_EQ(snaps.latest("yard")->width, 320);
    Frame empty;
    empty.camera = "door";
    EXPECT_FALSE(snaps.offer(empty));
    EXPECT_FALSE(snaps.latest("door"));
    snaps.forget("yard");
    EXPECT_FALSE(snaps.latest("yard"));
    EXPECT_TRUE(snaps.latest("gate"));
    EXPECT_THROW(FrameSnapshots({-1ms, 640, 80}), std::invalid_argument);
    EXPECT_THROW(FrameSnapshots({1ms, 8, 80}), std::invalid_argument);
}

TEST(FrameSnapshots, SeveralWorkersOfferAtOnce) {
    FrameSnapshots snaps({0ms, 64, 70});
    const auto t0 = std::chrono::system_clock::now();
    std::vector<std::thread> workers;
    for (int w = 0; w < 4; ++w)
        workers.emplace_back([&, w] {
            for (int i = 0; i < 50; ++i)
                snaps.offer(frame("cam" + std::to_string(w % 2), t0 + std::chrono::milliseconds(i), 128, 96, i));
        });
    for (auto& t : workers) t.join();
    for (const char* cam : {"cam0", "cam1"}) {
        const auto s = snaps.latest(cam);
        ASSERT_TRUE(s) << cam;
        EXPECT_EQ(decode(*s).cols, 64) << cam;
    }
}

}  // namespace
