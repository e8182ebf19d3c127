// `faceadapt package --strangers DIR` uses a stranger photo only when it passes the site's
// enrollment check (tools/people_folder.hpp): real LFW faces, plus Yale B faces under its darkest
// lights (the detector finds faces in many; their nearly black chips are near-identical
// impostor pairs: without the check these 24 photos moved this test's pair-FAR 0.05 threshold
// from 0.633 to 0.529), fully black images (no face) and a file whose name carries a terminal
// escape. The threshold calibrated with the extra photos is the one calibrated without them, and
// the command says how many it skipped and why, the names through printable().
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <regex>

#include "faceadapt/publish/package.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using faceadapt::test::faceadapt_bin;
using faceadapt::test::run_command;

namespace {

// The images of an LFW person, sorted.
std::vector<fs::path> images_of(const fs::path& person) {
    std::vector<fs::path> v;
    for (const auto& e : fs::directory_iterator(person)) v.push_back(e.path());
    std::sort(v.begin(), v.end());
    return v;
}

// "strangers: K of N photos skipped: ..." -> K (0 when the line is absent).
std::size_t skipped(const std::string& out, std::size_t* photos = nullptr) {
    std::smatch m;
    if (!std::regex_search(out, m, std::regex("strangers: ([0-9]+) of ([0-9]+) photos skipped")))
        return 0;
    if (photos) *photos = std::stoul(m[2]);
    return std::stoul(m[1]);
}

}  // namespace

TEST(PackageStrangers, DarkAndFacelessStrangerPhotosAreSkippedAndCannotCollapseTheThreshold) {
    if (!fs::exists(faceadapt_bin()))
        GTEST_SKIP() << "needs the faceadapt executable in " << faceadapt_bin();
    const fs::path lfw = faceadapt::test::shared_dir() / "datasets" / "lfw-devtest" / "images";
    FACEADAPT_REQUIRE_PATH(lfw);
    faceadapt::test::TempDir tmp;
    const fs::path t = tmp.path();
    std::string out;
    ASSERT_EQ(run_command(faceadapt_bin() + " keygen --out " + (t / "keys").string(), &out), 0)
        << out;

    // Gallery: 3 people, 2 photos each. Strangers: the first photo of 12 other people.
    std::vector<fs::path> people;
    for (const auto& e : fs::directory_iterator(lfw))
        if (e.is_directory()) people.push_back(e.path());
    std::sort(people.begin(), people.end());
    std::vector<fs::path> multi, single;
    for (const auto& p : people)
        (images_of(p).size() >= 2 && multi.size() < 3 ? multi : single).push_back(p);
    ASSERT_EQ(multi.size(), 3u);
    ASSERT_GE(single.size(), 12u);
    for (const auto& p : multi) {
        fs::create_directories(t / "gallery" / p.filename());
        for (int i = 0; i < 2; ++i)
            fs::copy_file(images_of(p)[i],
                          t / "gallery" / p.filename() / images_of(p)[i].filename());
    }
    fs::create_directories(t / "clean");
    fs::create_directories(t / "dirty");
    for (std::size_t i = 0; i < 12; ++i) {
        const auto f = images_of(single[i]).front();
        fs::copy_file(f, t / "clean" / f.filename());
        fs::copy_file(f, t / "dirty" / f.filename());
    }
    // The dirty folder adds 20 Yale B people each under one of its darkest lights (the detector
    // finds faces in many: their nearly black chips embed alike whoever they show, the impostor
    // pairs that collapsed a threshold), 4 fully black images and an escape in a file name.
    const fs::path yale = faceadapt::test::shared_dir() / "datasets" / "yaleb";
    FACEADAPT_REQUIRE_PATH(yale / "yaleB01");
    std::size_t added = 0;
    const char* lights[] = {"P00A+130E+20", "P00A-110E+65", "P00A+050E-40", "P00A-120E+00"};
    for (int k = 1; k <= 20; ++k, ++added) {
        char id[16];
        std::snprintf(id, sizeof id, "yaleB%02d", k < 14 ? k : k + 1);  // Yale B has no yaleB14
        const fs::path f = yale / id / (std::string(id) + "_" + lights[k % 4] + ".png");
        ASSERT_TRUE(fs::exists(f)) << f;
        fs::copy_file(f, t / "dirty" / f.filename());
    }
    for (int i = 0; i < 4; ++i, ++added)
        ASSERT_TRUE(cv::imwrite((t / "dirty" / ("black_" + std::to_string(i) + ".png")).string(),
                                cv::Mat::zeros(250, 250, CV_8UC3)));
    ASSERT_TRUE(cv::imwrite((t / "dirty" / "black_\x1b[31mred.png").string(),
                            cv::Mat::zeros(250, 250, CV_8UC3)));
    ++added;

    // A pair FAR of 0.05 needs 59 pairs without an exceedance; 3x2 gallery photos and 12
    // strangers give 12 + 66 + 72.
    const std::string base = faceadapt_bin() + " package --key " + (t / "keys").string() +
                             " --site cli --version 1 --gallery " + (t / "gallery").string() +
                             " --far 0.05 --far-kind pair";
    ASSERT_EQ(run_command(base + " --strangers " + (t / "clean").string() + " --out " +
                              (t / "clean.fapkg").string() + " 2>&1",
                          &out),
              0)
        << out;
    const std::size_t clean_skipped = skipped(out);
    const auto clean = faceadapt::publish::Package::read(t / "clean.fapkg").manifest;
    ASSERT_TRUE(clean.operating_point);
    ASSERT_TRUE(clean.operating_point->calibrated) << out;

    ASSERT_EQ(run_command(base + " --strangers " + (t / "dirty").string() + " --out " +
                              (t / "dirty.fapkg").string() + " 2>&1",
                          &out),
              0)
        << out;
    std::size_t photos = 0;
    EXPECT_EQ(skipped(out, &photos), clean_skipped + added) << out;
    EXPECT_EQ(photos, 12 + added) << out;
    // The detector finds faces in dark photos; the enrollment gate refuses them (their sharpness
    // is checked before their exposure).
    EXPECT_TRUE(out.find("the photo is blurred") != std::string::npos ||
                out.find("the face is too dark") != std::string::npos)
        << out;
    EXPECT_NE(out.find("no face found"), std::string::npos) << out;
    EXPECT_NE(out.find("black_0.png"), std::string::npos) << "each skipped file is named: " << out;
    EXPECT_EQ(out.find('\x1b'), std::string::npos)
        << "a file name reaches the output through printable()";
    const auto dirty = faceadapt::publish::Package::read(t / "dirty.fapkg").manifest;
    ASSERT_TRUE(dirty.operating_point);
    EXPECT_TRUE(dirty.operating_point->calibrated);
    EXPECT_EQ(dirty.operating_point->impostor_pairs, clean.operating_point->impostor_pairs)
        << "the same photos were used";
    EXPECT_EQ(dirty.match_threshold, clean.match_threshold)
        << "the dark photos did not move the threshold";
    EXPECT_GT(dirty.match_threshold, 0.3)
        << "LFW people lie farther apart than that: not collapsed";
}
