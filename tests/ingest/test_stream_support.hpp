// Helpers of the camera-stream tests: a test camera in a child process (so a test can kill
// it), waiting for conditions, camera configs with small timeouts.
//
// The test executable doubles as the server: `test_stream --serve port=P mount=/cam source=PATH
// [fps=F] [size=WxH] [user=U password=P]` runs an ingest::RtspTestServer until SIGTERM/SIGKILL
// (see test_stream_main.cpp).
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <sys/types.h>

#include "faceadapt/config/config.hpp"
#include "faceadapt/ingest/camera_source.hpp"
#include "test_support.hpp"

namespace faceadapt::test {

// Runs `test_stream --serve key=value...` as a child process.
class ServerProcess {
public:
    explicit ServerProcess(std::map<std::string, std::string> args);
    ~ServerProcess();  // kill()s
    ServerProcess(const ServerProcess&) = delete;
    ServerProcess& operator=(const ServerProcess&) = delete;

    // Spawns the child and waits (up to 15 s) until its port accepts TCP connections.
    // ensures: running(). throws std::runtime_error when the child exits or never listens.
    void start();
    // SIGKILL (like a camera losing power) and reap. Idempotent.
    void kill();
    // SIGSTOP / SIGCONT: the server freezes with its connections open (a hung camera).
    void freeze();
    void thaw();
    bool running() const { return pid_ > 0; }
    int port() const;
    std::string url() const;  // rtsp://127.0.0.1:port/mount

private:
    std::map<std::string, std::string> args_;
    pid_t pid_ = -1;
};

// The slideshow pictures of the face-api package (always present after scripts/fetch-weights).
std::filesystem::path demo_photos_dir();
// ../shared/datasets/videos/walkers-1080p.mp4 (may be absent).
std::filesystem::path walkers_video();

// A camera config with small timeouts so fault tests stay fast.
config::CameraConfig test_camera(const std::string& id, const std::string& url, double detect_fps = 5.0);

// Serves `test_stream --serve` mode; returns the exit code. Used by main().
int serve_main(int argc, char** argv);

}  // namespace faceadapt::test
