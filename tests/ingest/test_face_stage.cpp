// FaceStage, MotionRegions, merge_regions and IouTracker: synthetic boxes and frames, the
// face-api demo photos (always present) and walkers-1080p.mp4 (skipped when absent).
#include <algorithm>
#include <chrono>
#include <map>
#include <set>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

#include "faceadapt/ingest/face_landmarks.hpp"
#include "faceadapt/ingest/face_stage.hpp"
#include "faceadapt/ingest/motion_regions.hpp"
#include "faceadapt/ingest/tracker.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using namespace faceadapt::ingest;
using namespace std::chrono_literals;
using Clock = std::chrono::system_clock;

namespace {

std::shared_ptr<const LandmarkModel> shared_model() {
    static const auto model = std::make_shared<const LandmarkModel>();
    return model;
}

bool covers(const std::vector<cv::Rect>& regions, const cv::Rect& r) {
    // Every pixel of r lies in some region.
    for (int y = r.y; y < r.br().y; y += 4)
        for (int x = r.x; x < r.br().x; x += 4)
            if (std::none_of(regions.begin(), regions.end(), [&](const cv::Rect& g) { return g.contains({x, y}); }))
                return false;
    return true;
}

}  // namespace

// ---- IoU and tracker ---------------------------------------------------------------------

TEST(Iou, KnownValues) {
    EXPECT_DOUBLE_EQ(iou({0, 0, 10, 10}, {0, 0, 10, 10}), 1.0);
    EXPECT_DOUBLE_EQ(iou({0, 0, 10, 10}, {20, 20, 10, 10}), 0.0);
    EXPECT_NEAR(iou({0, 0, 10, 10}, {5, 0, 10, 10}), 50.0 / 150.0, 1e-12);
    EXPECT_DOUBLE_EQ(iou({0, 0, 0, 0}, {0, 0, 10, 10}), 0.0);
}

TEST(IouTracker, KeepsIdsOfMovingBoxesAndGivesNewOnesNewIds) {
    IouTracker tracker(0.3, 2s);
    const auto t0 = Clock::time_point{} + 1000s;
    auto ids = tracker.update({{100, 100, 80, 80}, {500, 100, 80, 80}}, t0);
    ASSERT_EQ(ids.size(), 2u);
    EXPECT_NE(ids[0], ids[1]);
    const auto a = ids[0], b = ids[1];
    for (int k = 1; k <= 5; ++k) {
        // Reversed order: association is by overlap, not position in the list.
        ids = tracker.update({{500 - 10 * k, 100, 80, 80}, {100 + 10 * k, 100, 80, 80}}, t0 + k * 200ms);
        EXPECT_EQ(ids[0], b);
        EXPECT_EQ(ids[1], a);
    }
    ids = tracker.update({{100 + 60, 100, 80, 80}, {500 - 60, 100, 80, 80}, {900, 400, 80, 80}}, t0 + 1200ms);
    EXPECT_EQ(ids[0], a);
    EXPECT_EQ(ids[1], b);
    EXPECT_GT(ids[2], std::max(a, b));
    EXPECT_EQ(tracker.tracks().size(), 3u);
}

TEST(IouTracker, OneTrackPerBoxEvenWhenTwoBoxesOverlapIt) {
    IouTracker tracker(0.3, 2s);
    const auto t0 = Clock::time_point{} + 10s;
    const auto first = tracker.update({{100, 100, 80, 80}}, t0);
    const auto ids = tracker.update({{100, 100, 80, 80}, {110, 100, 80, 80}}, t0 + 200ms);
    EXPECT_EQ(ids[0], first[0]);  // the better overlap keeps the id
    EXPECT_NE(ids[1], first[0]);
}

TEST(IouTracker, DropsTracksOlderThanMaxAge) {
    IouTracker tracker(0.3, 1s);
    const auto t0 = Clock::time_point{} + 10s;
    const auto id = tracker.update({{100, 100, 80, 80}}, t0)[0];
    EXPECT_EQ(tracker.update({}, t0 + 500ms).size(), 0u);
    EXPECT_EQ(tracker.tracks().size(), 1u);
    EXPECT_EQ(tracker.update({{100, 100, 80, 80}}, t0 + 900ms)[0], id);  // within max age
    tracker.update({}, t0 + 2500ms);
    EXPECT_TRUE(tracker.tracks().empty());
    EXPECT_NE(tracker.update({{100, 100, 80, 80}}, t0 + 2600ms)[0], id);  // ids are not reused
}

// Issue 18: a camera that streams again (reconnected) starts new tracks, even for a face at
// the same place within max_age; ids go on and are never reused.
TEST(IouTracker, EndAllTracksStartsNewOnesWithFreshIds) {
    IouTracker tracker(0.3, 2s);
    const auto t0 = Clock::time_point{} + 10s;
    const auto id = tracker.update({{100, 100, 80, 80}}, t0)[0];
    tracker.end_all_tracks();
    EXPECT_TRUE(tracker.tracks().empty());
    const auto next = tracker.update({{100, 100, 80, 80}}, t0 + 200ms)[0];
    EXPECT_GT(next, id);
    EXPECT_EQ(tracker.update({{102, 100, 80, 80}}, t0 + 400ms)[0], next);
}

TEST(IouTracker, PredictsFastMoversAcrossAMissedFrame) {
    IouTracker tracker(0.5, 2s, 0.0);  // plain IoU: only the prediction can bridge the gap
    const auto t0 = Clock::time_point{} + 10s;
    std::int64_t id = 0;
    for (int k = 0; k < 4; ++k) {  // 25 px per 200 ms: raw IoU 0.52
        const auto ids = tracker.update({{100 + 25 * k, 200, 80, 80}}, t0 + k * 200ms);
        if (k == 0) id = ids[0];
        EXPECT_EQ(ids[0], id) << "step " << k;
    }
    // Missed at k = 4; at k = 5 the box moved 50 px from the last match: raw IoU 0.23 < 0.5,
    // but the constant-velocity prediction lands on it.
    tracker.update({}, t0 + 800ms);
    const cv::Rect at5(100 + 125, 200, 80, 80);
    EXPECT_LT(iou(at5, {100 + 75, 200, 80, 80}), 0.5);
    EXPECT_EQ(tracker.update({at5}, t0 + 1000ms)[0], id);
    const auto predicted = tracker.predicted_boxes(t0 + 1200ms);
    ASSERT_EQ(predicted.size(), 1u);
    EXPECT_NEAR(predicted[0].x, 250, 3);
}

TEST(IouTracker, BufferedIouFollowsAFaceMovingMostOfItsWidth) {
    // 120 px faces moving 70 px per frame (plain IoU 0.26 < 0.3), beside a still face.
    const cv::Rect still(400, 600, 120, 120);
    EXPECT_LT(iou({300, 200, 120, 120}, {370, 200, 120, 120}), 0.3);
    EXPECT_GT(buffered_iou({300, 200, 120, 120}, {370, 200, 120, 120}, 0.5), 0.5);
    IouTracker plain(0.3, 2s, 0.0), buffered(0.3, 2s);
    const auto t0 = Clock::time_point{} + 10s;
    std::set<std::int64_t> plain_ids, buffered_ids, still_ids;
    for (int k = 0; k < 6; ++k) {
        const std::vector<cv::Rect> boxes = {{300 + 70 * k, 200, 120, 120}, still};
        plain_ids.insert(plain.update(boxes, t0 + k * 80ms)[0]);
        const auto ids = buffered.update(boxes, t0 + k * 80ms);
        buffered_ids.insert(ids[0]);
        still_ids.insert(ids[1]);
    }
    EXPECT_EQ(buffered_ids.size(), 1u);
    EXPECT_EQ(still_ids.size(), 1u);
    EXPECT_NE(*buffered_ids.begin(), *still_ids.begin());
    EXPECT_GT(plain_ids.size(), 1u) << "plain IoU should lose this face (the case buffering is for)";
}

TEST(IouTracker, RejectsBadParameters) {
    EXPECT_THROW(IouTracker(0.0, 1s), std::invalid_argument);
    EXPECT_THROW(IouTracker(1.0, 1s), std::invalid_argument);
    EXPECT_THROW(IouTracker(0.3, 0s), std::invalid_argument);
    EXPECT_THROW(IouTracker(0.3, 1s, -0.1), std::invalid_argument);
}

// ---- regions ---------------------------------------------------------------------------

TEST(MergeRegions, MergesWhenItSavesAreaCapsTheCountAndClips) {
    const cv::Size frame(1000, 800);
    // Side by side (the union costs nothing extra) and mostly overlapping: merged. A small
    // overlap is cheaper scanned twice than as one bounding box: kept apart.
    auto merged = merge_regions({{0, 0, 100, 100}, {100, 0, 100, 100}}, 4, frame);
    ASSERT_EQ(merged.size(), 1u);
    EXPECT_EQ(merged[0], cv::Rect(0, 0, 200, 100));
    merged = merge_regions({{0, 0, 100, 100}, {10, 5, 100, 100}}, 4, frame);
    ASSERT_EQ(merged.size(), 1u);
    EXPECT_EQ(merged[0], cv::Rect(0, 0, 110, 105));
    merged = merge_regions({{0, 0, 100, 100}, {80, 80, 100, 100}, {600, 600, 100, 100}}, 4, frame);
    EXPECT_EQ(merged.size(), 3u);

    std::vector<cv::Rect> many;
    for (int i = 0; i < 8; ++i) many.emplace_back(i * 120, (i % 2) * 300, 100, 100);
    merged = merge_regions(many, 3, frame);
    EXPECT_EQ(merged.size(), 3u);
    for (const auto& r : many) EXPECT_TRUE(covers(merged, r));
    double area = 0;
    for (const auto& r : merged) area += r.area();
    EXPECT_LT(area, 0.9 * frame.area()) << "merging three at a time should not take the whole frame";

    merged = merge_regions({{-50, -50, 100, 100}, {2000, 2000, 10, 10}}, 4, frame);
    ASSERT_EQ(merged.size(), 1u);
    EXPECT_EQ(merged[0], cv::Rect(0, 0, 50, 50));
    EXPECT_NEAR(coverage(merged, frame), 2500.0 / 800000.0, 1e-12);
    EXPECT_TRUE(merge_regions({}, 4, frame).empty());
}

TEST(MotionRegions, WholeFrameFirstThenOnlyWhatMovesOrIsTracked) {
    cv::Mat background(720, 1280, CV_8UC1);
    cv::randu(background, 60, 120);
    cv::GaussianBlur(background, background, {0, 0}, 3);
    MotionRegions motion(MotionOptions{.min_face_px = 80, .motion_every = 1});
    auto regions = motion.update(background, {});
    ASSERT_EQ(regions.size(), 1u);
    EXPECT_EQ(regions[0], cv::Rect(0, 0, 1280, 720));
    for (int k = 0; k < 5; ++k) regions = motion.update(background, {});
    EXPECT_TRUE(regions.empty()) << "a still scene has nothing to detect on";

    // A tracked face on a still scene keeps a region around it.
    const cv::Rect track(600, 300, 90, 90);
    regions = motion.update(background, {track});
    ASSERT_FALSE(regions.empty());
    EXPECT_TRUE(covers(regions, track));
    EXPECT_LT(coverage(regions, background.size()), 0.2);

    // A moving block is covered, the rest is not.
    cv::Mat frame = background.clone();
    const cv::Rect block(200, 200, 120, 160);
    frame(block).setTo(250);
    regions = motion.update(frame, {});
    ASSERT_FALSE(regions.empty());
    EXPECT_TRUE(covers(regions, block));
    EXPECT_FALSE(covers(regions, {1000, 500, 100, 100}));
    EXPECT_THROW(motion.update(cv::Mat(), {}), std::invalid_argument);
}

TEST(MotionRegions, MotionEveryNSearchesMotionOnEveryNthFrameAndTracksOnEvery) {
    cv::Mat background(720, 1280, CV_8UC1);
    cv::randu(background, 60, 120);
    cv::GaussianBlur(background, background, {0, 0}, 3);
    MotionRegions motion(MotionOptions{.min_face_px = 80, .motion_every = 3, .track_margin = 0.5});
    ASSERT_EQ(motion.update(background, {}).size(), 1u);  // frame 0: the whole frame
    const cv::Rect block(200, 200, 120, 160), track(800, 300, 90, 90);
    // A block that changes on every frame: motion is searched on frames 2, 5, ... (one in
    // three after the first); on frames 1 and 3 only the track is searched.
    for (int k = 1; k <= 3; ++k) {
        cv::Mat frame = background.clone();
        frame(block).setTo(k * 60);  // changes every frame: moving
        const auto regions = motion.update(frame, {track});
        EXPECT_TRUE(covers(regions, track)) << "frame " << k;
        EXPECT_EQ(covers(regions, block), k == 2) << "frame " << k;
        EXPECT_EQ(cv::countNonZero(motion.last_mask()) == 0, k != 2) << "frame " << k;
        EXPECT_EQ(motion.motion_searched(), k == 2) << "frame " << k;
    }
    // A motion frame is differenced against the frame just before it (the only skipped frame
    // that keeps a small copy): frame 4 changes the block, frame 5 repeats frame 4, so frame 5
    // sees no motion (against frame 3 it would).
    cv::Mat changed = background.clone();
    changed(block).setTo(30);
    motion.update(changed, {});                                   // frame 4: skipped, kept
    EXPECT_FALSE(motion.motion_searched());
    const auto fifth = motion.update(changed, {});                // frame 5: motion frame
    EXPECT_TRUE(motion.motion_searched());
    EXPECT_FALSE(covers(fifth, block)) << "frame 5 was differenced against another frame than frame 4";
    // track_regions: each box grown by track_margin box sides, clipped, not merged.
    const auto grown = motion.track_regions({track, cv::Rect(1250, 700, 80, 80)}, background.size());
    ASSERT_EQ(grown.size(), 2u);
    EXPECT_EQ(grown[0], cv::Rect(755, 255, 180, 180));
    EXPECT_EQ(grown[1], cv::Rect(1210, 660, 70, 60));
}

TEST(MotionRegions, TrackedFaceExplainsItsPersonsHeadBand) {
    cv::Mat background(720, 1280, CV_8UC1);
    cv::randu(background, 60, 120);
    cv::GaussianBlur(background, background, {0, 0}, 3);
    // Two people walking (tall blocks that change every frame); one has a tracked face at the
    // top of its block.
    const cv::Rect tracked_person(200, 160, 160, 400), other_person(800, 160, 160, 400);
    const cv::Rect face(230, 170, 90, 90);
    auto run = [&](double tracked_grow, const std::vector<cv::Rect>& faces) {
        MotionRegions motion(MotionOptions{.min_face_px = 80, .motion_every = 1, .tracked_grow = tracked_grow});
        std::vector<cv::Rect> regions;
        for (int k = 0; k < 3; ++k) {
            cv::Mat frame = background.clone();
            frame(tracked_person).setTo(k % 2 ? 240 : 10);
            frame(other_person).setTo(k % 2 ? 240 : 10);
            regions = motion.update(frame, {}, k == 2 ? faces : std::vector<cv::Rect>{});
        }
        return regions;
    };
    const auto untracked = run(0.25, {});
    EXPECT_TRUE(covers(untracked, face));
    EXPECT_TRUE(covers(untracked, {other_person.x, other_person.y, other_person.width, 160}));
    const auto with_track = run(0.25, {face});
    EXPECT_FALSE(covers(with_track, face)) << "the tracked person's head band is searched by its track region only";
    for (const auto& r : with_track) EXPECT_TRUE((r & tracked_person).empty()) << r;
    EXPECT_TRUE(covers(with_track, {other_person.x, other_person.y, other_person.width, 160}))
        << "an untracked person's head band is still searched";
    EXPECT_LT(coverage(with_track, background.size()), coverage(untracked, background.size()));
    // tracked_grow < 0: tracked faces explain nothing.
    EXPECT_EQ(run(-1, {face}), untracked);
}

// ---- FaceStage ---------------------------------------------------------------------------

TEST(FaceStage, StillPhotoRepeatedKeepsTrackIdsAndFillsObservations) {
    const fs::path file = faceadapt::test::weights_dir() / "demo" / "sample1.jpg";
    FACEADAPT_REQUIRE_PATH(file);
    const cv::Mat photo = cv::imread(file.string(), cv::IMREAD_COLOR);
    ASSERT_FALSE(photo.empty());
    faceadapt::config::DetectConfig detect;
    FaceStage stage("door-1", detect, 40, shared_model());
    EXPECT_EQ(stage.min_face_px(), 40);
    const auto t0 = Clock::now();
    const auto first = stage.process(photo, t0);
    ASSERT_FALSE(first.empty());
    EXPECT_DOUBLE_EQ(stage.last_stats().coverage, 1.0);  // no background model yet: whole frame
    cv::Scalar mean, stddev;
    cv::Mat grey;
    cv::cvtColor(photo, grey, cv::COLOR_BGR2GRAY);
    cv::meanStdDev(grey, mean, stddev);
    std::set<std::int64_t> ids;
    for (const auto& o : first) {
        EXPECT_EQ(o.camera, "door-1");
        EXPECT_EQ(o.timestamp, t0);
        EXPECT_GE(o.track_id, 1);
        EXPECT_TRUE(ids.insert(o.track_id).second);
        EXPECT_EQ(o.chip.size(), cv::Size(150, 150));
        EXPECT_EQ(o.chip.type(), CV_8UC3);
        EXPECT_EQ(o.frame_size, photo.size());
        EXPECT_NEAR(o.frame_brightness, mean[0], 1e-6);
        EXPECT_NEAR(o.frame_contrast, stddev[0], 1e-6);
        EXPECT_GE(std::min(o.bbox.width, o.bbox.height), 40);
        EXPECT_TRUE(cv::Rect(cv::Point(), photo.size()).contains(o.landmarks[30]));
        EXPECT_LT(o.landmarks[36].y, o.landmarks[48].y);  // eye above mouth
    }
    // Nothing moves any more: only the regions around the tracks are searched, and the faces
    // come back with the ids they had. (HOG on a crop is not bit-identical to HOG on the whole
    // frame at coarse pyramid levels, so a face near the detection threshold may be missed.)
    for (int k = 1; k <= 3; ++k) {
        const auto again = stage.process(photo, t0 + k * 200ms);
        EXPECT_LT(stage.last_stats().coverage, 0.5);
        std::set<std::int64_t> again_ids;
        for (const auto& o : again) again_ids.insert(o.track_id);
        EXPECT_TRUE(std::includes(ids.begin(), ids.end(), again_ids.begin(), again_ids.end())) << "new id in frame " << k;
        EXPECT_GE(again_ids.size() + 1, ids.size()) << "frame " << k;
    }
}

TEST(FaceStage, RejectsBadFramesNamingTheCamera) {
    faceadapt::config::DetectConfig detect;
    FaceStage stage("porch", detect, 0, shared_model());
    EXPECT_EQ(stage.min_face_px(), detect.min_face_px);
    try {
        stage.process(cv::Mat(), Clock::now());
        FAIL() << "empty frame accepted";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("porch"), std::string::npos) << e.what();
    }
    EXPECT_THROW(stage.process(cv::Mat(10, 10, CV_16UC3), Clock::now()), std::invalid_argument);
    EXPECT_THROW(FaceStage("x", detect, 0, nullptr), std::invalid_argument);
    detect.landmarks_model = "/nonexistent/landmarks.dat";
    EXPECT_THROW(FaceStage("x", detect, 0), std::runtime_error);
}

TEST(FaceStage, WalkersVideoGivesStableTracks) {
    const fs::path video = faceadapt::test::shared_dir() / "datasets" / "videos" / "walkers-1080p.mp4";
    FACEADAPT_REQUIRE_PATH(video);
    cv::VideoCapture capture(video.string());
    ASSERT_TRUE(capture.isOpened()) << video;
    faceadapt::config::DetectConfig detect;  // motion gating on, min_face_px 80
    FaceStage stage("walkers", detect, 0, shared_model());
    const auto t0 = Clock::now();
    std::map<std::int64_t, int> frames_per_track;
    int observations = 0, continued = 0;
    std::set<std::int64_t> seen;
    cv::Mat frame;
    // 12 frames at 12.5 fps (every 2nd of the 25 fps video) from the start.
    for (int index = 0, used = 0; used < 12 && capture.read(frame); ++index) {
        if (index % 2) continue;
        const auto obs = stage.process(frame, t0 + std::chrono::milliseconds(40 * index));
        std::set<std::int64_t> in_frame;
        for (const auto& o : obs) {
            EXPECT_TRUE(in_frame.insert(o.track_id).second) << "track id twice in one frame";
            EXPECT_EQ(o.chip.size(), cv::Size(150, 150));
            EXPECT_GE(o.bbox.width, 80);
            ++frames_per_track[o.track_id];
            if (used > 0) {
                ++observations;
                continued += seen.count(o.track_id) ? 1 : 0;
            }
        }
        seen.insert(in_frame.begin(), in_frame.end());
        ++used;
    }
    ASSERT_GT(observations, 5) << "too few faces found in the walkers video";
    int longest = 0;
    for (const auto& [id, n] : frames_per_track) longest = std::max(longest, n);
    EXPECT_GE(longest, 6) << "no face kept its track id over half the frames";
    EXPECT_GE(double(continued) / observations, 0.7) << "most faces should continue a track";
}

TEST(FaceStage, StaleTracksAreSearchedOnMotionFramesOnly) {
    const fs::path video = faceadapt::test::shared_dir() / "datasets" / "videos" / "walkers-1080p.mp4";
    FACEADAPT_REQUIRE_PATH(video);
    cv::VideoCapture capture(video.string());
    ASSERT_TRUE(capture.isOpened()) << video;
    std::vector<cv::Mat> frames;  // video frames 0, 5, 10 (5 fps)
    cv::Mat frame;
    for (int index = 0; frames.size() < 3 && capture.read(frame); ++index)
        if (index % 5 == 0) frames.push_back(frame.clone());
    ASSERT_EQ(frames.size(), 3u);
    faceadapt::config::DetectConfig detect;  // motion gating on, min_face_px 80, tracks live 2 s
    auto run = [&](double grace_s) {
        FaceStage stage("walkers", detect, 0, shared_model(), MotionOptions{.track_grace_s = grace_s});
        const auto t0 = Clock::now();
        std::vector<FaceStageStats> stats;
        const auto first = stage.process(frames[0], t0);  // whole frame: the faces there become tracks
        EXPECT_FALSE(first.empty());
        std::vector<cv::Rect> boxes;
        for (const auto& o : first) boxes.push_back(o.bbox);
        // One second later (tracks unmatched for 1 s, still live): a track-only frame, then a
        // motion frame.
        stage.process(frames[1], t0 + 1000ms);
        stats.push_back(stage.last_stats());
        stage.process(frames[2], t0 + 1200ms);
        stats.push_back(stage.last_stats());
        return std::make_pair(boxes, stats);
    };
    const auto [boxes, stale] = run(0.45);
    ASSERT_FALSE(boxes.empty());
    EXPECT_TRUE(stale[0].crops.empty()) << "a track unmatched for 1 s is not searched between motion frames";
    const auto [same_boxes, always] = run(-1);
    for (const auto& b : boxes) EXPECT_TRUE(covers(always[0].crops, b)) << "grace < 0: every live track, every frame";
    // On the motion frame the stale tracks are searched again (regions grown by track_margin box
    // sides around where they were last seen: single-frame tracks have no velocity).
    for (const auto& b : boxes) EXPECT_TRUE(covers(stale[1].crops, b)) << "stale tracks are searched on motion frames";
}
