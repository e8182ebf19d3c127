// The package's operating point (issue 12): carried in the signed manifest, read back whole,
// refused when inconsistent, absent in old packages (today's rule), and applied by the door.
#include <cmath>
#include <random>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "faceadapt/calib/operating_point.hpp"
#include "faceadapt/publish/door_agent.hpp"
#include "faceadapt/publish/door_match.hpp"
#include "faceadapt/publish/operating_point_json.hpp"
#include "faceadapt/publish/package.hpp"
#include "test_helpers.hpp"
#include "test_support.hpp"

namespace fp = faceadapt::publish;
namespace fc = faceadapt::calib;
namespace fs = std::filesystem;

namespace {

// A calibrated point from constructed distances: impostors spread over [0.3, 1.3], so a door
// target of 1e-2 over the gallery's 3 entries puts the threshold a little above 0.3.
fc::OperatingPoint calibrated_point() {
    std::vector<double> impostor, genuine;
    for (int i = 1; i <= 20000; ++i) impostor.push_back(0.3 + i / 20000.0);
    for (int i = 1; i <= 100; ++i) genuine.push_back(i / 200.0);
    fc::CalibrationRequest r;
    r.target_far = 1e-2;
    r.comparisons = 3;
    return fc::calibrate(impostor, genuine, r);
}

fp::PackageInput input_with(std::optional<fc::OperatingPoint> point, std::int64_t version = 1) {
    fp::PackageInput in;
    in.site = "lab";
    in.model_bytes = faceadapt::test::fake_onnx_model_file(4096, 1);
    in.gallery = faceadapt::test::small_gallery(1);
    in.model_version = version;
    in.parent_version = version - 1;
    in.operating_point = std::move(point);
    return in;
}

// Re-signs `manifest` after `edit` changed its JSON: what a door sees from a signer that wrote it.
fp::Package resigned(const fp::Package& pkg, const fp::SigningKey& key, const std::function<void(nlohmann::json&)>& edit) {
    auto j = nlohmann::json::parse(pkg.signed_manifest.manifest_json);
    edit(j);
    fp::Package out = pkg;
    out.signed_manifest.manifest_json = j.dump();
    out.signed_manifest.signature = key.sign(out.signed_manifest.manifest_json);
    return out;
}

}  // namespace

TEST(OperatingPoint, TheManifestCarriesItWhole) {
    const auto key = fp::SigningKey::generate();
    const auto point = calibrated_point();
    ASSERT_TRUE(point.calibrated) << point.note;
    faceadapt::test::TempDir t;
    fp::build_package(input_with(point), key).write(t.path() / "p.fapkg");
    const auto m = fp::verify_package(fp::Package::read(t.path() / "p.fapkg"), key.public_key(), "lab");
    ASSERT_TRUE(m.operating_point);
    const auto& op = *m.operating_point;
    EXPECT_EQ(m.match_threshold, point.threshold);  // gallery.threshold: what an older door applies
    EXPECT_NE(m.match_threshold, 0.6);
    EXPECT_EQ(op.threshold, point.threshold);
    EXPECT_EQ(op.margin, point.margin);
    EXPECT_EQ(op.target_far, 1e-2);
    EXPECT_EQ(op.far_kind, fc::FarKind::door);
    EXPECT_EQ(op.comparisons, 3u);
    EXPECT_EQ(op.impostor_pairs, 20000u);
    EXPECT_EQ(op.impostor_accepted, point.impostor_accepted);
    EXPECT_EQ(op.pair_far_bound, point.pair_far_bound);
    EXPECT_EQ(op.door_far_bound, point.door_far_bound);
    EXPECT_EQ(op.frr, point.frr);
    EXPECT_EQ(op.genuine_pairs, 100u);
    EXPECT_EQ(op.method_version, fc::kMethodVersion);
    EXPECT_TRUE(op.calibrated);
    EXPECT_TRUE(m.calibrated());
    EXPECT_EQ(m.decision_margin(), point.margin);
    EXPECT_EQ(op.note, point.note);
}

TEST(OperatingPoint, OldPackagesHaveNoneAndKeepTodaysRule) {
    const auto key = fp::SigningKey::generate();
    const auto pkg = fp::build_package(input_with(std::nullopt), key);
    EXPECT_EQ(pkg.signed_manifest.manifest_json.find("operating_point"), std::string::npos);
    const auto m = fp::verify_package(pkg, key.public_key(), "lab");
    EXPECT_FALSE(m.operating_point);
    EXPECT_EQ(m.match_threshold, 0.6);
    EXPECT_EQ(m.decision_margin(), 0.0);
    EXPECT_FALSE(m.calibrated());
}

TEST(OperatingPoint, AnUncalibratedPointIsCarriedAndSaysSo) {
    const auto key = fp::SigningKey::generate();
    fc::CalibrationRequest r;
    r.target_far = 1e-3;
    const auto point = fc::calibrate({0.5, 0.7, 0.9}, {}, r);  // 3 pairs cannot resolve 1e-3
    ASSERT_FALSE(point.calibrated);
    const auto m = fp::verify_package(fp::build_package(input_with(point), key), key.public_key(), "lab");
    ASSERT_TRUE(m.operating_point);
    EXPECT_FALSE(m.calibrated());
    EXPECT_LT(m.match_threshold, 0.5);
    EXPECT_NE(m.operating_point->note.find("not resolvable"), std::string::npos);
}

TEST(OperatingPoint, InconsistentPointsAreRefused) {
    const auto key = fp::SigningKey::generate();
    const auto pkg = fp::build_package(input_with(calibrated_point()), key);
    auto refused = [&](const std::function<void(nlohmann::json&)>& edit, const std::string& expect) {
        try {
            fp::verify_package(resigned(pkg, key, edit), key.public_key(), "lab");
            ADD_FAILURE() << "accepted; expected: " << expect;
        } catch (const fp::PackageError& e) {
            EXPECT_NE(std::string(e.what()).find(expect), std::string::npos) << e.what();
        }
    };
    refused([](auto& j) { j["gallery"]["threshold"] = 0.6; }, "is not gallery.threshold");
    refused([](auto& j) { j["operating_point"]["frr"] = "low"; }, "operating_point.frr is not a number");
    refused([](auto& j) { j["operating_point"]["margin"] = 5.0; }, "operating_point.margin");
    refused([](auto& j) { j["operating_point"]["far_kind"] = "site"; }, "operating_point.far_kind");
    refused([](auto& j) { j["operating_point"].erase("impostor_pairs"); }, "operating_point.impostor_pairs is missing");
    refused([](auto& j) { j["operating_point"]["impostor_accepted"] = 1000000000000LL; }, "impostor_accepted exceeds");
    refused([](auto& j) { j["operating_point"]["impostor_pairs"] = 2.5; }, "operating_point.impostor_pairs is not a count");
    refused([](auto& j) { j["operating_point"] = 0.5; }, "operating_point is not an object");
    // A bad point is refused when building too.
    auto bad = calibrated_point();
    bad.target_far = 2.0;
    EXPECT_THROW(fp::build_package(input_with(bad), key), fp::PackageError);
}

// The door decides with the installed package's threshold: the same probe is accepted under the
// legacy 0.6 and refused under a calibrated threshold below its distance.
TEST(OperatingPoint, TheDoorAppliesThePackageThreshold) {
    const auto key = fp::SigningKey::generate();
    const auto point = calibrated_point();  // threshold ~0.30
    faceadapt::test::TempDir t;
    fp::install_package(t.path() / "legacy", fp::build_package(input_with(std::nullopt), key), key.public_key(), "lab");
    fp::install_package(t.path() / "calibrated", fp::build_package(input_with(point), key), key.public_key(), "lab");
    // A probe at distance 0.45 from alice's entry (far from bob's and carol's).
    auto gallery = faceadapt::test::small_gallery(1);
    fp::Embedding probe = gallery.entries[0].embedding;
    probe[0] += 0.45f;
    for (const char* folder : {"legacy", "calibrated"}) {
        const auto installed = fp::read_installed(t.path() / folder);
        ASSERT_TRUE(installed);
        const auto g = fp::load_installed_gallery(*installed);
        const auto d = fp::decide_probe(g, installed->manifest.decision_margin(), probe);
        EXPECT_EQ(d.identity, "alice");
        EXPECT_NEAR(d.distance, 0.45, 1e-5);
        if (std::string(folder) == "legacy") {
            EXPECT_EQ(d.threshold, 0.6);
            EXPECT_EQ(d.margin, 0.0);
            EXPECT_TRUE(d.accepted()) << d.reason;
        } else {
            EXPECT_EQ(d.threshold, point.threshold);
            EXPECT_EQ(d.margin, point.margin);
            EXPECT_EQ(d.decision, fc::Decision::unknown) << d.reason;
        }
    }
}

TEST(OperatingPoint, JsonFormRoundTripsNaNsAsNull) {
    const auto point = fc::calibrate({}, {}, fc::CalibrationRequest{});  // no pairs: NaN figures
    const auto j = fp::to_json(point);
    EXPECT_TRUE(j["frr"].is_null());
    EXPECT_TRUE(j["smallest_impostor_distance"].is_null());
    const auto back = fp::operating_point_from_json(nlohmann::json::parse(j.dump()));
    EXPECT_TRUE(std::isnan(back.frr));
    EXPECT_EQ(back.threshold, point.threshold);
    EXPECT_FALSE(back.calibrated);
}

// The site's [quality] rides in the signed manifest (docs/package-format.md 4.3), so the door
// asks to retry exactly the faces the site's crop store would not keep; packages before it carry
// none and the door keeps the defaults.
TEST(PackageQuality, TheManifestCarriesTheSitesRuleAndOldPackagesNone) {
    const auto key = fp::SigningKey::generate();
    faceadapt::config::QualityConfig site;
    site.threshold = 0.3;
    site.max_deviation_deg = 30;
    site.sharpness_score = {{0, 0.5}, {100, 1.0}};
    auto in = input_with(calibrated_point());
    in.quality = site;
    faceadapt::test::TempDir t;
    fp::build_package(in, key).write(t.path() / "p.fapkg");
    fp::install_package(t.path() / "door", fp::Package::read(t.path() / "p.fapkg"), key.public_key(), "lab");
    const auto installed = fp::read_installed(t.path() / "door");
    ASSERT_TRUE(installed);
    ASSERT_TRUE(installed->manifest.quality);
    EXPECT_EQ(*installed->manifest.quality, site);

    const auto old = fp::build_package(input_with(calibrated_point()), key);
    EXPECT_EQ(old.signed_manifest.manifest_json.find("\"quality\""), std::string::npos);
    EXPECT_FALSE(fp::verify_package(old, key.public_key(), "lab").quality);
}

TEST(PackageQuality, AHostileRuleIsRefusedNamingTheKeyAndNothingRaw) {
    const auto key = fp::SigningKey::generate();
    auto in = input_with(calibrated_point());
    in.quality = faceadapt::config::QualityConfig{};
    const auto pkg = fp::build_package(in, key);
    auto refused = [&](const std::function<void(nlohmann::json&)>& edit) -> std::string {
        try {
            fp::verify_package(resigned(pkg, key, edit), key.public_key(), "lab");
            return "accepted";
        } catch (const fp::PackageError& e) {
            return e.what();
        }
    };
    std::string why = refused([](auto& j) { j["quality"]["threshold"] = 7; });
    EXPECT_NE(why.find("manifest: quality.threshold: expected a number in [0, 1], got 7"), std::string::npos) << why;
    why = refused([](auto& j) { j["quality"] = "strict"; });
    EXPECT_NE(why.find("manifest: quality: expected an object"), std::string::npos) << why;
    why = refused([](auto& j) { j["quality"]["exposure_coefficient"] = nlohmann::json::parse("[[0, 1], [0, 1]]"); });
    EXPECT_NE(why.find("quality.exposure_coefficient[1]: x must be strictly increasing"), std::string::npos) << why;
    // A key name with a terminal escape: refused, and the message carries no control character.
    why = refused([](auto& j) { j["quality"]["\x1b[2Jthreshold"] = 0.5; });
    EXPECT_NE(why.find("unknown key"), std::string::npos) << why;
    EXPECT_EQ(why.find('\x1b'), std::string::npos) << why;
    EXPECT_EQ(refused([](auto&) {}), "accepted");
}
