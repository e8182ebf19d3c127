// TrainingChild with small shell scripts as the child: progress, limits, crash, stop.
#include <fstream>
#include <mutex>

#include <gtest/gtest.h>

#include "faceadapt/daemon/training_child.hpp"
#include "test_support.hpp"

using namespace faceadapt::daemon;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {
fs::path script(const fs::path& dir, const std::string& name, const std::string& body) {
    const fs::path p = dir / name;
    std::ofstream(p) << "#!/bin/sh\n" << body;
    fs::permissions(p, fs::perms::owner_all);
    return p;
}
}  // namespace

TEST(TrainingProgressParse, ReadsCycleIterAndLoss) {
    auto p = parse_progress_line("train: cycle 2/6 iter 30/50 loss=1.25e-1 lr 3.5e-5");
    EXPECT_EQ(p.cycle, 2);
    EXPECT_EQ(p.cycles, 6);
    EXPECT_EQ(p.iter, 30);
    EXPECT_EQ(p.iters, 50);
    ASSERT_TRUE(p.loss);
    EXPECT_DOUBLE_EQ(*p.loss, 0.125);
    p = parse_progress_line("clustering 812 crops into 14 clusters");
    EXPECT_FALSE(p.cycle || p.iter || p.loss);
    EXPECT_EQ(p.line, "clustering 812 crops into 14 clusters");
}

TEST(TrainingChild, ReportsProgressLinesAppliesNiceAndMemoryLimit) {
    faceadapt::test::TempDir dir;
    const auto child = script(dir.path(), "train.sh",
                              "echo \"nice $(cut -d' ' -f19 /proc/self/stat)\"\n"
                              "echo \"vlimit $(ulimit -v)\"\n"
                              "echo 'cycle 1/2 iter 5/10 loss=0.5'\n"
                              "echo 'cycle 2/2 iter 10/10 loss 0.25' >&2\n");
    std::mutex m;
    std::vector<TrainingProgress> seen;
    TrainingChild c({child.string()}, TrainingLimits{7, true, 512}, [&](const TrainingProgress& p) {
        std::lock_guard lock(m);
        seen.push_back(p);
    });
    const TrainingResult r = c.wait();
    EXPECT_TRUE(r.ok()) << r.describe();
    std::lock_guard lock(m);
    ASSERT_EQ(seen.size(), 4u);
    EXPECT_EQ(seen[0].line, "nice 7");
    EXPECT_EQ(seen[1].line, "vlimit 524288");  // KiB
    EXPECT_EQ(seen[2].cycle, 1);
    EXPECT_EQ(seen[3].cycle, 2);
    EXPECT_DOUBLE_EQ(*seen[3].loss, 0.25);
    EXPECT_EQ(r.last_lines.back(), "cycle 2/2 iter 10/10 loss 0.25");
}

TEST(TrainingChild, ACrashIsReportedAndTheParentCarriesOn) {
    faceadapt::test::TempDir dir;
    const auto crash = script(dir.path(), "crash.sh", "echo 'cycle 1/3'\nkill -SEGV $$\n");
    TrainingChild c({crash.string()}, {}, nullptr);
    const TrainingResult r = c.wait();
    EXPECT_FALSE(r.ok());
    EXPECT_TRUE(r.signaled);
    EXPECT_EQ(r.signal, SIGSEGV);
    EXPECT_EQ(r.describe(), "killed by SIGSEGV");

    const auto fail = script(dir.path(), "fail.sh", "echo 'error: no crops in snapshot' >&2\nexit 3\n");
    TrainingChild f({fail.string(), "--data", "x"}, {}, nullptr);
    const TrainingResult fr = f.wait();
    EXPECT_EQ(fr.exit_code, 3);
    EXPECT_EQ(fr.describe(), "exit 3");
    EXPECT_EQ(fr.last_lines.front(), "error: no crops in snapshot");

    TrainingChild missing({(dir.path() / "absent").string()}, {}, nullptr);
    const TrainingResult mr = missing.wait();
    EXPECT_EQ(mr.exit_code, 127);
    EXPECT_NE(mr.describe().find("could not execute"), std::string::npos);
    // Later polls return the same result.
    EXPECT_EQ(missing.poll()->exit_code, 127);
}

TEST(TrainingChild, TerminateLetsTheChildCheckpointThenKillsAStubbornOne) {
    faceadapt::test::TempDir dir;
    const fs::path ckpt = dir.path() / "checkpoint";
    const auto polite = script(dir.path(), "polite.sh",
                               "trap 'echo saved > " + ckpt.string() + "; exit 0' TERM\n"
                               "echo started\nwhile true; do sleep 0.05; done\n");
    TrainingChild c({polite.string()}, {}, nullptr);
    std::this_thread::sleep_for(300ms);
    EXPECT_FALSE(c.poll().has_value());
    const TrainingResult r = c.terminate(5s);
    EXPECT_TRUE(r.ok()) << r.describe();
    EXPECT_TRUE(fs::exists(ckpt));

    const auto stubborn = script(dir.path(), "stubborn.sh", "trap '' TERM\nwhile true; do sleep 0.05; done\n");
    TrainingChild s({stubborn.string()}, {}, nullptr);
    std::this_thread::sleep_for(200ms);
    const auto t0 = std::chrono::steady_clock::now();
    const TrainingResult sr = s.terminate(300ms);
    EXPECT_TRUE(sr.signaled);
    EXPECT_EQ(sr.signal, SIGKILL);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
}
