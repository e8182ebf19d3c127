// main() of test_stream: runs the tests, or (with --serve) the test camera server child.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <stdexcept>

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include "faceadapt/ingest/rtsp_test_server.hpp"
#include "test_stream_support.hpp"
#include "test_support.hpp"

extern char** environ;

namespace faceadapt::test {
namespace {

bool port_accepts(int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return false;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    return ok;
}

}  // namespace

ServerProcess::ServerProcess(std::map<std::string, std::string> args) : args_(std::move(args)) {
    if (!args_.count("port")) args_["port"] = std::to_string(free_loopback_port());
    if (!args_.count("mount")) args_["mount"] = "/cam";
}

ServerProcess::~ServerProcess() { kill(); }

int ServerProcess::port() const { return std::stoi(args_.at("port")); }

std::string ServerProcess::url() const { return "rtsp://127.0.0.1:" + args_.at("port") + args_.at("mount"); }

void ServerProcess::start() {
    if (running()) return;
    std::vector<std::string> words{"/proc/self/exe", "--serve"};
    for (const auto& [k, v] : args_) words.push_back(k + "=" + v);
    std::vector<char*> argv;
    for (auto& w : words) argv.push_back(w.data());
    argv.push_back(nullptr);
    pid_t pid = -1;
    if (posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv.data(), environ) != 0)
        throw std::runtime_error("cannot spawn the test server");
    pid_ = pid;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    while (std::chrono::steady_clock::now() < deadline) {
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            throw std::runtime_error("the test server exited early (status " + std::to_string(status) + ")");
        }
        if (port_accepts(port())) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    kill();
    throw std::runtime_error("the test server never listened on port " + args_.at("port"));
}

void ServerProcess::kill() {
    if (!running()) return;
    ::kill(pid_, SIGKILL);
    ::kill(pid_, SIGCONT);  // a frozen child must run to die
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
}

void ServerProcess::freeze() {
    if (running()) ::kill(pid_, SIGSTOP);
}

void ServerProcess::thaw() {
    if (running()) ::kill(pid_, SIGCONT);
}

std::filesystem::path demo_photos_dir() { return weights_dir() / "demo"; }

std::filesystem::path walkers_video() { return shared_dir() / "datasets" / "videos" / "walkers-1080p.mp4"; }

config::CameraConfig test_camera(const std::string& id, const std::string& url, double detect_fps) {
    config::CameraConfig c;
    c.id = id;
    c.url = url;
    c.detect_fps = detect_fps;
    c.latency_ms = 100;
    c.stall_timeout_s = 5.0;  // also the connect timeout: generous for a loaded test machine
    c.backoff_initial_s = 0.25;
    c.backoff_max_s = 1.0;
    return c;
}

int serve_main(int argc, char** argv) {
    spdlog::set_level(spdlog::level::warn);
    std::map<std::string, std::string> kv;
    for (int i = 2; i < argc; ++i) {
        std::string a = argv[i];
        const auto eq = a.find('=');
        if (eq != std::string::npos) kv[a.substr(0, eq)] = a.substr(eq + 1);
    }
    ingest::RtspServerOptions options;
    options.port = std::stoi(kv.at("port"));
    if (kv.count("user")) options.username = kv["user"];
    if (kv.count("password")) options.password = kv["password"];
    ingest::RtspMount mount;
    mount.path = kv.at("mount");
    mount.source = kv.at("source");
    if (kv.count("fps")) mount.fps = std::stod(kv["fps"]);
    if (kv.count("size")) std::sscanf(kv["size"].c_str(), "%dx%d", &mount.width, &mount.height);
    options.mounts.push_back(mount);
    try {
        ingest::RtspTestServer::serve_until_signal(options);
    } catch (const std::exception& e) {
        std::cerr << "test server: " << e.what() << "\n";
        return 1;
    }
    return 0;
}

}  // namespace faceadapt::test

int main(int argc, char** argv) {
    if (argc > 1 && std::string(argv[1]) == "--serve") return faceadapt::test::serve_main(argc, argv);
    ::testing::InitGoogleTest(&argc, argv);
    return RUN_ALL_TESTS();
}
