#include "faceadapt/daemon/training_child.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <deque>
#include <mutex>
#include <regex>
#include <stdexcept>
#include <thread>
#include <utility>

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

namespace faceadapt::daemon {
namespace {
// AddressSanitizer reserves terabytes of virtual address space for its shadow memory, so an
// address-space limit makes a sanitized child fail at its first allocation: sanitizer builds
// (`make test-asan`) leave it out; every other build applies it.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAddressSpaceLimitWorks = false;
#else
constexpr bool kAddressSpaceLimitWorks = true;
#endif
}  // namespace
namespace {

// linux/ioprio.h is not in every libc; these are the kernel ABI values.
constexpr int kIoprioClassShift = 13;
constexpr int kIoprioClassBe = 2;
constexpr int kIoprioClassIdle = 3;
constexpr int kIoprioWhoProcess = 1;

// Owns a file descriptor.
class Fd {
public:
    Fd() = default;
    explicit Fd(int fd) : fd_(fd) {}
    ~Fd() { reset(); }
    Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    Fd& operator=(Fd&& o) noexcept {
        if (this != &o) { reset(); fd_ = std::exchange(o.fd_, -1); }
        return *this;
    }
    int get() const { return fd_; }
    void reset() {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }
private:
    int fd_ = -1;
};

}  // namespace

TrainingProgress parse_progress_line(const std::string& line) {
    static const std::regex cycle_re(R"(\bcycle[\s=:]*(\d+)\s*/\s*(\d+))", std::regex::icase);
    static const std::regex iter_re(R"(\b(?:iter|iteration|step)[\s=:]*(\d+)\s*/\s*(\d+))", std::regex::icase);
    static const std::regex loss_re(R"(\bloss[\s=:]+([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?))", std::regex::icase);
    TrainingProgress p;
    p.line = line;
    std::smatch m;
    if (std::regex_search(line, m, cycle_re)) { p.cycle = std::stoi(m[1]); p.cycles = std::stoi(m[2]); }
    if (std::regex_search(line, m, iter_re)) { p.iter = std::stoi(m[1]); p.iters = std::stoi(m[2]); }
    if (std::regex_search(line, m, loss_re)) p.loss = std::stod(m[1]);
    return p;
}

std::string TrainingResult::describe() const {
    if (signaled) {
        std::string name = sigabbrev_np(signal) ? std::string("SIG") + sigabbrev_np(signal) : std::to_string(signal);
        return "killed by " + name + (signal == SIGKILL ? " (out of memory or stopped)" : "");
    }
    return exit_code == 127 ? "exit 127 (could not execute)" : fmt::format("exit {}", exit_code);
}

struct TrainingChild::Impl {
    pid_t pid = -1;
    Fd out;
    std::thread reader;
    ProgressCallback on_progress;
    std::mutex mutex;
    std::deque<std::string> last_lines;
    std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
    std::optional<TrainingResult> result;

    void read_loop() {
        std::string buffer;
        char chunk[4096];
        for (;;) {
            const ssize_t n = ::read(out.get(), chunk, sizeof chunk);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            buffer.append(chunk, static_cast<std::size_t>(n));
            std::size_t nl;
            while ((nl = buffer.find_first_of("\n\r")) != std::string::npos) {
                std::string line = buffer.substr(0, nl);
                buffer.erase(0, nl + 1);
                if (!line.empty()) deliver(line);
            }
        }
        if (!buffer.empty()) deliver(buffer);
    }

    void deliver(const std::string& line) {
        {
            std::lock_guard lock(mutex);
            last_lines.push_back(line);
            if (last_lines.size() > 20) last_lines.pop_front();
        }
        if (on_progress) {
            try {
                on_progress(parse_progress_line(line));
            } catch (...) {  // a callback's failure must not kill the reader
            }
        }
    }

    TrainingResult finish(int status) {
        if (reader.joinable()) reader.join();
        TrainingResult r;
        if (WIFSIGNALED(status)) {
            r.signaled = true;
            r.signal = WTERMSIG(status);
        } else {
            r.exit_code = WEXITSTATUS(status);
        }
        r.elapsed = std::chrono::steady_clock::now() - started;
        std::lock_guard lock(mutex);
        r.last_lines.assign(last_lines.begin(), last_lines.end());
        result = r;
        return r;
    }

    std::optional<TrainingResult> reap(bool block) {
        if (result) return result;
        int status = 0;
        pid_t r;
        do {
            r = ::waitpid(pid, &status, block ? 0 : WNOHANG);
        } while (r < 0 && errno == EINTR);
        if (r == 0) return std::nullopt;
        if (r < 0) {  // someone else reaped it: report as unknown failure
            TrainingResult unknown;
            unknown.exit_code = -1;
            if (reader.joinable()) reader.join();
            result = unknown;
            return unknown;
        }
        return finish(status);
    }
};

TrainingChild::TrainingChild(std::vector<std::string> argv, TrainingLimits limits, ProgressCallback on_progress)
    : impl_(std::make_unique<Impl>()) {
    if (argv.empty()) throw std::invalid_argument("training child: empty command line");
    impl_->on_progress = std::move(on_progress);
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0)
        throw std::runtime_error(fmt::format("training child {}: pipe: {}", argv[0], std::strerror(errno)));
    Fd read_end(fds[0]), write_end(fds[1]);

    // Everything the child needs is prepared before fork (no allocation after it).
    std::vector<char*> cargv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    const pid_t parent = ::getpid();

    const pid_t pid = ::fork();
    if (pid < 0)
        throw std::runtime_error(fmt::format("training child {}: fork: {}", argv[0], std::strerror(errno)));
    if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (::getppid() != parent) ::_exit(126);
        ::setpgid(0, 0);
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        ::signal(SIGTERM, SIG_DFL);
        ::signal(SIGINT, SIG_DFL);
        ::signal(SIGHUP, SIG_DFL);
        ::signal(SIGPIPE, SIG_DFL);
        if (limits.nice > 0) ::setpriority(PRIO_PROCESS, 0, limits.nice);
        const int ioprio = limits.idle_io ? (kIoprioClassIdle << kIoprioClassShift)
                                          : ((kIoprioClassBe << kIoprioClassShift) | 7);
        ::syscall(SYS_ioprio_set, kIoprioWhoProcess, 0, ioprio);
        if (limits.memory_limit_mb > 0 && kAddressSpaceLimitWorks) {
            const rlim_t bytes = static_cast<rlim_t>(limits.memory_limit_mb * 1024.0 * 1024.0);
            rlimit rl{bytes, bytes};
            ::setrlimit(RLIMIT_AS, &rl);
        }
        ::dup2(write_end.get(), STDOUT_FILENO);
        ::dup2(write_end.get(), STDERR_FILENO);
        const int devnull = ::open("/dev/null", O_RDONLY);
        if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
        ::execv(cargv[0], cargv.data());
        static const char msg[] = "training child: exec failed\n";
        (void)!::write(STDERR_FILENO, msg, sizeof msg - 1);
        ::_exit(127);
    }
    write_end.reset();
    impl_->pid = pid;
    impl_->out = std::move(read_end);
    impl_->reader = std::thread([impl = impl_.get()] { impl->read_loop(); });
}

TrainingChild::~TrainingChild() {
    if (!impl_ || impl_->pid <= 0) return;
    if (!impl_->result) terminate(std::chrono::seconds(10));
    if (impl_->reader.joinable()) impl_->reader.join();
}

pid_t TrainingChild::pid() const { return impl_->pid; }

std::optional<TrainingResult> TrainingChild::poll() { return impl_->reap(false); }

TrainingResult TrainingChild::wait() { return *impl_->reap(true); }

TrainingResult TrainingChild::terminate(std::chrono::milliseconds grace) {
    if (auto r = impl_->reap(false)) return *r;
    ::kill(impl_->pid, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + grace;
    while (std::chrono::steady_clock::now() < deadline) {
        if (auto r = impl_->reap(false)) return *r;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ::kill(-impl_->pid, SIGKILL);  // its process group: the trainer and anything it started
    ::kill(impl_->pid, SIGKILL);
    return *impl_->reap(true);
}

}  // namespace faceadapt::daemon
