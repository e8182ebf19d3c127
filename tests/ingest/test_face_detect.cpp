// detect_stills and `faceadapt detect`: chips written per identity folder, summary, bad input.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <regex>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

#include "faceadapt/ingest/face_batch.hpp"
#include "faceadapt/ingest/face_landmarks.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using namespace faceadapt::ingest;

namespace {

std::shared_ptr<const LandmarkModel> shared_model() {
    static const auto model = std::make_shared<const LandmarkModel>();
    return model;
}

fs::path faceadapt_exe() { return faceadapt::test::binary_dir() / "tools" / "faceadapt"; }

void expect_chip(const fs::path& file) {
    const cv::Mat chip = cv::imread(file.string(), cv::IMREAD_UNCHANGED);
    ASSERT_FALSE(chip.empty()) << file;
    EXPECT_EQ(chip.size(), cv::Size(150, 150)) << file;
    EXPECT_EQ(chip.type(), CV_8UC3) << file;
}

}  // namespace

// The acceptance check of the alignment: ORL's 92x112 photos, upsampled before detecting.
// All 400 images: ~9 s of CPU over 2 threads here (measured), so it runs in full.
TEST(DetectStills, OrlFindsAFaceInAtLeast95PercentAndWritesChipsPerIdentity) {
    const fs::path orl = faceadapt::test::shared_dir() / "datasets" / "orl";
    FACEADAPT_REQUIRE_PATH(orl);
    faceadapt::test::TempDir out;
    const auto summary = detect_stills({.input = orl, .out = out.path(), .options = {}}, shared_model());
    EXPECT_EQ(summary.images, 400u);
    EXPECT_EQ(summary.unreadable, 0u);
    EXPECT_EQ(summary.found + summary.missing, summary.images);
    EXPECT_GE(double(summary.found) / summary.images, 0.95) << summary.missing << " missing";
    std::cout << "ORL: images " << summary.images << ", found " << summary.found << ", missing " << summary.missing
              << '\n';
    EXPECT_EQ(summary.chips, summary.found);
    EXPECT_EQ(summary.missing_files.size(), summary.missing);
    std::size_t written = 0;
    for (const auto& entry : fs::recursive_directory_iterator(out.path()))
        if (entry.is_regular_file()) {
            ++written;
            EXPECT_EQ(entry.path().extension(), ".png");
            // Identity folders kept: out/sN/<image>.png
            EXPECT_TRUE(fs::exists(orl / fs::relative(entry.path().parent_path(), out.path()))) << entry.path();
        }
    EXPECT_EQ(written, summary.chips);
    expect_chip(out.path() / "s1" / "1.png");
    expect_chip(out.path() / "s40" / "10.png");
}

TEST(DetectStills, AllFacesOfAGroupPhotoAndUnreadableFiles) {
    const fs::path demo = faceadapt::test::weights_dir() / "demo";
    FACEADAPT_REQUIRE_PATH(demo / "sample1.jpg");
    faceadapt::test::TempDir in, out;
    fs::create_directories(in.path() / "group");
    fs::copy_file(demo / "sample1.jpg", in.path() / "group" / "photo.jpg");
    { std::ofstream(in.path() / "group" / "broken.jpg") << "not a JPEG"; }
    { std::ofstream(in.path() / "notes.txt") << "ignored: no image extension"; }
    cv::Mat blank(200, 200, CV_8UC3, cv::Scalar(90, 90, 90));
    cv::imwrite((in.path() / "blank.png").string(), blank);

    const auto summary = detect_stills({.input = in.path(), .out = out.path(), .options = {}, .all_faces = true, .jobs = 2}, shared_model());
    EXPECT_EQ(summary.images, 3u);
    EXPECT_EQ(summary.found, 1u);
    EXPECT_EQ(summary.missing, 1u);
    EXPECT_EQ(summary.unreadable, 1u);
    ASSERT_EQ(summary.missing_files.size(), 1u);
    EXPECT_EQ(summary.missing_files[0], fs::path("blank.png"));
    ASSERT_EQ(summary.unreadable_files.size(), 1u);
    EXPECT_EQ(summary.unreadable_files[0], fs::path("group") / "broken.jpg");
    EXPECT_GE(summary.chips, 2u);
    for (std::size_t k = 0; k < summary.chips; ++k)
        expect_chip(out.path() / "group" / ("photo_" + std::to_string(k) + ".png"));
}

TEST(DetectStills, MissingInputOrNonImageFileIsAnInvalidArgument) {
    faceadapt::test::TempDir out;
    EXPECT_THROW(detect_stills({.input = "/nonexistent/photos", .out = out.path(), .options = {}}, shared_model()), std::invalid_argument);
    const fs::path text = out.path() / "readme.txt";
    { std::ofstream(text) << "text"; }
    try {
        detect_stills({.input = text, .out = out.path() / "chips", .options = {}}, shared_model());
        FAIL() << "a text file was accepted";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("readme.txt"), std::string::npos) << e.what();
    }
}

TEST(DetectCommand, WritesChipsAndPrintsTheSummary) {
    if (!fs::exists(faceadapt_exe())) GTEST_SKIP() << "needs " << faceadapt_exe() << " (build the faceadapt target)";
    const fs::path orl = faceadapt::test::shared_dir() / "datasets" / "orl";
    FACEADAPT_REQUIRE_PATH(orl / "s1");
    faceadapt::test::TempDir in, out;
    fs::copy(orl / "s1", in.path() / "s1");
    fs::copy(orl / "s2", in.path() / "s2");
    std::string output;
    const int rc = faceadapt::test::run_command(
        faceadapt_exe().string() + " detect " + in.path().string() + " --out " + out.path().string(), &output);
    EXPECT_EQ(rc, 0) << output;
    std::smatch m;
    ASSERT_TRUE(std::regex_search(output, m, std::regex(R"(images (\d+), found (\d+), missing (\d+))"))) << output;
    EXPECT_EQ(std::stoi(m[1]), 20);
    EXPECT_GE(std::stoi(m[2]), 19);
    EXPECT_EQ(std::stoi(m[2]) + std::stoi(m[3]), 20);
    expect_chip(out.path() / "s2" / "1.png");

    // One image file in, one chip out.
    faceadapt::test::TempDir single;
    EXPECT_EQ(faceadapt::test::run_command(faceadapt_exe().string() + " detect " + (orl / "s1" / "1.png").string() +
                                               " --out " + single.path().string(), &output), 0) << output;
    expect_chip(single.path() / "1.png");
}

TEST(DetectCommand, BadInputExitsWithTwoAndSaysWhy) {
    if (!fs::exists(faceadapt_exe())) GTEST_SKIP() << "needs " << faceadapt_exe() << " (build the faceadapt target)";
    faceadapt::test::TempDir out;
    std::string output;
    EXPECT_EQ(faceadapt::test::run_command(faceadapt_exe().string() + " detect /nonexistent/photos --out " +
                                               out.path().string(), &output), 2);
    EXPECT_NE(output.find("/nonexistent/photos"), std::string::npos) << output;
    EXPECT_EQ(faceadapt::test::run_command(faceadapt_exe().string() + " detect " + out.path().string(), &output), 2)
        << "--out is required: " << output;
    EXPECT_EQ(faceadapt::test::run_command(faceadapt_exe().string() + " detect " + out.path().string() +
                                               " --out " + out.path().string() + " --landmarks /nonexistent/sp.dat", &output), 1);
    EXPECT_NE(output.find("/nonexistent/sp.dat"), std::string::npos) << output;
}
