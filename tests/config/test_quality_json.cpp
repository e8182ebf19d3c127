// The [quality] section as JSON (the package manifest's "quality"): the site file's schema, both
// ways, and what a hostile manifest can put there.
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "faceadapt/config/config.hpp"
#include "faceadapt/config/quality_json.hpp"

namespace {

namespace cfg = faceadapt::config;
using nlohmann::json;

// Every issue's text, joined; "" when `j` is accepted.
std::string refusal(const json& j) {
    try {
        cfg::quality_from_json(j, "manifest");
        return "";
    } catch (const cfg::ConfigError& e) {
        std::string all;
        for (const auto& issue : e.issues()) all += issue.to_string() + "\n";
        return all;
    }
}

}  // namespace

TEST(QualityJson, DefaultsAndASiteSectionRoundTripWhole) {
    const json defaults = cfg::quality_to_json(cfg::QualityConfig{});
    ASSERT_TRUE(defaults.is_object());
    EXPECT_EQ(defaults.at("threshold"), 0.5);
    EXPECT_EQ(defaults.at("coefficient_form"), "unit");
    EXPECT_EQ(defaults.at("deviation_score").at(1), json::array({10.0, 0.95}));
    EXPECT_EQ(cfg::quality_from_json(defaults, "manifest"), cfg::QualityConfig{});
    // Every key of the site file's [quality] is written.
    std::size_t keys = 0;
    for (const auto& k : cfg::known_keys())
        if (k.rfind("quality.", 0) == 0) {
            ++keys;
            EXPECT_TRUE(defaults.contains(k.substr(8))) << k;
        }
    EXPECT_EQ(defaults.size(), keys);

    // A site's own section, as the site file reads it, survives JSON whole.
    const cfg::Config site = cfg::parse_config(
        "[site]\nid = \"lab\"\nstate_dir = \"/tmp/x\"\n"
        "[quality]\nthreshold = 0.35\nmax_deviation_deg = 30\nmin_integrity = 0.7\n"
        "deviation_score = [[0, 1.0], [15, 0.7], [30, 0.1]]\ncoefficient_form = \"percent\"\n",
        "site.toml");
    ASSERT_NE(site.quality, cfg::QualityConfig{});
    const json j = cfg::quality_to_json(site.quality);
    EXPECT_EQ(j.at("max_deviation_deg"), 30.0);
    EXPECT_EQ(cfg::quality_from_json(json::parse(j.dump()), "manifest"), site.quality);
    // Missing keys keep their defaults, as in the site file; integers are numbers too.
    const auto partial = cfg::quality_from_json(json{{"threshold", 0}}, "manifest");
    EXPECT_EQ(partial.threshold, 0.0);
    EXPECT_EQ(partial.deviation_score, cfg::QualityConfig{}.deviation_score);
}

TEST(QualityJson, HostileValuesAreRefusedNamingTheKey) {
    const json ok = cfg::quality_to_json(cfg::QualityConfig{});
    auto with = [&](const std::string& key, json value) {
        json j = ok;
        j[key] = std::move(value);
        return j;
    };
    EXPECT_NE(refusal(json::array()).find("manifest: quality: expected an object of [quality] keys, got an array"),
              std::string::npos) << refusal(json::array());
    EXPECT_NE(refusal(nullptr).find("got null"), std::string::npos);
    EXPECT_NE(refusal(with("threshold", 2.0)).find("manifest: quality.threshold: expected a number in [0, 1], got 2"),
              std::string::npos) << refusal(with("threshold", 2.0));
    EXPECT_NE(refusal(with("threshold", "0.5")).find("quality.threshold: expected a number"), std::string::npos);
    EXPECT_NE(refusal(with("threshold", nullptr)).find("quality.threshold: expected a number, a string or an array"),
              std::string::npos);
    EXPECT_NE(refusal(with("threshold", json::object())).find("quality.threshold"), std::string::npos);
    EXPECT_NE(refusal(with("treshold", 0.5)).find("unknown key 'treshold'; did you mean 'threshold'?"), std::string::npos)
        << refusal(with("treshold", 0.5));
    EXPECT_NE(refusal(with("", 0.5)).find("unknown key ''"), std::string::npos) << refusal(with("", 0.5));
    EXPECT_NE(refusal(with("coefficient_form", "ratio")).find("quality.coefficient_form"), std::string::npos);
    EXPECT_NE(refusal(with("max_deviation_deg", 0)).find("quality.max_deviation_deg"), std::string::npos);
    EXPECT_NE(refusal(with("max_deviation_deg", 18446744073709551615ULL)).find("quality.max_deviation_deg"),
              std::string::npos);
    // Tables: knots of two finite numbers, x strictly increasing, 1 to 256 of them, no deeper.
    EXPECT_NE(refusal(with("sharpness_score", json::array())).find("got an empty array"), std::string::npos);
    EXPECT_NE(refusal(with("sharpness_score", json::parse("[[0, 1], [0, 2]]"))).find("strictly increasing"),
              std::string::npos);
    EXPECT_NE(refusal(with("sharpness_score", json::parse("[[0, 1, 2]]"))).find("quality.sharpness_score[0]"),
              std::string::npos);
    EXPECT_NE(refusal(with("sharpness_score", json::parse("[[0, \"1\"]]"))).find("quality.sharpness_score[0]"),
              std::string::npos);
    EXPECT_NE(refusal(with("sharpness_score", json::parse("[[[0], [1]]]"))).find("quality.sharpness_score"),
              std::string::npos);
    json many = json::array();
    for (int i = 0; i < 257; ++i) many.push_back({i, 0.5});
    EXPECT_NE(refusal(with("sharpness_score", many)).find("expected at most 256 knots, got 257"), std::string::npos)
        << refusal(with("sharpness_score", many));
    many.erase(many.begin());
    EXPECT_EQ(refusal(with("sharpness_score", many)), "") << "256 knots are a table";
    // Deep nesting is refused before it is walked.
    json deep = 1.0;
    for (int i = 0; i < 100; ++i) deep = json::array({std::move(deep)});
    EXPECT_NE(refusal(with("sharpness_score", deep)).find("nested too deeply"), std::string::npos);
    // Every problem is reported, not only the first.
    json two = ok;
    two["threshold"] = -1;
    two["min_integrity"] = 3;
    const std::string both = refusal(two);
    EXPECT_NE(both.find("quality.threshold"), std::string::npos) << both;
    EXPECT_NE(both.find("quality.min_integrity"), std::string::npos) << both;
}
