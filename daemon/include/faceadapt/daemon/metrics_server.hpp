// MetricsServer: the daemon's HTTP endpoint with /healthz and /metrics.
//
// WHAT THIS REPRESENTS
//   One listening socket and one server thread running a poll() loop over every connection.
//   GET (or HEAD) /metrics renders a MetricsRegistry in the Prometheus text format; /healthz
//   answers 200 "ok ..." while the health callback says healthy and 503 with its reason
//   otherwise. Anything else is 404 (405 for other methods). One request per connection
//   (HTTP/1.1 with "Connection: close"), which Prometheus and the watchdog probes handle.
// WHY NOT cpp-httplib (hand-written, deliberately small)
//   cpp-httplib serves each connection on one thread of a fixed pool and times out each read,
//   not the whole request: 10 slowloris clients sending a header line every 3 s, or 3,000 idle
//   connections, held every worker and /healthz starved (issue 13, class 9). Here no
//   connection can hold anything: the loop never blocks on one client, each request must be
//   complete within Limits::request_timeout of its accept (however slowly it trickles in),
//   headers are bounded by Limits::max_request_bytes, and at Limits::max_connections the
//   connection that has waited longest without completing a request is closed to make room,
//   so a flood of idle connections cannot lock a new client out.
// THREAD SAFETY
//   Construction and destruction from one thread; the registry is rendered and the health
//   callback called on the server thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>

namespace faceadapt::daemon {

class MetricsRegistry;

// "127.0.0.1:9464" -> {"127.0.0.1", 9464}; "[::1]:9464" -> {"::1", 9464}.
// throws std::invalid_argument naming the text when it is not host:port with port 0..65535.
std::pair<std::string, int> parse_listen_address(const std::string& listen);

struct Health {
    bool healthy = true;
    std::string detail;  // one line, e.g. "cameras 2/2 up, model v3"
};

class MetricsServer {
public:
    using HealthCallback = std::function<Health()>;

    // Bounds on what clients may hold. The defaults suit a Prometheus scrape and the watchdog
    // probe (a request of a few hundred bytes sent at once); systemd's LimitNOFILE leaves room.
    struct Limits {
        std::size_t max_connections = 512;                         // open at once; oldest idle closed beyond
        std::size_t max_request_bytes = 8192;                      // request line + headers (431 beyond)
        std::chrono::milliseconds request_timeout{2000};           // accept -> complete request (408 after)
        std::chrono::milliseconds write_timeout{5000};             // response fully sent within this
    };

    // Binds `listen` (port 0 picks a free port) and starts serving.
    // requires: `registry` outlives this object.
    // throws std::runtime_error naming the address when it cannot be bound.
    MetricsServer(const std::string& listen, const MetricsRegistry& registry, HealthCallback health);
    MetricsServer(const std::string& listen, const MetricsRegistry& registry, HealthCallback health,
                  Limits limits);
    // Stops the server, closes every connection and joins its thread.
    ~MetricsServer();
    MetricsServer(const MetricsServer&) = delete;
    MetricsServer& operator=(const MetricsServer&) = delete;

    int port() const { return port_; }
    const std::string& host() const { return host_; }

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
    std::string host_;
    int port_ = 0;
    std::thread thread_;
};

}  // namespace faceadapt::daemon
