// FaceAligner on real photos: the face-api demo photos (always present after fetch-weights).
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "faceadapt/ingest/face_aligner.hpp"
#include "faceadapt/ingest/face_landmarks.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using faceadapt::ingest::AlignedFace;
using faceadapt::ingest::FaceAligner;
using faceadapt::ingest::LandmarkModel;

namespace {

// One landmark model for the whole suite (loading it takes ~1 s).
std::shared_ptr<const LandmarkModel> shared_model() {
    static const auto model = std::make_shared<const LandmarkModel>();
    return model;
}

cv::Point2f mean_of(const AlignedFace& f, int first, int last) {
    cv::Point2f sum(0, 0);
    for (int i = first; i <= last; ++i) sum += f.landmarks[static_cast<std::size_t>(i)];
    return sum / float(last - first + 1);
}

// Plausible landmarks: both eyes above the mouth, the nose between, all near the box.
void expect_plausible(const AlignedFace& f, const std::string& what) {
    SCOPED_TRACE(what);
    const cv::Point2f right_eye = mean_of(f, 36, 41), left_eye = mean_of(f, 42, 47);
    const cv::Point2f nose = mean_of(f, 27, 35), mouth = mean_of(f, 48, 67);
    EXPECT_LT(right_eye.y, mouth.y);
    EXPECT_LT(left_eye.y, mouth.y);
    EXPECT_LT(right_eye.x, left_eye.x);  // subject's right eye is on the image's left
    EXPECT_GT(nose.y, std::min(right_eye.y, left_eye.y));
    EXPECT_LT(nose.y, mouth.y);
    const cv::Rect grown(f.bbox.x - f.bbox.width / 4, f.bbox.y - f.bbox.height / 4, f.bbox.width * 3 / 2,
                         f.bbox.height * 3 / 2);
    for (int i : {36, 45, 30, 48, 54}) EXPECT_TRUE(grown.contains(f.landmarks[std::size_t(i)])) << "landmark " << i;
    for (int i : {36, 45, 30, 48, 54}) EXPECT_TRUE(f.bbox.contains(f.landmarks[std::size_t(i)])) << "landmark " << i;
    EXPECT_EQ(f.chip.rows, 150);
    EXPECT_EQ(f.chip.cols, 150);
    EXPECT_EQ(f.chip.type(), CV_8UC3);
    EXPECT_GT(f.detection_score, 0.0);
}

}  // namespace

TEST(FaceAligner, FindsFacesInDemoPhotosWithPlausibleLandmarks) {
    const fs::path demo = faceadapt::test::weights_dir() / "demo";
    FACEADAPT_REQUIRE_PATH(demo / "sample1.jpg");
    const FaceAligner aligner(shared_model());
    int total = 0;
    for (int i = 1; i <= 6; ++i) {
        const fs::path file = demo / ("sample" + std::to_string(i) + ".jpg");
        const cv::Mat image = cv::imread(file.string(), cv::IMREAD_COLOR);
        ASSERT_FALSE(image.empty()) << file;
        const auto faces = aligner.detect(image);
        EXPECT_FALSE(faces.empty()) << file;
        for (std::size_t k = 0; k < faces.size(); ++k) {
            expect_plausible(faces[k], file.string() + " face " + std::to_string(k));
            if (k > 0) {
                EXPECT_GE(faces[k - 1].bbox.area(), faces[k].bbox.area());
            }
        }
        total += int(faces.size());
    }
    EXPECT_GE(total, 6);
}

TEST(FaceAligner, ChipIsRgbAndCentredOnTheFace) {
    const fs::path file = faceadapt::test::weights_dir() / "demo" / "sample1.jpg";
    FACEADAPT_REQUIRE_PATH(file);
    const cv::Mat bgr = cv::imread(file.string(), cv::IMREAD_COLOR);
    const FaceAligner aligner(shared_model());
    const auto faces = aligner.detect(bgr);
    ASSERT_FALSE(faces.empty());
    const AlignedFace& f = faces.front();
    // The same chip from the grey image equals the chip's luma: RGB order, same geometry.
    cv::Mat grey;
    cv::cvtColor(bgr, grey, cv::COLOR_BGR2GRAY);
    cv::Mat chip_luma, grey_chip_luma;
    cv::cvtColor(f.chip, chip_luma, cv::COLOR_RGB2GRAY);
    cv::cvtColor(faceadapt::ingest::extract_face_chip(grey, f.landmarks), grey_chip_luma, cv::COLOR_RGB2GRAY);
    EXPECT_LT(cv::norm(chip_luma, grey_chip_luma, cv::NORM_L1) / (150.0 * 150.0), 3.0);
    // Swapping to BGR would make the luma differ visibly on a colour photo.
    cv::Mat swapped_luma;
    cv::cvtColor(f.chip, swapped_luma, cv::COLOR_BGR2GRAY);
    EXPECT_GT(cv::norm(swapped_luma, grey_chip_luma, cv::NORM_L1), cv::norm(chip_luma, grey_chip_luma, cv::NORM_L1));
    // Aligned chip: the eyes sit in the upper half, left of centre / right of centre.
    const FaceAligner again(shared_model());
    const auto on_chip = again.detect(cv::Mat(f.chip.clone()), {.upsample_below_px = 300});
    if (!on_chip.empty()) {
        const auto& c = on_chip.front();
        EXPECT_LT(mean_of(c, 36, 41).y, 150.0f * 0.6f);
        EXPECT_LT(mean_of(c, 36, 41).x, mean_of(c, 42, 47).x);
    }
}

TEST(FaceAligner, NoFaceGivesEmpty) {
    cv::Mat noise(240, 320, CV_8UC3);
    cv::randu(noise, 0, 255);
    const FaceAligner aligner(shared_model());
    EXPECT_TRUE(aligner.detect(noise).empty());
    EXPECT_TRUE(aligner.detect(cv::Mat(200, 200, CV_8UC1, cv::Scalar(128))).empty());
}

TEST(FaceAligner, BadInputGivesClearError) {
    const FaceAligner aligner(shared_model());
    try {
        (void)aligner.detect(cv::Mat());
        FAIL() << "empty Mat accepted";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("empty image"), std::string::npos) << e.what();
    }
    EXPECT_THROW((void)aligner.detect(cv::Mat(100, 100, CV_32FC1, cv::Scalar(0.5))), std::invalid_argument);
    EXPECT_THROW((void)aligner.detect(cv::Mat(100, 100, CV_8UC4, cv::Scalar::all(0))), std::invalid_argument);
    // A file that is not an image decodes to an empty Mat: the same clear error.
    faceadapt::test::TempDir dir;
    const fs::path bogus = dir.path() / "not-an-image.jpg";
    { std::ofstream(bogus) << "plain text, not a JPEG"; }
    EXPECT_THROW((void)aligner.detect(cv::imread(bogus.string())), std::invalid_argument);
}

TEST(LandmarkModel, MissingFileIsNamedInTheError) {
    try {
        LandmarkModel model("/nonexistent/shape_predictor.dat");
        FAIL() << "missing model accepted";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("/nonexistent/shape_predictor.dat"), std::string::npos) << e.what();
    }
    faceadapt::test::TempDir dir;
    const fs::path junk = dir.path() / "junk.dat";
    { std::ofstream(junk) << "junk"; }
    EXPECT_THROW(LandmarkModel model(junk), std::runtime_error);
}

TEST(FaceAligner, SmallGreyPhotoNeedsUpsampling) {
    const fs::path file = faceadapt::test::shared_dir() / "datasets" / "orl" / "s1" / "1.png";
    FACEADAPT_REQUIRE_PATH(file);
    const cv::Mat grey = cv::imread(file.string(), cv::IMREAD_UNCHANGED);
    ASSERT_EQ(grey.type(), CV_8UC1);
    const FaceAligner aligner(shared_model());
    const auto faces = aligner.detect(grey);
    ASSERT_EQ(faces.size(), 1u);
    expect_plausible(faces.front(), file.string());
    // The box is reported in the 92x112 input's pixels, not the upsampled copy's.
    EXPECT_LE(faces.front().bbox.width, grey.cols);
    EXPECT_GE(faces.front().bbox.width, grey.cols / 3);
}

// The alignment the source model was trained on: ../shared/reference/embeddings/chips holds 24
// chips (ORL and Yale B) made with dlib's own pipeline; ours must reproduce them closely.
TEST(FaceAligner, ReproducesTheReferenceChips) {
    const fs::path chips = faceadapt::test::shared_dir() / "reference" / "embeddings" / "chips";
    const fs::path datasets = faceadapt::test::shared_dir() / "datasets";
    FACEADAPT_REQUIRE_PATH(chips);
    FACEADAPT_REQUIRE_PATH(datasets / "orl");
    const FaceAligner aligner(shared_model());
    int compared = 0;
    double total = 0;
    for (const auto& entry : fs::directory_iterator(chips)) {
        // s1_10.png -> orl/s1/10.png; yaleB01_yaleB01_P00A+000E+00.png -> yaleb/yaleB01/yaleB01_P00A+000E+00.png
        const std::string name = entry.path().filename().string();
        const auto cut = name.find('_');
        ASSERT_NE(cut, std::string::npos) << name;
        const std::string folder = name.substr(0, cut), file = name.substr(cut + 1);
        const fs::path source = folder.rfind("yaleB", 0) == 0 ? datasets / "yaleb" / folder / file
                                                              : datasets / "orl" / folder / file;
        if (!fs::exists(source)) continue;
        const cv::Mat image = cv::imread(source.string(), cv::IMREAD_COLOR);
        const auto faces = aligner.detect(image);
        ASSERT_FALSE(faces.empty()) << source;
        cv::Mat ours;
        cv::cvtColor(faces.front().chip, ours, cv::COLOR_RGB2BGR);
        const cv::Mat reference = cv::imread(entry.path().string(), cv::IMREAD_COLOR);
        ASSERT_EQ(reference.size(), ours.size()) << entry.path();
        const double mean_abs = cv::norm(ours, reference, cv::NORM_L1) / (ours.total() * 3.0);
        EXPECT_LT(mean_abs, 8.0) << name << ": chip differs from the reference";  // measured 1.4..6.2
        total += mean_abs;
        ++compared;
    }
    ASSERT_GT(compared, 0) << "no reference chip had its source image";
    EXPECT_LT(total / compared, 4.0) << "mean over " << compared << " chips";  // measured 2.6
}
