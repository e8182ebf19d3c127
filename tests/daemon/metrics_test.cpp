// Metrics registry exposition, the HTTP endpoint, and the sd_notify wrapper.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>
#include <string>

#include <gtest/gtest.h>
#include <httplib.h>

#include "faceadapt/daemon/metrics.hpp"
#include "faceadapt/daemon/metrics_server.hpp"
#include "faceadapt/daemon/sd_notify.hpp"
#include "test_support.hpp"

using namespace faceadapt::daemon;

TEST(Metrics, RendersPrometheusTextWithHelpTypeAndEscapedLabels) {
    MetricsRegistry r;
    r.describe("faceadapt_frames_total", MetricType::counter, "Frames decoded");
    r.describe("faceadapt_model_version", MetricType::gauge, "Model version in use");
    r.add("faceadapt_frames_total", {{"camera", "door\"1"}}, 3);
    r.add("faceadapt_frames_total", {{"camera", "door\"1"}});
    r.set("faceadapt_model_version", {}, 7);
    const std::string text = r.render();
    EXPECT_NE(text.find("# HELP faceadapt_frames_total Frames decoded\n"), std::string::npos) << text;
    EXPECT_NE(text.find("# TYPE faceadapt_frames_total counter\n"), std::string::npos);
    EXPECT_NE(text.find("faceadapt_frames_total{camera=\"door\\\"1\"} 4\n"), std::string::npos) << text;
    EXPECT_NE(text.find("# TYPE faceadapt_model_version gauge\nfaceadapt_model_version 7\n"), std::string::npos);
    // Families in name order.
    EXPECT_LT(text.find("faceadapt_frames_total"), text.find("faceadapt_model_version"));
}

TEST(Metrics, LabelOrderDoesNotMatterAndRemoveMatchingDropsACamera) {
    MetricsRegistry r;
    r.describe("x_total", MetricType::counter, "x");
    r.add("x_total", {{"camera", "a"}, {"state", "up"}}, 2);
    EXPECT_EQ(r.value("x_total", {{"state", "up"}, {"camera", "a"}}), 2);
    r.add("x_total", {{"camera", "b"}}, 1);
    r.remove_matching("camera", "a");
    EXPECT_EQ(r.value("x_total", {{"camera", "a"}, {"state", "up"}}), 0);
    EXPECT_EQ(r.value("x_total", {{"camera", "b"}}), 1);
    EXPECT_EQ(r.render().find("camera=\"a\""), std::string::npos);
}

TEST(Metrics, RejectsBadNamesUnknownMetricsTypeConflictsAndDecreasingCounters) {
    MetricsRegistry r;
    EXPECT_THROW(r.describe("1bad", MetricType::gauge, ""), std::invalid_argument);
    EXPECT_THROW(r.describe("has space", MetricType::gauge, ""), std::invalid_argument);
    EXPECT_THROW(r.set("nope", {}, 1), std::invalid_argument);
    r.describe("c_total", MetricType::counter, "");
    EXPECT_THROW(r.describe("c_total", MetricType::gauge, ""), std::invalid_argument);
    EXPECT_THROW(r.add("c_total", {}, -1), std::invalid_argument);
}

TEST(Metrics, FormatsValues) {
    EXPECT_EQ(format_metric_value(12), "12");
    EXPECT_EQ(format_metric_value(0.25), "0.25");
    EXPECT_EQ(format_metric_value(1.0 / 0.0), "+Inf");
    EXPECT_EQ(format_metric_value(std::nan("")), "NaN");
    EXPECT_EQ(escape_label_value("a\\b\nc"), "a\\\\b\\nc");
}

TEST(MetricsServer, ServesMetricsAndHealthOnLoopback) {
    MetricsRegistry r;
    r.describe("faceadapt_up", MetricType::gauge, "1 while running");
    r.set("faceadapt_up", {}, 1);
    bool healthy = true;
    MetricsServer server("127.0.0.1:0", r, [&] { return Health{healthy, "cameras 1/1 up"}; });
    ASSERT_GT(server.port(), 0);
    httplib::Client client("127.0.0.1", server.port());
    auto res = client.Get("/metrics");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200);
    EXPECT_NE(res->body.find("faceadapt_up 1\n"), std::string::npos);
    EXPECT_NE(res->get_header_value("Content-Type").find("version=0.0.4"), std::string::npos);
    res = client.Get("/healthz");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200);
    EXPECT_EQ(res->body, "ok cameras 1/1 up\n");
    healthy = false;
    res = client.Get("/healthz");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 503);
    res = client.Get("/other");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 404);
}

namespace {

// Sends `request` raw over a new loopback connection and returns what comes back before the
// server closes it (or 1 s of silence passes).
std::string raw_exchange(int port, const std::string& request) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return "socket failed";
    timeval tv{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::string reply;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
        (void)!::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
        char buf[4096];
        for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) reply.append(buf, static_cast<size_t>(n));
    } else {
        reply = "connect failed";
    }
    ::close(fd);
    return reply;
}

}  // namespace

TEST(MetricsServer, SurvivesGarbageAndHostileRequests) {
    MetricsRegistry r;
    r.describe("faceadapt_up", MetricType::gauge, "1 while running");
    r.set("faceadapt_up", {}, 1);
    MetricsServer server("127.0.0.1:0", r, [] { return Health{true, "fine"}; });
    // Binary noise, a request line with no version, a header far over any sane size, a method
    // the endpoint does not serve, and a request cut off half-way.
    const std::string noise("\x00\xff\x13\x37GARBAGE\r\n\r\n", 15);
    for (const std::string& request :
         {noise, std::string("GET\r\n\r\n"), "GET /metrics HTTP/1.1\r\nX-Big: " + std::string(1 << 20, 'a') + "\r\n\r\n",
          std::string("DELETE /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), std::string("GET /metr")}) {
        const std::string reply = raw_exchange(server.port(), request);
        // Whatever the server answers, it is never a 200 with the metrics.
        EXPECT_EQ(reply.find("faceadapt_up 1"), std::string::npos) << request.substr(0, 40);
        // A complete request gets a 4xx status line; the others may just be closed.
        if (request.starts_with("DELETE") || request.starts_with("GET /metrics HTTP/1.1\r\nX-Big")) {
            EXPECT_TRUE(reply.starts_with("HTTP/1.1 4")) << "[" << reply.substr(0, 60) << "] for " << request.substr(0, 20);
        }
    }
    // The well-formed request after them is served as usual.
    httplib::Client client("127.0.0.1", server.port());
    auto res = client.Get("/metrics");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200);
    EXPECT_NE(res->body.find("faceadapt_up 1\n"), std::string::npos);
}

namespace {

// A non-blocking loopback connection to `port` (the connect may still be in progress).
int open_connection(int port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 && errno != EINPROGRESS) {
        ::close(fd);
        return -1;
    }
    return fd;
}

// GET /healthz with a 1 s budget for connect, send and the whole answer.
bool healthz_within_one_second(int port, std::string* why) {
    httplib::Client client("127.0.0.1", port);
    client.set_connection_timeout(1, 0);
    client.set_read_timeout(1, 0);
    client.set_write_timeout(1, 0);
    const auto t0 = std::chrono::steady_clock::now();
    auto res = client.Get("/healthz");
    const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!res) {
        *why = "no answer (" + httplib::to_string(res.error()) + ") after " + std::to_string(took) + " s";
        return false;
    }
    *why = "status " + std::to_string(res->status) + " after " + std::to_string(took) + " s";
    return res->status == 200 && res->body == "ok fine\n" && took < 1.0;
}

// Raises this process's soft RLIMIT_NOFILE to at least `want` (up to the hard limit).
rlim_t raise_nofile(rlim_t want) {
    rlimit lim{};
    ::getrlimit(RLIMIT_NOFILE, &lim);
    if (lim.rlim_cur < want) {
        lim.rlim_cur = std::min(want, lim.rlim_max);
        ::setrlimit(RLIMIT_NOFILE, &lim);
        ::getrlimit(RLIMIT_NOFILE, &lim);
    }
    return lim.rlim_cur;
}

}  // namespace

// Slowloris: 20 clients each sending a header line every 300 ms and never finishing. /healthz
// must still answer within 1 s while they keep at it (for 3 s, longer than the request timeout,
// so the server's cut-off of the slow requests is exercised too).
TEST(MetricsServer, HealthzAnswersWithinOneSecondDuringTwentySlowlorisClients) {
    MetricsRegistry r;
    MetricsServer server("127.0.0.1:0", r, [] { return Health{true, "fine"}; });
    std::vector<int> slow;
    for (int i = 0; i < 20; ++i) {
        const int fd = open_connection(server.port());
        ASSERT_GE(fd, 0);
        slow.push_back(fd);
    }
    std::atomic<bool> done{false};
    std::atomic<int> lines_sent{0};
    std::thread loris([&] {
        const std::string first = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n";
        std::vector<bool> started(slow.size(), false);
        for (int round = 0; !done && round < 100; ++round) {  // bounded: 100 x 300 ms at most
            for (std::size_t i = 0; i < slow.size(); ++i) {
                const std::string line = started[i] ? "X-Slow-" + std::to_string(round) + ": a\r\n" : first;
                if (::send(slow[i], line.data(), line.size(), MSG_NOSIGNAL) > 0) {
                    started[i] = true;
                    ++lines_sent;
                }
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the attack's pace, not a wait
        }
    });
    // Every slow client has started its request before /healthz is asked.
    const auto until_started = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (lines_sent < 20 && std::chrono::steady_clock::now() < until_started) std::this_thread::yield();
    ASSERT_GE(lines_sent.load(), 20);
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    int asked = 0;
    while (std::chrono::steady_clock::now() < end) {
        std::string why;
        EXPECT_TRUE(healthz_within_one_second(server.port(), &why)) << "request " << asked << ": " << why;
        ++asked;
        if (::testing::Test::HasFailure()) break;
    }
    done = true;
    loris.join();
    for (int fd : slow) ::close(fd);
    EXPECT_GT(asked, 0);
}

// 3,000 idle connections (connected, never sending) opened before /healthz is asked.
TEST(MetricsServer, HealthzAnswersWithinOneSecondDuringThreeThousandIdleConnections) {
    constexpr int kIdle = 3000;
    // The clients' 3,000 descriptors plus the server's (in this process too; it holds at most
    // Limits::max_connections = 512 of them) and some slack.
    constexpr rlim_t kNeeded = kIdle + 1024;
    const rlim_t limit = raise_nofile(kNeeded);
    if (limit < kNeeded) GTEST_SKIP() << "RLIMIT_NOFILE hard limit " << limit << " is below " << kNeeded;
    MetricsRegistry r;
    MetricsServer server("127.0.0.1:0", r, [] { return Health{true, "fine"}; });
    std::vector<int> idle;
    for (int i = 0; i < kIdle; ++i) {
        const int fd = open_connection(server.port());
        ASSERT_GE(fd, 0) << "connection " << i << ": " << std::strerror(errno);
        idle.push_back(fd);
    }
    for (int attempt = 0; attempt < 3; ++attempt) {
        std::string why;
        EXPECT_TRUE(healthz_within_one_second(server.port(), &why)) << "attempt " << attempt << ": " << why;
    }
    // And /metrics too, the same way.
    httplib::Client client("127.0.0.1", server.port());
    client.set_read_timeout(1, 0);
    auto res = client.Get("/metrics");
    EXPECT_TRUE(res && res->status == 200);
    for (int fd : idle) ::close(fd);
}

// A request that trickles in is cut off after the request timeout with a 408, and a header
// over the limit gets a 431, both without a worker held meanwhile.
TEST(MetricsServer, SlowAndOversizedRequestsAreCutOff) {
    MetricsRegistry r;
    MetricsServer::Limits limits;
    limits.request_timeout = std::chrono::milliseconds(300);
    MetricsServer server("127.0.0.1:0", r, [] { return Health{true, "fine"}; }, limits);
    const std::string reply = raw_exchange(server.port(), "GET /healthz HTTP/1.1\r\nHost: x\r\n");
    EXPECT_TRUE(reply.starts_with("HTTP/1.1 408")) << reply.substr(0, 60);
    const std::string big = raw_exchange(server.port(), "GET /healthz HTTP/1.1\r\nX: " + std::string(9000, 'a') + "\r\n\r\n");
    EXPECT_TRUE(big.starts_with("HTTP/1.1 431")) << big.substr(0, 60);
    const std::string head = raw_exchange(server.port(), "HEAD /healthz HTTP/1.1\r\n\r\n");
    EXPECT_TRUE(head.starts_with("HTTP/1.1 200")) << head.substr(0, 60);
    EXPECT_EQ(head.find("ok fine"), std::string::npos) << "HEAD has no body";
}

TEST(MetricsServer, RejectsBadAddressesAndPortsInUse) {
    MetricsRegistry r;
    EXPECT_THROW(parse_listen_address("9464"), std::invalid_argument);
    EXPECT_THROW(parse_listen_address("127.0.0.1:99999"), std::invalid_argument);
    EXPECT_THROW(parse_listen_address("127.0.0.1:abc"), std::invalid_argument);
    EXPECT_THROW(parse_listen_address("127.0.0.1:80abc"), std::invalid_argument);
    EXPECT_THROW(parse_listen_address("127.0.0.1: 80"), std::invalid_argument);
    EXPECT_THROW(parse_listen_address("127.0.0.1:+80"), std::invalid_argument);
    EXPECT_EQ(parse_listen_address("[::1]:80"), (std::pair<std::string, int>{"::1", 80}));
    MetricsServer first("127.0.0.1:0", r, nullptr);
    try {
        MetricsServer second("127.0.0.1:" + std::to_string(first.port()), r, nullptr);
        FAIL() << "a second server bound the same port";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find(std::to_string(first.port())), std::string::npos) << e.what();
    }
}

TEST(SdNotify, NoOpWithoutSocketAndSendsMessagesWithOne) {
    ::unsetenv("NOTIFY_SOCKET");
    {
        SystemdNotifier n;
        EXPECT_FALSE(n.enabled());
        EXPECT_FALSE(n.notify("READY=1"));
    }
    faceadapt::test::TempDir dir;
    const std::string path = (dir.path() / "notify.sock").string();
    const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ::setenv("NOTIFY_SOCKET", path.c_str(), 1);
    timeval timeout{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    SystemdNotifier n;
    if (!n.enabled()) {
        ::unsetenv("NOTIFY_SOCKET");
        ::close(fd);
        GTEST_SKIP() << "built without libsystemd";
    }
    n.ready("cameras 2/2 up\nmodel v1");
    n.watchdog();
    n.stopping();
    ::unsetenv("NOTIFY_SOCKET");
    char buf[256];
    std::vector<std::string> got;
    for (int i = 0; i < 3; ++i) {
        const ssize_t len = ::recv(fd, buf, sizeof buf, 0);
        ASSERT_GT(len, 0);
        got.emplace_back(buf, static_cast<std::size_t>(len));
    }
    ::close(fd);
    EXPECT_EQ(got[0], "READY=1\nSTATUS=cameras 2/2 up model v1");
    EXPECT_EQ(got[1], "WATCHDOG=1");
    EXPECT_EQ(got[2], "STOPPING=1");
}
