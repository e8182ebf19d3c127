// Helpers for the daemon's end-to-end tests: faceadaptd (and other executables) as child
// processes with their output captured, the metrics endpoint, site files.
#pragma once

#include <chrono>
#include <filesystem>
#include <mutex>
#include <optional>
#include <functional>
#include <regex>
#include <thread>
#include <string>
#include <vector>

#include "faceadapt/daemon/training_child.hpp"
#include "test_support.hpp"

namespace faceadapt::test {

// A child process whose output lines are kept (and echoed on failure by the tests).
class Process {
public:
    explicit Process(std::vector<std::string> argv);
    ~Process();  // SIGTERM, then SIGKILL after 10 s
    pid_t pid() const { return child_->pid(); }
    void signal(int sig) const;
    // Waits until a line matches `pattern`; false on timeout or when the process exited first.
    bool wait_for_line(const std::string& pattern, std::chrono::milliseconds timeout);
    bool has_line(const std::string& pattern) const;
    // The exit, when it happens within `timeout`.
    std::optional<daemon::TrainingResult> wait_exit(std::chrono::milliseconds timeout);
    std::string output() const;

private:
    mutable std::mutex mutex_;
    std::vector<std::string> lines_;
    std::unique_ptr<daemon::TrainingChild> child_;
    std::optional<daemon::TrainingResult> result_;
};

// GET /metrics on 127.0.0.1:port; "" when it does not answer.
std::string fetch_metrics(int port);
// The value of the sample `name{labels}` (labels as written, e.g. camera="a"), or nullopt.
std::optional<double> metric_value(const std::string& metrics_text, const std::string& name,
                                   const std::string& labels = "");

// wait_until (test_support.hpp) at the daemon's pace: polls every 200 ms (a metrics scrape or a
// state file read each time) until `condition` holds or `timeout` passes.
inline bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
    return wait_until(condition, timeout, std::chrono::milliseconds(200));
}

}  // namespace faceadapt::test
