// RtspTestServer: a test camera: an RTSP server (gst-rtsp-server) on loopback that streams a
// looped video file or a slideshow of still images as H.264, like a real IP camera.
//
// WHAT THIS REPRESENTS
//   One server, one or more mounts. Each mount serves
//   - a video file: when it holds H.264 and no size/transcode is asked for, its access units are
//     passed through untouched (h264parse, no re-encode: nearly free); otherwise it is decoded,
//     scaled and re-encoded with x264enc tune=zerolatency. The file loops seamlessly:
//     timestamps keep increasing across the seek back to its start;
//   - a folder of images (jpg, jpeg, png, bmp): a slideshow with a slow pan and zoom over each
//     picture, encoded with x264enc tune=zerolatency.
//   Media are shared between clients (one encoder per mount, like a camera). With a username
//   and password set, clients must authenticate (HTTP basic) or get 401.
//   `faceadapt rtsp-serve` is the command-line face of this class; tests and benchmarks that
//   must kill the server run that command (or their own executable) as a child process.
// THREAD SAFETY
//   start()/stop() from one thread; port() and url() from any thread after start(). The server
//   runs on its own GLib thread.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace faceadapt::ingest {

struct RtspMount {
    std::string path = "/cam";             // starts with '/'
    std::filesystem::path source;          // a video file or a folder of images
    bool transcode = false;                // video: decode + re-encode even when it is H.264
    int width = 0;                         // output size for transcode / slideshow;
    int height = 0;                        //   0 = the video's own size, 1280x720 for slideshows
    double fps = 25.0;                     // slideshow and transcode frame rate
    double seconds_per_image = 3.0;        // slideshow
    int bitrate_kbps = 2000;               // x264enc bitrate when encoding
};

struct RtspServerOptions {
    std::string address = "127.0.0.1";    // loopback unless told otherwise
    int port = 8554;                       // 0: any free port (see port())
    std::string username;                  // with password: basic auth required
    std::string password;
    std::vector<RtspMount> mounts;
};

class RtspTestServer {
public:
    // Validates the options and every mount's source: a folder must hold at least one readable
    // image; a file must hold a video stream GStreamer can demux and decode.
    // throws std::invalid_argument naming the mount and path on bad input.
    explicit RtspTestServer(RtspServerOptions options);
    ~RtspTestServer();  // stop()s
    RtspTestServer(const RtspTestServer&) = delete;
    RtspTestServer& operator=(const RtspTestServer&) = delete;

    // Binds address:port and serves until stop(). throws std::runtime_error naming the
    // address and port when it cannot bind. Idempotent.
    void start();
    // Disconnects every client, closes the socket, joins the server thread. Idempotent.
    void stop();

    int port() const;                                        // the bound port after start()

    // The body of a server process: blocks SIGINT and SIGTERM in the calling thread (call it
    // before the process starts other threads, so that they inherit the mask), starts a server
    // with `options`, calls `on_ready` with it, waits for one of those signals and stops.
    // Returns the signal number. throws what the constructor and start() throw.
    static int serve_until_signal(RtspServerOptions options,
                                  const std::function<void(const RtspTestServer&)>& on_ready = {});
    // "rtsp://address:port/mount" (without credentials).
    std::string url(const std::string& mount = "/cam") const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace faceadapt::ingest
