// `faceadapt rtsp-serve`: a test camera (ingest::RtspTestServer) on loopback.
//
//   faceadapt rtsp-serve [--port 8554] [--address 127.0.0.1] [--mount /cam]
//                        [--user U --password P] [--fps 25] [--size 1280x720] [--transcode]
//                        FILE|DIR
// Serves until SIGINT/SIGTERM. Prints "rtsp-serve: ready rtsp://address:port/mount" on stdout
// once it listens (scripts and tests wait for that line).
#include <cstdio>
#include <filesystem>
#include <iostream>

#include <spdlog/spdlog.h>

#include "commands.hpp"
#include "faceadapt/ingest/rtsp_test_server.hpp"

namespace faceadapt::tools {
namespace {

struct RtspServeArgs {
    ingest::RtspServerOptions options;
    ingest::RtspMount mount;
    std::string size;
};

int parse_size(const std::string& text, ingest::RtspMount& mount) {
    if (text.empty()) return 0;
    int w = 0, h = 0;
    char x = 0;
    if (std::sscanf(text.c_str(), "%d%c%d", &w, &x, &h) != 3 || (x != 'x' && x != 'X') || w <= 0 || h <= 0) {
        spdlog::error("rtsp-serve: --size wants WIDTHxHEIGHT, got '{}'", text);
        return 2;
    }
    mount.width = w;
    mount.height = h;
    return 0;
}

int run_rtsp_serve(RtspServeArgs& args) {
    if (int rc = parse_size(args.size, args.mount)) return rc;
    args.options.mounts = {args.mount};
    try {
        ingest::RtspTestServer::serve_until_signal(args.options, [&](const ingest::RtspTestServer& server) {
            std::cout << "rtsp-serve: ready " << server.url(args.mount.path) << std::endl;
        });
    } catch (const std::invalid_argument& e) {
        spdlog::error("{}", e.what());
        return 2;
    } catch (const std::exception& e) {
        spdlog::error("{}", e.what());
        return 1;
    }
    return 0;
}

}  // namespace

void register_rtsp_serve_command(CLI::App& app, CommandResult& result) {
    auto args = std::make_shared<RtspServeArgs>();
    CLI::App* cmd = app.add_subcommand(
        "rtsp-serve", "Serve a looped video file or a slideshow of a folder of images as an H.264 RTSP camera");
    cmd->add_option("--port", args->options.port, "TCP port (0: any free port)")->capture_default_str();
    cmd->add_option("--address", args->options.address, "address to bind")->capture_default_str();
    cmd->add_option("--mount", args->mount.path, "mount point")->capture_default_str();
    cmd->add_option("--user", args->options.username, "require this username (basic auth)");
    cmd->add_option("--password", args->options.password, "require this password (basic auth)");
    cmd->add_option("--fps", args->mount.fps, "frame rate of slideshows and transcoded video")
        ->capture_default_str()
        ->check(CLI::Range(0.1, 120.0));
    cmd->add_option("--size", args->size, "output WIDTHxHEIGHT (slideshow default 1280x720; video: transcodes)");
    cmd->add_option("--seconds-per-image", args->mount.seconds_per_image, "slideshow pace")->capture_default_str();
    cmd->add_option("--bitrate", args->mount.bitrate_kbps, "x264 bitrate in kbit/s when encoding")
        ->capture_default_str();
    cmd->add_flag("--transcode", args->mount.transcode, "decode and re-encode an H.264 file instead of passing it through");
    cmd->add_option("source", args->mount.source, "video file or folder of images")->required();
    cmd->callback([args, &result] { result.exit_code = run_rtsp_serve(*args); });
}

}  // namespace faceadapt::tools
