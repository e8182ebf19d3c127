#include "faceadapt/daemon/metrics_server.hpp"

#include <chrono>
#include <stdexcept>

#include <sys/socket.h>

#include <httplib.h>
#include <spdlog/spdlog.h>

#include "faceadapt/daemon/metrics.hpp"

namespace faceadapt::daemon {

std::pair<std::string, int> parse_listen_address(const std::string& listen) {
    const auto colon = listen.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == listen.size())
        throw std::invalid_argument("metrics listen address '" + listen + "' is not host:port");
    std::string host = listen.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    const std::string port_text = listen.substr(colon + 1);
    int port = -1;
    try {
        std::size_t used = 0;
        port = std::stoi(port_text, &used);
        if (used != port_text.size()) port = -1;
    } catch (const std::exception&) {
        port = -1;
    }
    if (port < 0 || port > 65535)
        throw std::invalid_argument("metrics listen address '" + listen + "': port must be 0..65535");
    return {host, port};
}

struct MetricsServer::Impl {
    httplib::Server server;
};

MetricsServer::MetricsServer(const std::string& listen, const MetricsRegistry& registry,
                             HealthCallback health)
    : impl_(std::make_unique<Impl>()) {
    auto [host, port] = parse_listen_address(listen);
    host_ = host;
    auto& server = impl_->server;
    server.Get("/metrics", [&registry](const httplib::Request&, httplib::Response& res) {
        res.set_content(registry.render(), "text/plain; version=0.0.4; charset=utf-8");
    });
    server.Get("/healthz", [health = std::move(health)](const httplib::Request&, httplib::Response& res) {
        const Health h = health ? health() : Health{};
        res.status = h.healthy ? 200 : 503;
        res.set_content((h.healthy ? "ok " : "unhealthy ") + h.detail + "\n", "text/plain");
    });
    // SO_REUSEADDR only: httplib's default also sets SO_REUSEPORT, which would let a second
    // daemon bind the same port silently.
    server.set_socket_options([](int sock) {
        int yes = 1;
        ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });
    if (port == 0) {
        port_ = server.bind_to_any_port(host);
        if (port_ < 0) throw std::runtime_error("metrics: cannot bind " + listen);
    } else {
        if (!server.bind_to_port(host, port))
            throw std::runtime_error("metrics: cannot bind " + listen + " (in use or not a local address)");
        port_ = port;
    }
    thread_ = std::thread([this] { impl_->server.listen_after_bind(); });
    // stop() before the loop runs would be lost; wait until it does.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!server.is_running() && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    spdlog::info("metrics: serving http://{}:{}/metrics and /healthz", host_, port_);
}

MetricsServer::~MetricsServer() {
    impl_->server.stop();
    if (thread_.joinable()) thread_.join();
}

}  // namespace faceadapt::daemon
