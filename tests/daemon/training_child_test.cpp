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

TEST(TrainingChild, ReportsOutputAndTypedProgressAppliesNiceAndMemoryLimit) {
    faceadapt::test::TempDir dir;
    const auto child = script(dir.path(), "train.sh",
                              "echo \"nice $(cut -d' ' -f19 /proc/self/stat)\"\n"
                              "echo \"vlimit $(ulimit -v)\"\n"
                              "echo 'cycle 1/2 iter 5/10 loss=0.5'\n"  // free text: never parsed
                              "echo '{\"type\":\"progress\",\"phase\":\"train\",\"cycle\":2,\"cycles\":2,"
                              "\"iter\":10,\"iters\":10,\"loss\":0.25}' >&3\n"
                              "echo 'a warning' >&2\n"
                              "echo '{\"type\":\"result\",\"model\":\"/m\",\"provenance\":{\"seed\":1}}' >&3\n");
    std::mutex m;
    std::vector<std::string> lines;
    std::vector<ChildProgress> progress;
    TrainingChild c(
        {child.string()}, TrainingLimits{7, true, 512},
        [&](const ChildProgress& p) {
            std::lock_guard lock(m);
            progress.push_back(p);
        },
        [&](const std::string& line) {
            std::lock_guard lock(m);
            lines.push_back(line);
        });
    const TrainingResult r = c.wait();
    EXPECT_TRUE(r.ok()) << r.describe();
    std::lock_guard lock(m);
    ASSERT_EQ(lines.size(), 4u);
    EXPECT_EQ(lines[0], "nice 7");
#if defined(__SANITIZE_ADDRESS__)
    // make test-asan: ASan's shadow memory needs terabytes of address space, so the sanitized
    // daemon leaves RLIMIT_AS out (training_child.cpp); every other build applies it.
    EXPECT_EQ(lines[1], "vlimit unlimited");
#else
    EXPECT_EQ(lines[1], "vlimit 524288");  // KiB
#endif
    EXPECT_EQ(lines[3], "a warning");
    ASSERT_EQ(progress.size(), 1u);
    EXPECT_EQ(progress[0].cycle, 2);
    EXPECT_EQ(progress[0].iters, 10);
    EXPECT_DOUBLE_EQ(*progress[0].loss, 0.25);
    ASSERT_EQ(r.messages.size(), 1u);
    const auto& result = std::get<ChildTrainResult>(r.messages[0]);
    EXPECT_EQ(result.model, "/m");
    EXPECT_EQ(result.provenance["seed"], 1);
    EXPECT_EQ(r.protocol_errors, 0);
    EXPECT_EQ(r.last_lines.back(), "a warning");
}

TEST(TrainingChild, MalformedAndOverlongProtocolLinesAreCountedNotFatal) {
    faceadapt::test::TempDir dir;
    // 17 MiB without a newline (NUL bytes), then a good line: the long one is cut off and skipped.
    const auto child = script(dir.path(), "noisy.sh",
                              "echo 'not json' >&3\n"
                              "echo '{\"type\":\"teleport\"}' >&3\n"
                              "head -c 17825792 /dev/zero >&3\n"
                              "echo >&3\n"
                              "echo '{\"type\":\"error\",\"message\":\"no crops\"}' >&3\n");
    TrainingChild c({child.string()}, {}, nullptr);
    const TrainingResult r = c.wait();
    EXPECT_TRUE(r.ok()) << r.describe();
    EXPECT_EQ(r.protocol_errors, 3);
    EXPECT_NE(r.first_protocol_error.find("not JSON"), std::string::npos) << r.first_protocol_error;
    EXPECT_EQ(r.first_protocol_error.find("not json"), std::string::npos) << "the line is never echoed";
    ASSERT_EQ(r.messages.size(), 1u);
    EXPECT_EQ(std::get<ChildError>(r.messages[0]).message, "no crops");
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
    const fs::path ready = dir.path() / "ready";  // written once the child's TERM trap is set
    const auto polite = script(dir.path(), "polite.sh",
                               "trap 'echo saved > " + ckpt.string() + "; exit 0' TERM\n"
                               "touch " + ready.string() + "\necho started\nwhile true; do sleep 0.05; done\n");
    TrainingChild c({polite.string()}, {}, nullptr);
    ASSERT_TRUE(faceadapt::test::wait_until([&] { return fs::exists(ready); }, 10s)) << "the child never started";
    EXPECT_FALSE(c.poll().has_value());
    const TrainingResult r = c.terminate(5s);
    EXPECT_TRUE(r.ok()) << r.describe();
    EXPECT_TRUE(fs::exists(ckpt));

    const fs::path stubborn_ready = dir.path() / "stubborn-ready";
    const auto stubborn = script(dir.path(), "stubborn.sh",
                                 "trap '' TERM\ntouch " + stubborn_ready.string() + "\nwhile true; do sleep 0.05; done\n");
    TrainingChild s({stubborn.string()}, {}, nullptr);
    ASSERT_TRUE(faceadapt::test::wait_until([&] { return fs::exists(stubborn_ready); }, 10s)) << "the child never started";
    const auto t0 = std::chrono::steady_clock::now();
    const TrainingResult sr = s.terminate(300ms);
    EXPECT_TRUE(sr.signaled);
    EXPECT_EQ(sr.signal, SIGKILL);
    EXPECT_EQ(sr.describe(), "killed by SIGKILL: it did not stop within 0.3 s of SIGTERM");
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
}

// Issue 18: a child ended by someone's SIGTERM is reported as that, not as an out-of-memory kill.
TEST(TrainingChild, ASignalFromOutsideIsReportedAsThatSignal) {
    faceadapt::test::TempDir dir;
    TrainingChild t({script(dir.path(), "term.sh", "kill -TERM $$\n").string()}, {}, nullptr);
    const TrainingResult tr = t.wait();
    EXPECT_TRUE(tr.signaled);
    EXPECT_EQ(tr.describe(), "killed by SIGTERM");
    TrainingChild k({script(dir.path(), "kill.sh", "kill -KILL $$\n").string()}, {}, nullptr);
    EXPECT_EQ(k.wait().describe(), "killed by SIGKILL (not by faceadaptd: out of memory, or by hand)");
}
