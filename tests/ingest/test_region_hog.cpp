// RegionHog (ingest's private region-restricted HOG): its pyramid levels are dlib's bit for bit,
// its features in a sub-image are the whole level's two cells from the sub-image's border (not one), and its
// detections inside a region (edges at any cell phase) are the whole-frame detector's, on frames of walkers-1080p.mp4
// (skipped when absent) and a face-api demo photo (always present).
#include <algorithm>
#include <sstream>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

#include <dlib/image_processing.h>
#include <dlib/image_processing/frontal_face_detector.h>
#include <dlib/opencv/cv_image.h>

#include "region_hog.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using faceadapt::ingest::detail::RegionHog;
using faceadapt::ingest::detail::ScoredBox;

namespace {

// Frame `index` of the walkers video sampled at 5 fps (the benchmark's frames), grey.
cv::Mat walkers_frame(int index) {
    const fs::path video = faceadapt::test::shared_dir() / "datasets" / "videos" / "walkers-1080p.mp4";
    if (!fs::exists(video)) return {};
    cv::VideoCapture capture(video.string());
    const int step = static_cast<int>(std::lround(capture.get(cv::CAP_PROP_FPS) / 5.0));
    cv::Mat frame, grey;
    for (int i = 0; capture.read(frame); ++i)
        if (i == index * step) {
            cv::cvtColor(frame, grey, cv::COLOR_BGR2GRAY);
            return grey;
        }
    return {};
}

cv::Mat demo_photo_grey() {
    const fs::path file = faceadapt::test::weights_dir() / "demo" / "sample1.jpg";
    const cv::Mat photo = cv::imread(file.string(), cv::IMREAD_GRAYSCALE);
    return photo;
}

// dlib's detector on the whole image, as cv boxes with confidences.
std::vector<ScoredBox> whole_image_detections(const cv::Mat& grey) {
    auto detector = dlib::get_frontal_face_detector();
    std::vector<dlib::rect_detection> dets;
    detector(dlib::cv_image<unsigned char>(grey), dets);
    std::vector<ScoredBox> out;
    for (const auto& d : dets)
        out.push_back({cv::Rect(int(d.rect.left()), int(d.rect.top()), int(d.rect.width()), int(d.rect.height())),
                       d.detection_confidence});
    return out;
}

bool has(const std::vector<ScoredBox>& boxes, const ScoredBox& b) {
    return std::any_of(boxes.begin(), boxes.end(), [&](const ScoredBox& x) {
        return x.box == b.box && std::abs(x.score - b.score) < 1e-9;
    });
}

}  // namespace

TEST(RegionHog, PyramidLevelsAreDlibsBitForBit) {
    const cv::Mat grey = demo_photo_grey();
    ASSERT_FALSE(grey.empty());
    RegionHog hog;
    hog.detect(grey, std::vector<cv::Rect>{}, 0);  // loads the image
    // dlib's own chain of pyramid_down<6>, as its scanner builds it.
    dlib::pyramid_down<6> pyr;
    std::vector<dlib::array2d<unsigned char>> dlib_levels(static_cast<std::size_t>(hog.levels()));
    ASSERT_GE(hog.levels(), 4);
    pyr(dlib::cv_image<unsigned char>(grey), dlib_levels[1]);
    for (int l = 2; l < hog.levels(); ++l) pyr(dlib_levels[std::size_t(l - 1)], dlib_levels[std::size_t(l)]);
    for (int l = 1; l < hog.levels(); ++l) {
        const auto& d = dlib_levels[std::size_t(l)];
        ASSERT_EQ(hog.level_size(l), cv::Size(int(d.nc()), int(d.nr()))) << "level " << l;
        const cv::Mat expected(int(d.nr()), int(d.nc()), CV_8UC1, const_cast<unsigned char*>(&d[0][0]),
                               static_cast<std::size_t>(d.width_step()));
        // A piece in the middle first (computed alone), then the whole level (the rest).
        const cv::Rect middle(d.nc() / 3, d.nr() / 3, d.nc() / 4 + 1, d.nr() / 5 + 1);
        EXPECT_EQ(cv::norm(hog.level_pixels(l, middle), expected(middle), cv::NORM_INF), 0) << "level " << l;
        const cv::Rect all(0, 0, int(d.nc()), int(d.nr()));
        EXPECT_EQ(cv::norm(hog.level_pixels(l, all), expected, cv::NORM_INF), 0) << "level " << l;
    }
}

TEST(RegionHog, SubImageFeaturesAreTheWholeLevelsTwoCellsFromItsBorder) {
    const cv::Mat grey = demo_photo_grey();
    ASSERT_FALSE(grey.empty());
    dlib::array<dlib::array2d<float>> whole, part;
    dlib::extract_fhog_features(dlib::cv_image<unsigned char>(grey), whole, 8, 10, 10);
    const cv::Rect sub(8 * 7, 8 * 5, 203, 171);  // origin on the cell grid, any size
    dlib::extract_fhog_features(dlib::cv_image<unsigned char>(grey(sub)), part, 8, 10, 10);
    float worst_inside = 0, worst_border = 0;
    for (std::size_t p = 0; p < part.size(); ++p)
        for (long r = 0; r < part[p].nr(); ++r)
            for (long c = 0; c < part[p].nc(); ++c) {
                // The feature's cell, in sub-image pixels, from its top-left corner.
                const dlib::point px = dlib::fhog_to_image(dlib::point(c, r), 8, 10, 10);
                const dlib::point at = dlib::image_to_fhog(px + dlib::point(sub.x, sub.y), 8, 10, 10);
                if (px.x() < 0 || px.y() < 0 || px.x() >= sub.width || px.y() >= sub.height) continue;
                const float diff = std::abs(part[p][r][c] - whole[p][at.y()][at.x()]);
                const bool inside = px.x() >= 16 && px.y() >= 16 && px.x() + 8 <= sub.width - 16 &&
                                    px.y() + 8 <= sub.height - 16;
                (inside ? worst_inside : worst_border) = std::max(inside ? worst_inside : worst_border, diff);
            }
    EXPECT_EQ(worst_inside, 0.f);
    EXPECT_GT(worst_border, 0.f) << "the border check checks nothing";
    // One cell is not enough (RegionHog keeps two).
    float worst_one_cell = 0;
    for (std::size_t p = 0; p < part.size(); ++p)
        for (long r = 0; r < part[p].nr(); ++r)
            for (long c = 0; c < part[p].nc(); ++c) {
                const dlib::point px = dlib::fhog_to_image(dlib::point(c, r), 8, 10, 10);
                const dlib::point at = dlib::image_to_fhog(px + dlib::point(sub.x, sub.y), 8, 10, 10);
                if (px.x() >= 8 && px.y() >= 8 && px.x() + 8 <= sub.width - 8 && px.y() + 8 <= sub.height - 8)
                    worst_one_cell = std::max(worst_one_cell, std::abs(part[p][r][c] - whole[p][at.y()][at.x()]));
            }
    EXPECT_GT(worst_one_cell, 0.f);
}

TEST(RegionHog, WholeImageGivesTheDetectorsBoxes) {
    for (const cv::Mat& grey : {demo_photo_grey(), walkers_frame(7)}) {
        if (grey.empty()) continue;  // walkers absent
        const auto expected = whole_image_detections(grey);
        ASSERT_FALSE(expected.empty());
        RegionHog hog;
        const auto all = hog.detect(grey, {cv::Rect(cv::Point(), grey.size())}, 0);
        ASSERT_EQ(all.size(), expected.size());
        for (const auto& e : expected) EXPECT_TRUE(has(all, e)) << e.box << " " << e.score;
        // Levels whose boxes are below the minimum are skipped; the boxes above it remain.
        const auto large = hog.detect(grey, {cv::Rect(cv::Point(), grey.size())}, 80);
        for (const auto& e : expected)
            if (std::min(e.box.width, e.box.height) >= 80) {
                EXPECT_TRUE(has(large, e)) << e.box << " " << e.score;
            }
        for (const auto& b : large) EXPECT_GE(std::min(b.box.width, b.box.height), 80);
    }
}

TEST(RegionHog, ACropRegionFindsTheFaceTheWholeFrameFinds) {
    const cv::Mat grey = walkers_frame(7);
    if (grey.empty() && faceadapt::test::datasets_required())
        FAIL() << "needs ../shared/datasets/videos/walkers-1080p.mp4 (FACEADAPT_REQUIRE_DATASETS=1)";
    if (grey.empty()) GTEST_SKIP() << "needs ../shared/datasets/videos/walkers-1080p.mp4";
    // On the whole frame this face scores 0.33; dlib on the 366 px crop around it finds nothing
    // (its pyramid samples the crop elsewhere); the region finds the same box and score.
    const auto expected = whole_image_detections(grey);
    const auto face = std::find_if(expected.begin(), expected.end(),
                                   [](const ScoredBox& b) { return b.box.contains({660, 690}); });
    ASSERT_NE(face, expected.end());
    EXPECT_EQ(face->box, cv::Rect(621, 649, 87, 88));
    const cv::Rect crop(456, 456, 366, 366);
    auto detector = dlib::get_frontal_face_detector();
    const cv::Mat cropped = grey(crop).clone();
    EXPECT_TRUE(detector(dlib::cv_image<unsigned char>(cropped)).empty());
    RegionHog hog;
    const auto found = hog.detect(grey, {crop}, 80);
    ASSERT_EQ(found.size(), 1u);
    EXPECT_EQ(found[0].box, face->box);
    EXPECT_NEAR(found[0].score, face->score, 1e-9);
    // A region bounded to other box sizes (a track's) does not run the face's level.
    using faceadapt::ingest::detail::HogRegion;
    EXPECT_TRUE(hog.detect(grey, std::vector<HogRegion>{{crop, 100, 140}}, 80).empty());
    ASSERT_EQ(hog.detect(grey, std::vector<HogRegion>{{crop, 70, 100}}, 80).size(), 1u);
    // Nothing is found outside the regions.
    EXPECT_TRUE(hog.detect(grey, {cv::Rect(1500, 100, 300, 300)}, 80).empty());
}

// The filters run only on the feature cells the kept windows read (RegionHog::detect crops a
// sub-image's features): around every whole-image detection, regions at every cell phase and
// several margins, away from the image border, still give its box and score.
TEST(RegionHog, RegionsAtEveryCellPhaseGiveTheWholeImagesBoxesAndScores) {
    for (const cv::Mat& grey : {demo_photo_grey(), walkers_frame(7)}) {
        if (grey.empty()) continue;  // walkers absent
        const auto expected = whole_image_detections(grey);
        ASSERT_FALSE(expected.empty());
        const cv::Rect whole(cv::Point(), grey.size());
        RegionHog hog;
        int checked = 0;
        for (const auto& e : expected)
            for (const int margin : {2, 20, 45})
                for (int phase = 0; phase < 8; phase += 3) {
                    const cv::Rect region(e.box.x - margin - phase, e.box.y - margin - (7 - phase),
                                          e.box.width + 2 * margin + phase, e.box.height + 2 * margin + 7 - phase);
                    if ((region & whole) != region) continue;
                    const auto found = hog.detect(grey, {region}, 0);
                    std::ostringstream got;
                    got.precision(17);
                    for (const auto& f : found) got << f.box << ":" << f.score << " ";
                    EXPECT_TRUE(has(found, e)) << e.box << " " << e.score << " in " << region << ", found " << got.str();
                    ++checked;
                }
        EXPECT_GT(checked, 0);
    }
}
