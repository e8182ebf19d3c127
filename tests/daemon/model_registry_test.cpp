// ModelRegistry: monotonic versions, current/previous, history.jsonl, crash leftovers.
#include <fstream>

#include <gtest/gtest.h>

#include "faceadapt/daemon/model_registry.hpp"
#include "test_support.hpp"

using namespace faceadapt::daemon;
namespace fs = std::filesystem;

namespace {
fs::path make_file(const fs::path& p, const std::string& text) {
    std::ofstream(p) << text;
    return p;
}
std::string slurp(const fs::path& p) {
    std::ifstream in(p);
    return {std::istreambuf_iterator<char>(in), {}};
}
}  // namespace

TEST(ModelRegistry, AddsVersionsMonotonicallyAndTracksCurrentAndPrevious) {
    faceadapt::test::TempDir dir;
    ModelRegistry reg(dir.path() / "models");
    EXPECT_EQ(reg.current_version(), 0);
    EXPECT_TRUE(reg.list().empty());
    const auto a = reg.add(make_file(dir.path() / "a.bin", "AAA"), "train", {{"cycle", "c1"}});
    const auto b = reg.add(make_file(dir.path() / "b.bin", "BBB"), "train");
    EXPECT_EQ(a.version, 1);
    EXPECT_EQ(b.version, 2);
    EXPECT_EQ(slurp(b.model_file), "BBB");
    EXPECT_EQ(a.meta["cycle"], "c1");
    EXPECT_FALSE(a.published());
    reg.set_current(1);
    reg.set_current(2);
    EXPECT_EQ(reg.current_version(), 2);
    EXPECT_EQ(reg.previous_version(), 1);
    reg.update_meta(2, {{"published", true}});
    EXPECT_TRUE(reg.get(2).published());
    // A removed version's number is never reused, also from a fresh object.
    fs::remove_all(dir.path() / "models" / "versions" / "2");
    ModelRegistry again(dir.path() / "models");
    EXPECT_EQ(again.add(make_file(dir.path() / "c.bin", "C"), "rollback of 1").version, 3);
    EXPECT_EQ(again.list().size(), 2u);
}

TEST(ModelRegistry, RejectsUnknownVersionsAndMissingFiles) {
    faceadapt::test::TempDir dir;
    ModelRegistry reg(dir.path() / "models");
    EXPECT_THROW(reg.set_current(4), std::out_of_range);
    try {
        reg.get(9);
        FAIL();
    } catch (const std::out_of_range& e) {
        EXPECT_NE(std::string(e.what()).find("version 9"), std::string::npos);
    }
    EXPECT_THROW(reg.add(dir.path() / "nope.bin", "train"), std::runtime_error);
    make_file(dir.path() / "models" / "current", "garbage");
    EXPECT_THROW(reg.current_version(), std::runtime_error);
}

TEST(ModelRegistry, HistoryIsAppendedWholeAndSurvivesATornLine) {
    faceadapt::test::TempDir dir;
    ModelRegistry reg(dir.path() / "models");
    reg.append_history({{"event", "gate"}, {"promote", false}, {"reasons", {"rank-1 dropped"}}});
    // A crash in the middle of a write leaves a torn line.
    std::ofstream(dir.path() / "models" / "history.jsonl", std::ios::app) << "{\"event\":\"ga";
    reg.append_history({{"event", "promote"}, {"version", 1}});
    const auto h = reg.history();
    ASSERT_EQ(h.size(), 2u);
    EXPECT_EQ(h[0]["event"], "gate");
    EXPECT_EQ(h[0]["reasons"][0], "rank-1 dropped");
    EXPECT_TRUE(h[0].contains("time"));
    EXPECT_EQ(h[1]["version"], 1);
}

TEST(ModelRegistry, APartialVersionFromACrashIsDiscarded) {
    faceadapt::test::TempDir dir;
    fs::create_directories(dir.path() / "models" / "versions" / "1.partial");
    make_file(dir.path() / "models" / "versions" / "1.partial" / "model", "half");
    ModelRegistry reg(dir.path() / "models");
    EXPECT_FALSE(fs::exists(dir.path() / "models" / "versions" / "1.partial"));
    EXPECT_TRUE(reg.list().empty());
    EXPECT_EQ(reg.add(make_file(dir.path() / "a.bin", "A"), "train").version, 1);
}

