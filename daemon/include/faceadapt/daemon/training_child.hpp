// TrainingChild: one `faceadapt train` run as a child process of the daemon.
//
// WHAT THIS REPRESENTS
//   A forked and exec'd child with lowered CPU priority (nice), idle-class I/O priority
//   (ioprio_set) and an address-space limit (RLIMIT_AS; skipped for CUDA, whose driver maps
//   more virtual memory than it uses: use MemoryMax= in the unit there). Two pipes, each read
//   on its own thread:
//     - stdout + stderr: free text, handed line by line to the output callback (the journal)
//       and kept (last 20 lines) for the crash report; never parsed;
//     - descriptor kChildProtocolFd (3): the typed protocol of child_protocol.hpp, JSON lines.
//       Progress messages go to the progress callback; every other message is kept, in order,
//       in TrainingResult::messages. A malformed line is counted (protocol_errors), never fatal.
//   A crash, a signal, an out-of-memory kill or a bad exit code is reported in the
//   TrainingResult; nothing in the daemon is harmed. The child gets PR_SET_PDEATHSIG SIGTERM,
//   so a daemon killed with -9 does not leave it running.
// THREAD SAFETY
//   Use from one thread; the callbacks run on the reader threads (output and progress each
//   on its own).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

#include "faceadapt/daemon/child_protocol.hpp"

namespace faceadapt::daemon {

struct TrainingLimits {
    int nice = 10;                  // added to the child's nice value (0..19)
    bool idle_io = true;            // ioprio class IDLE, else best-effort level 7
    double memory_limit_mb = 0;     // RLIMIT_AS; 0 = none
};

struct TrainingResult {
    int exit_code = -1;            // valid when !signaled
    int signal = 0;                // the signal that ended it, when signaled
    bool signaled = false;
    // terminate() sent the SIGKILL itself, `grace` after its SIGTERM went unanswered.
    bool killed_after_grace = false;
    std::chrono::milliseconds grace{0};
    bool ok() const { return !signaled && exit_code == 0; }
    std::chrono::steady_clock::duration elapsed{};
    std::vector<std::string> last_lines;  // the last 20 lines of text output, for the report
    std::vector<ChildMessage> messages;   // protocol messages other than progress, in order
    int protocol_errors = 0;              // malformed protocol lines (skipped)
    std::string first_protocol_error;     // what was wrong with the first one
    // "exit 0", "exit 3", "killed by SIGTERM", "killed by SIGKILL: it did not stop within 7.0 s of
    // SIGTERM" (ours), "killed by SIGKILL (not by faceadaptd: out of memory, or by hand)".
    std::string describe() const;
};

class TrainingChild {
public:
    using ProgressCallback = std::function<void(const ChildProgress&)>;
    using OutputCallback = std::function<void(const std::string& line)>;
    // Starts argv[0] (a path) with argv; the protocol pipe is its descriptor kChildProtocolFd
    // (argv should name it, e.g. --protocol-fd 3). requires: !argv.empty(). Either callback may
    // be null. throws std::runtime_error naming argv[0] when a pipe or fork fails; an exec
    // failure is reported as exit code 127 by the child.
    TrainingChild(std::vector<std::string> argv, TrainingLimits limits, ProgressCallback on_progress,
                  OutputCallback on_output = nullptr);
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
