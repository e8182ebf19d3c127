// Enhancer views, the gallery, and enrollment refusals on real photos (skipped without them).
#include <cmath>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <gtest/gtest.h>

#include "faceadapt/ingest/face_aligner.hpp"
#include "faceadapt/quality/enhancer.hpp"
#include "faceadapt/quality/enroll_gate.hpp"
#include "faceadapt/quality/gallery.hpp"
#include "test_support.hpp"

namespace q = faceadapt::quality;
namespace fs = std::filesystem;

namespace {

fs::path demo(const std::string& name) { return faceadapt::test::weights_dir() / "demo" / name; }

cv::Mat face_like_chip() {
    cv::Mat chip(150, 150, CV_8UC3, cv::Scalar(90, 70, 60));
    cv::ellipse(chip, {75, 80}, {45, 60}, 0, 0, 360, cv::Scalar(170, 130, 110), -1);
    cv::circle(chip, {58, 65}, 6, cv::Scalar(30, 30, 30), -1);
    cv::circle(chip, {92, 65}, 6, cv::Scalar(30, 30, 30), -1);
    cv::line(chip, {60, 110}, {90, 110}, cv::Scalar(120, 40, 40), 3);
    cv::Mat noise(chip.size(), CV_8UC3);
    cv::randn(noise, cv::Scalar::all(0), cv::Scalar::all(12));
    cv::add(chip, noise, chip);
    return chip;
}

cv::Mat low_contrast_chip() {
    cv::Mat chip = face_like_chip();
    chip.convertTo(chip, CV_8UC3, 0.25, 90);  // luma squeezed into ~[90, 150]
    return chip;
}

double luma_range(const cv::Mat& rgb) {
    cv::Mat grey;
    cv::cvtColor(rgb, grey, cv::COLOR_RGB2GRAY);
    double lo = 0, hi = 0;
    cv::minMaxLoc(grey, &lo, &hi);
    return hi - lo;
}

}  // namespace

TEST(Enhancer, TwoDefaultViewsDifferAndKeepShape) {
    const cv::Mat in = low_contrast_chip();
    const cv::Mat keep = in.clone();
    const auto first = q::Enhancer::first_view(), second = q::Enhancer::second_view();
    const cv::Mat a = first.apply(in), b = second.apply(in);
    EXPECT_EQ(cv::norm(in, keep, cv::NORM_INF), 0.0) << "input modified";
    for (const auto& out : {a, b}) {
        EXPECT_EQ(out.size(), in.size());
        EXPECT_EQ(out.type(), CV_8UC3);
        EXPECT_GT(cv::norm(out, in, cv::NORM_L1) / in.total(), 5.0);
    }
    EXPECT_GT(cv::norm(a, b, cv::NORM_L1) / in.total(), 5.0) << "the two views must differ";
    EXPECT_NE(first.spec(), second.spec());
    EXPECT_EQ(first.name(), "first");
}

TEST(Enhancer, EachStepDoesWhatItSays) {
    const cv::Mat in = low_contrast_chip();
    EXPECT_GT(luma_range(q::Enhancer::parse("stretch:1").apply(in)), 1.5 * luma_range(in));
    EXPECT_GT(luma_range(q::Enhancer::parse("equalize").apply(in)), 1.5 * luma_range(in));
    EXPECT_GT(luma_range(q::Enhancer::parse("clahe:3").apply(in)), luma_range(in));
    const cv::Mat noisy = face_like_chip();
    for (const char* smoothing : {"smooth:1.5", "bilateral:40", "median:5", "denoise:10"}) {
        const cv::Mat out = q::Enhancer::parse(smoothing).apply(noisy);
        cv::Mat grey_in, grey_out, lap_in, lap_out;  // on the luma, where denoise works
        cv::cvtColor(noisy, grey_in, cv::COLOR_RGB2GRAY);
        cv::cvtColor(out, grey_out, cv::COLOR_RGB2GRAY);
        cv::Laplacian(grey_in, lap_in, CV_64F);
        cv::Laplacian(grey_out, lap_out, CV_64F);
        EXPECT_LT(cv::norm(lap_out), 0.8 * cv::norm(lap_in)) << smoothing << " did not smooth";
    }
    cv::Mat grey;
    cv::cvtColor(noisy, grey, cv::COLOR_RGB2GRAY);
    EXPECT_EQ(q::Enhancer::first_view().apply(grey).type(), CV_8UC1);
}

TEST(Enhancer, SpecParsingAndBadInput) {
    const auto e = q::Enhancer::parse(" stretch:2, median:5 ,denoise ");
    ASSERT_EQ(e.steps().size(), 3u);
    EXPECT_EQ(e.steps()[1].name, "median");
    EXPECT_DOUBLE_EQ(e.steps()[1].param, 5.0);
    EXPECT_DOUBLE_EQ(e.steps()[2].param, 7.0);  // default
    EXPECT_EQ(q::Enhancer::parse(e.spec()).spec(), e.spec());
    EXPECT_THROW(q::Enhancer::parse("sharpen"), std::invalid_argument);
    EXPECT_THROW(q::Enhancer::parse("median:abc"), std::invalid_argument);
    EXPECT_THROW(q::Enhancer::parse("median:99"), std::invalid_argument);
    EXPECT_THROW(q::Enhancer::first_view().apply(cv::Mat()), std::invalid_argument);
    EXPECT_THROW(q::Enhancer::first_view().apply(cv::Mat(10, 10, CV_32FC3)), std::invalid_argument);
}

// The enrollment gate on constructed features: each bound refuses with what was measured and
// what to change; a photo inside every bound is accepted.
TEST(EnrollGate, EachBoundRefusesWithItsMeasureAndRemedy) {
    const faceadapt::config::EnrollConfig c;  // defaults: deviation 50, integrity 0.6, sharpness 10, exposure 80
    q::QualityFeatures good;
    good.deviation_deg = 20;
    good.integrity = 1.0;
    good.sharpness = 40;
    good.exposure = 130;
    EXPECT_TRUE(q::judge_enrollment(good, 120, 80, c).ok);
    struct Case {
        q::QualityFeatures f;
        int side;
        const char* fragment;
    };
    auto with = [&](auto change) {
        q::QualityFeatures f = good;
        change(f);
        return f;
    };
    const std::vector<Case> cases = {
        {good, 60, "too small: 60 px, below the minimum of 80 px; use a photo taken closer"},
        {with([](auto& f) { f.integrity = 0.5; }), 120, "cut by the photo's edge (integrity 0.50, minimum 0.60)"},
        {with([](auto& f) { f.deviation_deg = 55; f.yaw_deg = 52; }), 120, "turned away: 55 deg from frontal (yaw 52"},
        {with([](auto& f) { f.sharpness = 6; }), 120, "blurred (sharpness 6, minimum 10)"},
        {with([](auto& f) { f.exposure = 50; }), 120, "too dark (brightness 50 of 255, minimum 80)"},
    };
    for (const auto& k : cases) {
        const auto v = q::judge_enrollment(k.f, k.side, 80, c);
        EXPECT_FALSE(v.ok) << k.fragment;
        EXPECT_NE(v.reason.find(k.fragment), std::string::npos) << v.reason;
    }
    auto bright = c;
    bright.max_exposure = 200;
    const auto v = q::judge_enrollment(with([](auto& f) { f.exposure = 230; }), 120, 80, bright);
    EXPECT_FALSE(v.ok);
    EXPECT_NE(v.reason.find("overexposed (brightness 230 of 255, maximum 200)"), std::string::npos) << v.reason;
    // NaN features (a degenerate chip) are refused, never accepted by a failed comparison.
    EXPECT_FALSE(q::judge_enrollment(with([](auto& f) { f.sharpness = std::nan(""); }), 120, 80, c).ok);
}

TEST(EnrollGate, DominantFaceIsTheOnlyOrTheClearlyLargest) {
    EXPECT_FALSE(q::dominant_face({}).has_value());
    EXPECT_EQ(q::dominant_face({cv::Rect(0, 0, 50, 50)}), 0u);
    // A bystander a quarter of the area: the large face is the person.
    EXPECT_EQ(q::dominant_face({cv::Rect(0, 0, 40, 40), cv::Rect(100, 0, 80, 80)}), 1u);
    // Two faces of about the same size: nobody dominates.
    EXPECT_FALSE(q::dominant_face({cv::Rect(0, 0, 80, 80), cv::Rect(100, 0, 70, 70)}).has_value());
    EXPECT_FALSE(q::dominant_face({cv::Rect(0, 0, 80, 80), cv::Rect(100, 0, 80, 80)}).has_value());
}

TEST(Gallery, AddListRemove) {
    faceadapt::test::TempDir dir;
    q::QualityScore score;
    score.normalized = 0.8;
    {
        q::Gallery g(dir.path());
        g.add("alice", face_like_chip(), score, "a.jpg");
        g.add("bob", face_like_chip(), score, "b.jpg");
        g.add("alice", face_like_chip(), score, "a2.jpg");
        EXPECT_THROW(g.add("../evil", face_like_chip(), score, "x"), std::invalid_argument);
        EXPECT_THROW(g.add("", face_like_chip(), score, "x"), std::invalid_argument);
    }
    q::Gallery g(dir.path());  // persisted
    EXPECT_EQ(g.names(), (std::vector<std::string>{"alice", "bob"}));
    const auto entries = g.entries();
    ASSERT_EQ(entries.size(), 3u);
    EXPECT_EQ(entries[1].source, "a2.jpg");
    EXPECT_DOUBLE_EQ(entries[0].score, 0.8);
    const auto chip = g.load_chip(entries[0]);
    ASSERT_TRUE(chip);
    EXPECT_EQ(chip->size(), cv::Size(150, 150));
    EXPECT_EQ(g.remove("alice"), 2);
    EXPECT_EQ(g.remove("nobody"), 0);
    EXPECT_EQ(g.names(), (std::vector<std::string>{"bob"}));
    EXPECT_FALSE(fs::exists(entries[0].file));
    fs::remove(g.entries()[0].file);
    EXPECT_FALSE(g.load_chip(g.entries()[0]));  // missing file: reported, no crash
}

// Issue 18: the revision tells a watcher (faceadaptd) that the gallery changed, across
// processes and connections; a chip written but not yet indexed (an enrollment in progress in
// another process) is not taken for debris by a second opener.
TEST(Gallery, RevisionRisesWithEveryChangeAndIsReadWithoutOpeningForWrites) {
    faceadapt::test::TempDir dir;
    EXPECT_EQ(q::Gallery::read_revision(dir.path()), 0);
    EXPECT_FALSE(fs::exists(dir.path() / "gallery")) << "read_revision creates nothing";
    q::QualityScore score;
    q::Gallery g(dir.path());
    EXPECT_EQ(g.revision(), 0);
    g.add("alice", face_like_chip(), score, "a.jpg");
    g.add("alice", face_like_chip(), score, "a2.jpg");
    EXPECT_EQ(g.revision(), 2);
    {
        q::Gallery other(dir.path());  // another connection (as the CLI is another process)
        other.add("bob", face_like_chip(), score, "b.jpg");
    }
    EXPECT_EQ(g.revision(), 3);
    EXPECT_EQ(q::Gallery::read_revision(dir.path()), 3);
    EXPECT_EQ(g.remove("nobody"), 0);
    EXPECT_EQ(g.revision(), 3) << "a remove that removed nothing changes nothing";
    EXPECT_EQ(g.remove("alice"), 2);
    EXPECT_GT(g.revision(), 3);
    const auto after_remove = g.revision();
    EXPECT_EQ(q::Gallery::read_revision(dir.path()), after_remove);

    const fs::path in_progress = dir.path() / "gallery" / "img" / "pending.png";
    cv::imwrite(in_progress.string(), face_like_chip());
    q::Gallery third(dir.path());
    EXPECT_TRUE(fs::exists(in_progress)) << "a fresh unindexed chip may be an enrollment in progress";
    fs::last_write_time(in_progress, fs::file_time_type::clock::now() - std::chrono::hours(1));
    q::Gallery fourth(dir.path());
    EXPECT_FALSE(fs::exists(in_progress)) << "an old unindexed chip is debris";
    EXPECT_EQ(fourth.revision(), after_remove);
}

// Enrollment on a one-face portrait cut from the demo photos (found once per suite: the
// landmark model loads once and the 1920 px photos are scanned once, downscaled).
class Enroll : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        if (!fs::exists(demo("sample1.jpg")) ||
            !fs::exists(faceadapt::ingest::FaceAligner::default_landmarks_model()))
            return;
        aligner_ = new faceadapt::ingest::FaceAligner();
        for (int i = 1; i <= 6 && portrait_.empty(); ++i) {
            cv::Mat photo = cv::imread(demo("sample" + std::to_string(i) + ".jpg").string());
            if (photo.empty()) continue;
            const double f = 960.0 / photo.cols;
            cv::resize(photo, photo, cv::Size(), f, f, cv::INTER_AREA);
            for (const auto& face : aligner_->detect(photo)) {
                if (face.bbox.width < 110) continue;
                const cv::Point c = (face.bbox.tl() + face.bbox.br()) / 2;
                const int half = face.bbox.width * 5 / 4;
                const cv::Rect region = cv::Rect(c.x - half, c.y - half, 2 * half, 2 * half) &
                                        cv::Rect(0, 0, photo.cols, photo.rows);
                const cv::Mat crop = photo(region).clone();
                const auto again = aligner_->detect(crop);
                if (again.size() == 1 && q::QualityScorer().score(q::observation_from_still(
                        crop, again[0].bbox, again[0].landmarks, again[0].chip)).accepted) {
                    portrait_ = crop;
                    portrait_face_ = again[0].bbox;
                    break;
                }
            }
        }
    }
    static void TearDownTestSuite() {
        delete aligner_;
        aligner_ = nullptr;
    }
    void SetUp() override {
        FACEADAPT_REQUIRE_PATH(demo("sample1.jpg"));
        FACEADAPT_REQUIRE_PATH(faceadapt::ingest::FaceAligner::default_landmarks_model());
        ASSERT_FALSE(portrait_.empty()) << "no demo photo gave a one-face portrait of good quality";
    }
    q::EnrollCheck check(const cv::Mat& image) const {
        return q::check_enrollment_image(image, *aligner_, scorer_, 80);
    }
    static inline faceadapt::ingest::FaceAligner* aligner_ = nullptr;
    static inline cv::Mat portrait_;
    static inline cv::Rect portrait_face_;
    q::QualityScorer scorer_;
};

TEST_F(Enroll, AcceptsAGoodPhoto) {
    const auto r = check(portrait_);
    EXPECT_TRUE(r.ok) << r.reason;
    EXPECT_EQ(r.chip.size(), cv::Size(150, 150));
    EXPECT_GT(r.score.normalized, scorer_.config().threshold);
}

TEST_F(Enroll, RefusesNoFace) {
    cv::Mat plain(480, 640, CV_8UC3);
    for (int y = 0; y < plain.rows; ++y) plain.row(y).setTo(cv::Scalar(y / 3, 100, 200 - y / 3));
    const auto r = check(plain);
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.reason, "no face found");
    EXPECT_FALSE(check(cv::Mat()).ok);
}

TEST_F(Enroll, RefusesTwoFaces) {
    cv::Mat mirrored, both;
    cv::flip(portrait_, mirrored, 1);
    cv::hconcat(portrait_, mirrored, both);
    const auto r = check(both);
    EXPECT_FALSE(r.ok);
    EXPECT_NE(r.reason.find("2 faces found"), std::string::npos) << r.reason;
}

TEST_F(Enroll, RefusesATooSmallFace) {
    // Scale so that the face box side is about 50 px, well below the 80 px minimum.
    const double f = 50.0 / portrait_face_.width;
    cv::Mat small;
    cv::resize(portrait_, small, cv::Size(), f, f, cv::INTER_AREA);
    const auto r = check(small);
    EXPECT_FALSE(r.ok);
    EXPECT_NE(r.reason.find("too small"), std::string::npos) << r.reason;
}

TEST_F(Enroll, CommandLineEnrollListRemove) {
    const fs::path cli = faceadapt::test::binary_dir() / "tools" / "faceadapt";
    FACEADAPT_REQUIRE_PATH(cli);
    faceadapt::test::TempDir dir;
    const std::string sd = " --state-dir " + dir.path().string();
    cv::Mat plain(300, 300, CV_8UC3, cv::Scalar(20, 200, 20));
    cv::imwrite((dir.path() / "plain.png").string(), plain);
    const std::string portrait = (dir.path() / "portrait.png").string();
    cv::imwrite(portrait, portrait_);
    std::string out;
    EXPECT_EQ(faceadapt::test::run_command(cli.string() + " enroll --name alice " + portrait + sd, &out), 0) << out;
    // Both photos refused, each with its reason; nothing enrolled for bob.
    EXPECT_EQ(faceadapt::test::run_command(cli.string() + " enroll --name bob " + (dir.path() / "plain.png").string() +
                                               " /nonexistent.jpg" + sd, &out), 1) << out;
    EXPECT_NE(out.find("plain.png: refused: no face found"), std::string::npos) << out;
    EXPECT_NE(out.find("/nonexistent.jpg: refused: cannot read"), std::string::npos) << out;
    EXPECT_NE(out.find("bob: 0 of 2 photo(s) enrolled; refused: "), std::string::npos) << out;
    // 3 of 4 good: the three are enrolled, and the last line says which one was not (issue 18).
    std::string photos;
    for (int i = 1; i <= 3; ++i) {
        const fs::path copy = dir.path() / ("carol-" + std::to_string(i) + ".png");
        fs::copy_file(portrait, copy);
        photos += " " + copy.string();
    }
    EXPECT_EQ(faceadapt::test::run_command(cli.string() + " enroll --name carol" + photos + " " +
                                               (dir.path() / "plain.png").string() + sd, &out), 1) << out;
    EXPECT_NE(out.find("carol: 3 of 4 photo(s) enrolled; refused: " + (dir.path() / "plain.png").string()),
              std::string::npos) << out;
    EXPECT_NE(out.find("plain.png: refused: no face found"), std::string::npos) << out;
    EXPECT_EQ(faceadapt::test::run_command(cli.string() + " gallery list" + sd, &out), 0) << out;
    EXPECT_NE(out.find("alice"), std::string::npos) << out;
    EXPECT_NE(out.find("carol"), std::string::npos) << out;
    EXPECT_EQ(out.find("bob"), std::string::npos) << out;
    EXPECT_EQ(faceadapt::test::run_command(cli.string() + " gallery remove alice" + sd, &out), 0) << out;
    EXPECT_NE(faceadapt::test::run_command(cli.string() + " gallery remove alice" + sd, &out), 0) << out;
    EXPECT_EQ(faceadapt::test::run_command(cli.string() + " gallery list" + sd, &out), 0) << out;
    EXPECT_EQ(out.find("alice"), std::string::npos) << out;
}
