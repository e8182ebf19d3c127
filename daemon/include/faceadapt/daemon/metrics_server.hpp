// MetricsServer: the daemon's HTTP endpoint (cpp-httplib) with /healthz and /metrics.
//
// WHAT THIS REPRESENTS
//   One listening socket and one server thread. GET /metrics renders a MetricsRegistry in the
//   Prometheus text format; GET /healthz answers 200 "ok ..." while the health callback says
//   healthy and 503 with its reason otherwise. Anything else is 404.
// THREAD SAFETY
//   Construction and destruction from one thread; the callbacks run on the server thread.
#pragma once

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
    // Binds `listen` (port 0 picks a free port) and starts serving.
    // requires: `registry` outlives this object.
    // throws std::runtime_error naming the address when it cannot be bound.
    MetricsServer(const std::string& listen, const MetricsRegistry& registry, HealthCallback health);
    // Stops the server and joins its thread.
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
