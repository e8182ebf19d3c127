#include "faceadapt/daemon/training_child.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <deque>
#include <mutex>
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

#include "faceadapt/common/durable_file.hpp"

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

// Splits a byte stream into lines and hands each to `deliver`. Lines longer than `max_line`
// are cut off at that length (deliver gets the first max_line bytes and `overlong` = true);
// the rest of such a line is skipped up to its newline, so memory stays bounded.
template <typename Deliver>
void read_lines(int fd, std::size_t max_line, const char* separators, Deliver deliver) {
    std::string buffer;
    bool skipping = false;
    char chunk[65536];
    for (;;) {
        const ssize_t n = ::read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        const std::size_t old_size = buffer.size();
        buffer.append(chunk, static_cast<std::size_t>(n));
        std::size_t start = 0, nl, scan = old_size;  // the bytes before old_size hold no separator
        while ((nl = buffer.find_first_of(separators, scan)) != std::string::npos) {
            scan = nl + 1;
            if (!skipping && nl > start) deliver(std::string_view(buffer).substr(start, nl - start), false);
            skipping = false;
            start = nl + 1;
        }
        buffer.erase(0, start);
        if (buffer.size() > max_line) {
            if (!skipping) deliver(std::string_view(buffer).substr(0, max_line), true);
            skipping = true;
            buffer.clear();
        }
    }
    if (!skipping && !buffer.empty()) deliver(buffer, false);
}

}  // namespace

std::string TrainingResult::describe() const {
    if (signaled) {
        std::string name = sigabbrev_np(signal) ? std::string("SIG") + sigabbrev_np(signal) : std::to_string(signal);
        if (signal != SIGKILL) return "killed by " + name;
        if (killed_after_grace)
            return fmt::format("killed by SIGKILL: it did not stop within {:.1f} s of SIGTERM", grace.count() / 1000.0);
        return "killed by SIGKILL (not by faceadaptd: out of memory, or by hand)";
    }
    return exit_code == 127 ? "exit 127 (could not execute)" : fmt::format("exit {}", exit_code);
}

struct TrainingChild::Impl {
    pid_t pid = -1;
    common::UniqueFd out, protocol;
    std::thread reader, protocol_reader;
    ProgressCallback on_progress;
    OutputCallback on_output;
    std::mutex mutex;
    std::deque<std::string> last_lines;
    std::vector<ChildMessage> messages;
    int protocol_errors = 0;
    std::string first_protocol_error;
    std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
    std::optional<TrainingResult> result;

    void read_loop() {
        read_lines(out.get(), 64 * 1024, "\n\r", [this](std::string_view line, bool) { deliver(std::string(line)); });
    }

    void deliver(const std::string& line) {
        {
            std::lock_guard lock(mutex);
            last_lines.push_back(line);
            if (last_lines.size() > 20) last_lines.pop_front();
        }
        if (on_output) {
            try {
                on_output(line);
            } catch (...) {  // a callback's failure must not kill the reader
            }
        }
    }

    void protocol_loop() {
        read_lines(protocol.get(), kMaxChildLineBytes, "\n", [this](std::string_view line, bool overlong) {
            try {
                if (overlong) throw ProtocolError(fmt::format("a line over {} bytes", kMaxChildLineBytes));
                ChildMessage m = parse_protocol_line(line);
                if (const auto* p = std::get_if<ChildProgress>(&m)) {
                    if (on_progress) on_progress(*p);
                    return;
                }
                std::lock_guard lock(mutex);
                messages.push_back(std::move(m));
            } catch (const ProtocolError& e) {
                std::lock_guard lock(mutex);
                if (protocol_errors++ == 0) first_protocol_error = e.what();
            } catch (...) {  // a callback's failure must not kill the reader
            }
        });
    }

    void join_readers() {
        if (reader.joinable()) reader.join();
        if (protocol_reader.joinable()) protocol_reader.join();
    }

    TrainingResult finish(int status) {
        join_readers();
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
        r.messages = messages;
        r.protocol_errors = protocol_errors;
        r.first_protocol_error = first_protocol_error;
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
            join_readers();
            result = unknown;
            return unknown;
        }
        return finish(status);
    }
};

TrainingChild::TrainingChild(std::vector<std::string> argv, TrainingLimits limits, ProgressCallback on_progress,
                             OutputCallback on_output)
    : impl_(std::make_unique<Impl>()) {
    if (argv.empty()) throw std::invalid_argument("training child: empty command line");
    impl_->on_progress = std::move(on_progress);
    impl_->on_output = std::move(on_output);
    int fds[2], pfds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0)
        throw std::runtime_error(fmt::format("training child {}: pipe: {}", argv[0], std::strerror(errno)));
    common::UniqueFd read_end(fds[0]), write_end(fds[1]);
    if (::pipe2(pfds, O_CLOEXEC) != 0)
        throw std::runtime_error(fmt::format("training child {}: pipe: {}", argv[0], std::strerror(errno)));
    common::UniqueFd protocol_read(pfds[0]), protocol_write(pfds[1]);

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
        // dup2 onto the same number keeps O_CLOEXEC: clear it then.
        if (protocol_write.get() == kChildProtocolFd) ::fcntl(kChildProtocolFd, F_SETFD, 0);
        else ::dup2(protocol_write.get(), kChildProtocolFd);
        const int devnull = ::open("/dev/null", O_RDONLY);
        if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
        ::execv(cargv[0], cargv.data());
        static const char msg[] = "training child: exec failed\n";
        (void)!::write(STDERR_FILENO, msg, sizeof msg - 1);
        ::_exit(127);
    }
    write_end.reset();
    protocol_write.reset();
    impl_->pid = pid;
    impl_->out = std::move(read_end);
    impl_->protocol = std::move(protocol_read);
    impl_->reader = std::thread([impl = impl_.get()] { impl->read_loop(); });
    impl_->protocol_reader = std::thread([impl = impl_.get()] { impl->protocol_loop(); });
}

TrainingChild::~TrainingChild() {
    if (!impl_ || impl_->pid <= 0) return;
    if (!impl_->result) terminate(std::chrono::seconds(10));
    impl_->join_readers();
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
    TrainingResult r = *impl_->reap(true);
    if (r.signaled && r.signal == SIGKILL) {
        r.killed_after_grace = true;
        r.grace = grace;
        impl_->result = r;  // later polls say the same
    }
    return r;
}

}  // namespace faceadapt::daemon
