#include "daemon_process.hpp"

#include <csignal>
#include <thread>

#include <httplib.h>

namespace faceadapt::test {

Process::Process(std::vector<std::string> argv) {
    child_ = std::make_unique<daemon::TrainingChild>(std::move(argv), daemon::TrainingLimits{0, false, 0}, nullptr,
                                                     [this](const std::string& line) {
                                                         std::lock_guard lock(mutex_);
                                                         lines_.push_back(line);
                                                     });
}

Process::~Process() {
    if (!result_) child_->terminate(std::chrono::seconds(10));
}

void Process::signal(int sig) const { ::kill(child_->pid(), sig); }

bool Process::has_line(const std::string& pattern) const {
    const std::regex re(pattern);
    std::lock_guard lock(mutex_);
    for (const auto& l : lines_)
        if (std::regex_search(l, re)) return true;
    return false;
}

bool Process::wait_for_line(const std::string& pattern, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (has_line(pattern)) return true;
        if (!result_) result_ = child_->poll();
        if (result_) return has_line(pattern);
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return has_line(pattern);
}

std::optional<daemon::TrainingResult> Process::wait_exit(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!result_ && std::chrono::steady_clock::now() < deadline) {
        result_ = child_->poll();
        if (!result_) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return result_;
}

std::string Process::output() const {
    std::lock_guard lock(mutex_);
    std::string out;
    for (const auto& l : lines_) out += l + "\n";
    return out;
}

std::string fetch_metrics(int port) {
    httplib::Client client("127.0.0.1", port);
    client.set_connection_timeout(1);
    client.set_read_timeout(5);
    auto res = client.Get("/metrics");
    return res && res->status == 200 ? res->body : std::string();
}

std::optional<double> metric_value(const std::string& text, const std::string& name, const std::string& labels) {
    const std::string key = labels.empty() ? name + " " : name + "{" + labels + "} ";
    std::size_t pos = 0;
    while ((pos = text.find(key, pos)) != std::string::npos) {
        if (pos == 0 || text[pos - 1] == '\n') return std::stod(text.substr(pos + key.size()));
        pos += key.size();
    }
    return std::nullopt;
}

}  // namespace faceadapt::test
