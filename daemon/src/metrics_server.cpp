// MetricsServer: a poll() loop over a listening socket and its connections. See the header for
// why this is not cpp-httplib; the HTTP spoken is the small subset a scrape needs (one GET or
// HEAD per connection, no body, the answer closes the connection).
#include "faceadapt/daemon/metrics_server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <list>
#include <stdexcept>
#include <string_view>
#include <vector>

#include <spdlog/spdlog.h>

#include "faceadapt/common/durable_file.hpp"
#include "faceadapt/common/listen_address.hpp"
#include "faceadapt/daemon/metrics.hpp"

namespace faceadapt::daemon {
namespace {

using SteadyClock = std::chrono::steady_clock;
using common::UniqueFd;

// After the answer: how long a client may keep sending (its unread request body or oversized
// header) before the socket is closed; closing with unread input would reset the connection
// and the client could lose the answer.
constexpr auto kLinger = std::chrono::milliseconds(1000);
// Bytes read at most per connection and wake-up, and connections accepted per wake-up, so one
// busy client cannot monopolise the loop.
constexpr std::size_t kReadChunk = 4096;
constexpr int kAcceptBurst = 64;

struct Connection {
    enum class Phase { reading, writing, draining };
    UniqueFd fd;
    Phase phase = Phase::reading;
    SteadyClock::time_point deadline;  // of the current phase
    std::string in;
    std::string out;
    std::size_t sent = 0;
};

std::string status_text(int status) {
    switch (status) {
        case 200: return "OK";
        case 400: return "Bad Request";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 408: return "Request Timeout";
        case 431: return "Request Header Fields Too Large";
        case 500: return "Internal Server Error";
        case 503: return "Service Unavailable";
        default: return "Error";
    }
}

std::string response(int status, std::string_view content_type, const std::string& body, bool head = false,
                     std::string_view extra_headers = {}) {
    std::string r = "HTTP/1.1 " + std::to_string(status) + " " + status_text(status) + "\r\n";
    r += "Content-Type: ";
    r += content_type;
    r += "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n";
    r += extra_headers;
    r += "\r\n";
    if (!head) r += body;
    return r;
}

std::string plain(int status, const std::string& text) {
    return response(status, "text/plain", text + "\n");
}

}  // namespace

std::pair<std::string, int> parse_listen_address(const std::string& listen) {
    return common::parse_listen_address(listen, "metrics listen address");
}

struct MetricsServer::Impl {
    const MetricsRegistry& registry;
    HealthCallback health;
    Limits limits;
    UniqueFd listener;
    UniqueFd wake_read, wake_write;  // the destructor's "stop" to the loop
    std::list<Connection> connections;  // in accept order: the front waited longest

    Impl(const MetricsRegistry& r, HealthCallback h, Limits l) : registry(r), health(std::move(h)), limits(l) {}

    void run();
    void accept_new(SteadyClock::time_point now, SteadyClock::time_point& accept_paused_until);
    bool evict_oldest_unanswered();
    void on_readable(Connection& c, SteadyClock::time_point now);
    void on_writable(Connection& c, SteadyClock::time_point now);
    void answer(Connection& c, std::string reply, SteadyClock::time_point now);
    std::string handle(std::string_view request_head);
};

// Closes the connection that has waited longest without a complete request (or, failing that,
// the oldest one still draining). false when every connection is being answered.
bool MetricsServer::Impl::evict_oldest_unanswered() {
    for (auto phase : {Connection::Phase::reading, Connection::Phase::draining}) {
        auto it = std::find_if(connections.begin(), connections.end(),
                               [phase](const Connection& c) { return c.phase == phase; });
        if (it != connections.end()) {
            connections.erase(it);
            return true;
        }
    }
    return false;
}

void MetricsServer::Impl::accept_new(SteadyClock::time_point now, SteadyClock::time_point& accept_paused_until) {
    for (int i = 0; i < kAcceptBurst; ++i) {
        const int fd = ::accept4(listener.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if ((errno == EMFILE || errno == ENFILE) && evict_oldest_unanswered()) continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                // Out of descriptors and nothing of ours to close: stop accepting for a moment
                // instead of spinning on a listener that stays readable.
                accept_paused_until = now + std::chrono::milliseconds(100);
                spdlog::warn("metrics: cannot accept a connection: {}", std::strerror(errno));
            }
            return;  // EAGAIN: nothing more pending
        }
        if (connections.size() >= limits.max_connections && !evict_oldest_unanswered()) {
            ::close(fd);  // every slot is being answered: the newcomer must retry
            continue;
        }
        Connection c;
        c.fd = UniqueFd(fd);
        c.deadline = now + limits.request_timeout;
        connections.push_back(std::move(c));
    }
}

std::string MetricsServer::Impl::handle(std::string_view head) {
    const auto line_end = head.find_first_of("\r\n");
    const std::string_view line = head.substr(0, line_end);
    const auto sp1 = line.find(' ');
    const auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || !line.substr(sp2 + 1).starts_with("HTTP/1."))
        return plain(400, "bad request line");
    const std::string_view method = line.substr(0, sp1);
    std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    target = target.substr(0, target.find_first_of("?#"));
    const bool head_only = method == "HEAD";
    if (method != "GET" && !head_only)
        return response(405, "text/plain", "only GET and HEAD\n", false, "Allow: GET, HEAD\r\n");
    try {
        if (target == "/metrics")
            return response(200, "text/plain; version=0.0.4; charset=utf-8", registry.render(), head_only);
        if (target == "/healthz") {
            const Health h = health ? health() : Health{};
            return response(h.healthy ? 200 : 503, "text/plain",
                            (h.healthy ? "ok " : "unhealthy ") + h.detail + "\n", head_only);
        }
    } catch (const std::exception& e) {
        spdlog::error("metrics: answering {}: {}", std::string(target), e.what());
        return plain(500, "internal error");
    }
    return plain(404, "not found");
}

void MetricsServer::Impl::answer(Connection& c, std::string reply, SteadyClock::time_point now) {
    c.out = std::move(reply);
    c.sent = 0;
    c.in.clear();
    c.in.shrink_to_fit();
    c.phase = Connection::Phase::writing;
    c.deadline = now + limits.write_timeout;
}

void MetricsServer::Impl::on_readable(Connection& c, SteadyClock::time_point now) {
    char buf[kReadChunk];
    const ssize_t n = ::recv(c.fd.get(), buf, sizeof buf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (n <= 0) {
        c.fd.reset();  // closed by the client or failed: dropped by the loop
        return;
    }
    if (c.phase == Connection::Phase::draining) return;  // discarded
    c.in.append(buf, static_cast<std::size_t>(n));
    auto end = c.in.find("\r\n\r\n");
    if (end == std::string::npos) end = c.in.find("\n\n");
    if (end != std::string::npos && end <= limits.max_request_bytes) {
        answer(c, handle(std::string_view(c.in).substr(0, end)), now);
        on_writable(c, now);
    } else if (c.in.size() > limits.max_request_bytes) {
        answer(c, plain(431, "request header too large"), now);
        on_writable(c, now);
    }
}

void MetricsServer::Impl::on_writable(Connection& c, SteadyClock::time_point now) {
    while (c.sent < c.out.size()) {
        const ssize_t n = ::send(c.fd.get(), c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (n < 0) {
            c.fd.reset();
            return;
        }
        c.sent += static_cast<std::size_t>(n);
    }
    // All sent: half-close and read what the client still sends until it closes or kLinger.
    ::shutdown(c.fd.get(), SHUT_WR);
    c.out.clear();
    c.out.shrink_to_fit();
    c.phase = Connection::Phase::draining;
    c.deadline = now + kLinger;
}

void MetricsServer::Impl::run() {
    std::vector<pollfd> fds;
    std::vector<Connection*> polled;
    auto accept_paused_until = SteadyClock::time_point::min();
    for (;;) {
        const auto now = SteadyClock::now();
        // Deadlines: a request still incomplete gets 408, a stuck write or a finished linger
        // just closes.
        for (auto it = connections.begin(); it != connections.end();) {
            if (it->fd.valid() && now >= it->deadline) {
                if (it->phase == Connection::Phase::reading) {
                    answer(*it, plain(408, "request not complete in time"), now);
                    on_writable(*it, now);
                    if (it->phase == Connection::Phase::draining) it->fd.reset();  // no lingering for these
                } else {
                    it->fd.reset();
                }
            }
            it = it->fd.valid() ? std::next(it) : connections.erase(it);
        }
        fds.clear();
        polled.clear();
        fds.push_back({wake_read.get(), POLLIN, 0});
        const bool accepting = now >= accept_paused_until;
        fds.push_back({accepting ? listener.get() : -1, POLLIN, 0});
        auto next = now + std::chrono::seconds(1);
        if (!accepting) next = std::min(next, accept_paused_until);
        for (auto& c : connections) {
            const short events = c.phase == Connection::Phase::writing ? POLLOUT : POLLIN;
            fds.push_back({c.fd.get(), events, 0});
            polled.push_back(&c);
            next = std::min(next, c.deadline);
        }
        const auto wait_ms = std::chrono::duration_cast<std::chrono::milliseconds>(next - now).count() + 1;
        const int ready = ::poll(fds.data(), fds.size(), static_cast<int>(std::max<long long>(wait_ms, 0)));
        if (ready < 0 && errno != EINTR) {
            spdlog::error("metrics: poll failed: {}; the endpoint stops", std::strerror(errno));
            return;
        }
        if (ready <= 0) continue;
        if (fds[0].revents) return;  // stop
        const auto woke = SteadyClock::now();
        for (std::size_t i = 0; i < polled.size(); ++i) {
            const short ev = fds[i + 2].revents;
            Connection& c = *polled[i];
            if (!ev || !c.fd.valid()) continue;
            if (ev & (POLLERR | POLLNVAL)) {
                c.fd.reset();
            } else if (c.phase == Connection::Phase::writing) {
                if (ev & (POLLOUT | POLLHUP)) on_writable(c, woke);
            } else if (ev & (POLLIN | POLLHUP)) {
                on_readable(c, woke);
            }
        }
        std::erase_if(connections, [](const Connection& c) { return !c.fd.valid(); });
        if (fds[1].revents & POLLIN) accept_new(woke, accept_paused_until);
    }
}

MetricsServer::MetricsServer(const std::string& listen, const MetricsRegistry& registry, HealthCallback health)
    : MetricsServer(listen, registry, std::move(health), Limits{}) {}

MetricsServer::MetricsServer(const std::string& listen, const MetricsRegistry& registry, HealthCallback health,
                             Limits limits)
    : impl_(std::make_unique<Impl>(registry, std::move(health), limits)) {
    auto [host, port] = parse_listen_address(listen);
    host_ = host;
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* found = nullptr;
    const std::string port_text = std::to_string(port);
    if (const int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port_text.c_str(), &hints, &found); rc != 0)
        throw std::runtime_error("metrics: cannot bind " + listen + ": " + ::gai_strerror(rc));
    std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> addresses(found, &::freeaddrinfo);
    std::string why = "no address";
    for (const addrinfo* a = found; a; a = a->ai_next) {
        UniqueFd fd(::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol));
        if (!fd.valid()) {
            why = std::strerror(errno);
            continue;
        }
        // SO_REUSEADDR only: SO_REUSEPORT would let a second daemon bind the same port silently.
        int yes = 1;
        ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
        if (::bind(fd.get(), a->ai_addr, a->ai_addrlen) != 0 || ::listen(fd.get(), SOMAXCONN) != 0) {
            why = std::strerror(errno);
            continue;
        }
        impl_->listener = std::move(fd);
        break;
    }
    if (!impl_->listener.valid())
        throw std::runtime_error("metrics: cannot bind " + listen + " (" + why + ": in use or not a local address)");
    sockaddr_storage bound{};
    socklen_t len = sizeof bound;
    ::getsockname(impl_->listener.get(), reinterpret_cast<sockaddr*>(&bound), &len);
    port_ = bound.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                                        : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC | O_NONBLOCK) != 0)
        throw std::runtime_error(std::string("metrics: pipe failed: ") + std::strerror(errno));
    impl_->wake_read = UniqueFd(pipe_fds[0]);
    impl_->wake_write = UniqueFd(pipe_fds[1]);
    thread_ = std::thread([this] { impl_->run(); });
    spdlog::info("metrics: serving http://{}:{}/metrics and /healthz", host_, port_);
}

MetricsServer::~MetricsServer() {
    const char stop = 's';
    (void)!::write(impl_->wake_write.get(), &stop, 1);
    if (thread_.joinable()) thread_.join();
}

}  // namespace faceadapt::daemon
