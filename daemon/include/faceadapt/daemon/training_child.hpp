// TrainingChild: one `faceadapt train` run as a child process of the daemon.
//
// WHAT THIS REPRESENTS
//   A forked and exec'd child with lowered CPU priority (nice), idle-class I/O priority
//   (ioprio_set) and an address-space limit (RLIMIT_AS; skipped for CUDA, whose driver maps
//   more virtual memory than it uses: use MemoryMax= in the unit there). Its stdout and stderr
//   are read line by line on a reader thread; each line is parsed for progress and handed to
//   the callback. A crash, a signal, an out-of-memory kill or a bad exit code is reported in
//   the TrainingResult; nothing in the daemon is harmed. The child gets PR_SET_PDEATHSIG
//   SIGTERM, so a daemon killed with -9 does not leave it running.
// THREAD SAFETY
//   Use from one thread; the progress callback runs on the reader thread.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace faceadapt::daemon {

struct TrainingLimits {
    int nice = 10;                  // added to the child's nice value (0..19)
    bool idle_io = true;            // ioprio class IDLE, else best-effort level 7
    double memory_limit_mb = 0;     // RLIMIT_AS; 0 = none
};

// One parsed progress line. Fields are set when the line carries them.
struct TrainingProgress {
    std::string line;
    std::optional<int> cycle, cycles;   // "cycle 2/6"
    std::optional<int> iter, iters;     // "iter 30/50"
    std::optional<double> loss;         // "loss=1.234" or "loss 1.234"
};

// Parses the progress fields out of one line of `faceadapt train` output.
TrainingProgress parse_progress_line(const std::string& line);

struct TrainingResult {
    int exit_code = -1;            // valid when !signaled
    int signal = 0;                // the signal that ended it, when signaled
    bool signaled = false;
    bool ok() const { return !signaled && exit_code == 0; }
    std::chrono::steady_clock::duration elapsed{};
    std::vector<std::string> last_lines;  // the last 20 lines of output, for the report
    std::string describe() const;         // "exit 0", "exit 3", "killed by SIGKILL (out of memory?)"
};

class TrainingChild {
public:
    using ProgressCallback = std::function<void(const TrainingProgress&)>;
    // Starts argv[0] (a path) with argv. requires: !argv.empty().
    // throws std::runtime_error naming argv[0] when the pipe or fork fails; an exec failure
    // is reported as exit code 127 by the child.
    TrainingChild(std::vector<std::string> argv, TrainingLimits limits, ProgressCallback on_progress);
    // Stops a running child (terminate(10 s)) and reaps it.
    ~TrainingChild();
    TrainingChild(const TrainingChild&) = delete;
    TrainingChild& operator=(const TrainingChild&) = delete;

    pid_t pid() const;
    // Non-blocking: the result once the child has exited and its output is drained.
    std::optional<TrainingResult> poll();
    // Blocks until the child exits.
    TrainingResult wait();
    // Sends SIGTERM (the trainer checkpoints and exits), then SIGKILL after `grace`.
    TrainingResult terminate(std::chrono::milliseconds grace);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace faceadapt::daemon
