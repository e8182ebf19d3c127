// RtspTestServer: see rtsp_test_server.hpp.
//
// Each mount is a shared GstRTSPMediaFactory whose media is `appsrc name=src ! ... ! rtph264pay`.
// On "media-configure" a Feeder is attached to the media (freed with it); the appsrc's
// "need-data" signal pulls one buffer at a time from the Feeder:
//   H264Feeder      file ! parsebin ! h264parse (byte-stream, AU) ! appsink, re-timestamped
//   RawFileFeeder   file ! decodebin ! videoconvert ! videoscale ! videorate ! BGR appsink
//   SlideshowFeeder BGR frames cut from the pictures with a slow pan and zoom
// The media pipeline's sinks sync to the clock, so frames leave at their real rate.
#include "faceadapt/ingest/rtsp_test_server.hpp"

#include <csignal>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <thread>

#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/rtsp-server/rtsp-server.h>
#include <gst/video/video.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <spdlog/spdlog.h>

#include "gst_util.hpp"

namespace faceadapt::ingest {
namespace {

namespace fs = std::filesystem;

using Images = std::vector<cv::Mat>;

bool is_image(const fs::path& p) {
    std::string ext = p.extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
    return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp";
}

std::string fraction(double fps) {
    gint num = 0, den = 1;
    gst_util_double_to_fraction(fps, &num, &den);
    return std::to_string(num) + "/" + std::to_string(den);
}

// A reader pipeline ending in `appsink name=sink` that loops its file forever.
class LoopingReader {
public:
    LoopingReader(const std::string& description, const fs::path& file) : file_(file) {
        GError* error = nullptr;
        GstElement* p = gst_parse_launch(description.c_str(), &error);
        if (error) {
            std::string what = error->message;
            g_error_free(error);
            if (p) gst_object_unref(p);
            throw std::runtime_error("cannot build reader for " + file.string() + ": " + what);
        }
        pipeline_.reset(GST_ELEMENT(gst_object_ref_sink(p)));
        gst::ElementPtr src{gst_bin_get_by_name(GST_BIN(p), "file")};
        g_object_set(src.get(), "location", file.c_str(), nullptr);
        sink_.reset(gst_bin_get_by_name(GST_BIN(p), "sink"));
        bus_.reset(gst_element_get_bus(p));
    }
    ~LoopingReader() { gst_element_set_state(pipeline_.get(), GST_STATE_NULL); }

    // Prerolls and starts. throws std::runtime_error with GStreamer's reason on failure.
    void start() {
        if (gst_element_set_state(pipeline_.get(), GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE)
            fail("cannot play");
        GstState state;
        if (gst_element_get_state(pipeline_.get(), &state, nullptr, 10 * GST_SECOND) !=
            GST_STATE_CHANGE_SUCCESS)
            fail("cannot preroll");
    }

    // The next sample; at the end of the file seeks back to its start (`looped` set).
    // Returns null (after logging) when the file cannot be read any more.
    gst::SamplePtr pull(bool& looped) {
        looped = false;
        for (int tries = 0; tries < 50; ++tries) {
            gst::SamplePtr s{gst_app_sink_try_pull_sample(GST_APP_SINK(sink_.get()), 200 * GST_MSECOND)};
            if (s) return s;
            if (gst::MessagePtr m{gst_bus_pop_filtered(bus_.get(), GST_MESSAGE_ERROR)}) {
                spdlog::error("rtsp-serve: {}: {}", file_.string(), gst::describe(m.get()));
                return nullptr;
            }
            if (gst_app_sink_is_eos(GST_APP_SINK(sink_.get()))) {
                if (!gst_element_seek_simple(pipeline_.get(), GST_FORMAT_TIME,
                                             static_cast<GstSeekFlags>(GST_SEEK_FLAG_FLUSH | GST_SEEK_FLAG_KEY_UNIT), 0)) {
                    spdlog::error("rtsp-serve: {}: cannot seek back to the start", file_.string());
                    return nullptr;
                }
                looped = true;
            }
        }
        spdlog::error("rtsp-serve: {}: no data for 10 s", file_.string());
        return nullptr;
    }

    GstCaps* caps() const {  // of the prerolled stream (caller owns)
        gst::PadPtr pad{gst_element_get_static_pad(sink_.get(), "sink")};
        return gst_pad_get_current_caps(pad.get());
    }

private:
    [[noreturn]] void fail(const char* what) {
        std::string reason = what;
        if (gst::MessagePtr m{gst_bus_pop_filtered(bus_.get(), GST_MESSAGE_ERROR)}) reason = gst::describe(m.get());
        throw std::runtime_error(file_.string() + ": " + reason);
    }

    fs::path file_;
    gst::ElementPtr pipeline_;
    gst::ElementPtr sink_;
    gst::BusPtr bus_;
};

std::string h264_reader_description() {
    return "filesrc name=file ! parsebin ! h264parse config-interval=-1 ! "
           "video/x-h264,stream-format=byte-stream,alignment=au ! "
           "appsink name=sink sync=false max-buffers=4 enable-last-sample=false";
}

std::string raw_reader_description(const RtspMount& m) {
    std::string caps = "video/x-raw,format=BGR,framerate=" + fraction(m.fps);
    if (m.width > 0 && m.height > 0)
        caps += ",width=" + std::to_string(m.width) + ",height=" + std::to_string(m.height) +
                ",pixel-aspect-ratio=1/1";
    return "filesrc name=file ! decodebin ! videoconvert ! videoscale ! videorate ! " + caps +
           " ! appsink name=sink sync=false max-buffers=4 enable-last-sample=false";
}

// Supplies the buffers of one media; lives as long as the media.
class Feeder {
public:
    virtual ~Feeder() = default;
    virtual GstCaps* caps() = 0;          // caller owns
    virtual GstBuffer* next() = 0;        // caller owns; null ends the stream
};

class H264Feeder final : public Feeder {
public:
    explicit H264Feeder(const fs::path& file) : reader_(h264_reader_description(), file) { reader_.start(); }
    GstCaps* caps() override { return reader_.caps(); }
    GstBuffer* next() override {
        bool looped = false;
        gst::SamplePtr s = reader_.pull(looped);
        if (!s) return nullptr;
        if (looped) {
            offset_ += loop_end_ - base_;
            loop_end_ = 0;
        }
        GstBuffer* buf = gst_buffer_copy(gst_sample_get_buffer(s.get()));  // metadata copy, shared memory
        const GstClockTime pts = GST_BUFFER_PTS(buf), dts = GST_BUFFER_DTS(buf);
        if (base_ == GST_CLOCK_TIME_NONE) base_ = GST_CLOCK_TIME_IS_VALID(pts) ? pts : 0;
        if (GST_CLOCK_TIME_IS_VALID(pts)) {
            const GstClockTime dur = GST_BUFFER_DURATION_IS_VALID(buf) ? GST_BUFFER_DURATION(buf) : 0;
            loop_end_ = std::max(loop_end_, pts + dur);
            GST_BUFFER_PTS(buf) = pts >= base_ ? pts - base_ + offset_ : offset_;
        }
        if (GST_CLOCK_TIME_IS_VALID(dts))
            GST_BUFFER_DTS(buf) = dts + offset_ >= base_ ? dts + offset_ - base_ : GST_CLOCK_TIME_NONE;
        return buf;
    }

private:
    LoopingReader reader_;
    GstClockTime base_ = GST_CLOCK_TIME_NONE;  // first PTS of the file
    GstClockTime offset_ = 0;                  // added to every timestamp of the current loop
    GstClockTime loop_end_ = 0;                // largest PTS + duration seen in this loop
};

// Raw BGR frames with our own timestamps at a fixed rate.
class RawFeeder : public Feeder {
public:
    explicit RawFeeder(double fps) : frame_ns_(static_cast<GstClockTime>(1e9 / fps)) {}
    GstBuffer* next() override {
        cv::Mat frame = next_frame();
        if (frame.empty()) return nullptr;
        const size_t size = frame.total() * frame.elemSize();
        GstBuffer* buf = gst_buffer_new_allocate(nullptr, size, nullptr);
        if (frame.isContinuous()) {
            gst_buffer_fill(buf, 0, frame.data, size);
        } else {
            cv::Mat packed = frame.clone();
            gst_buffer_fill(buf, 0, packed.data, size);
        }
        GST_BUFFER_PTS(buf) = index_ * frame_ns_;
        GST_BUFFER_DTS(buf) = GST_BUFFER_PTS(buf);
        GST_BUFFER_DURATION(buf) = frame_ns_;
        ++index_;
        return buf;
    }

protected:
    virtual cv::Mat next_frame() = 0;
    std::uint64_t index_ = 0;
    GstClockTime frame_ns_;
};

class RawFileFeeder final : public RawFeeder {
public:
    explicit RawFileFeeder(const RtspMount& m) : RawFeeder(m.fps), reader_(raw_reader_description(m), m.source) {
        reader_.start();
    }
    GstCaps* caps() override { return reader_.caps(); }

private:
    cv::Mat next_frame() override {
        bool looped = false;
        gst::SamplePtr s = reader_.pull(looped);
        if (!s) return {};
        GstVideoInfo info;
        if (!gst_video_info_from_caps(&info, gst_sample_get_caps(s.get()))) return {};
        GstMapInfo map;
        GstBuffer* buf = gst_sample_get_buffer(s.get());
        if (!gst_buffer_map(buf, &map, GST_MAP_READ)) return {};
        cv::Mat view(GST_VIDEO_INFO_HEIGHT(&info), GST_VIDEO_INFO_WIDTH(&info), CV_8UC3, map.data,
                     static_cast<size_t>(GST_VIDEO_INFO_PLANE_STRIDE(&info, 0)));
        cv::Mat copy = view.clone();
        gst_buffer_unmap(buf, &map);
        return copy;
    }
    LoopingReader reader_;
};

// Pictures shown one after the other, each with a slow zoom-in and a sideways pan.
class SlideshowFeeder final : public RawFeeder {
public:
    SlideshowFeeder(const RtspMount& m, std::shared_ptr<const Images> images)
        : RawFeeder(m.fps), images_(std::move(images)), size_(m.width > 0 ? m.width : 1280, m.height > 0 ? m.height : 720),
          fps_(m.fps), seconds_per_image_(m.seconds_per_image) {}
    GstCaps* caps() override {
        gint num = 0, den = 1;
        gst_util_double_to_fraction(fps_, &num, &den);
        return gst_caps_new_simple("video/x-raw", "format", G_TYPE_STRING, "BGR", "width", G_TYPE_INT, size_.width,
                                   "height", G_TYPE_INT, size_.height, "framerate", GST_TYPE_FRACTION, num, den,
                                   "pixel-aspect-ratio", GST_TYPE_FRACTION, 1, 1, nullptr);
    }

private:
    cv::Mat next_frame() override {
        const double t = static_cast<double>(index_) / fps_;
        const auto slot = static_cast<std::size_t>(t / seconds_per_image_);
        const double p = t / seconds_per_image_ - static_cast<double>(slot);  // 0..1 within a picture
        const cv::Mat& img = (*images_)[slot % images_->size()];
        // The largest window with the output's aspect ratio, shrunk by the zoom, panned sideways.
        const double aspect = static_cast<double>(size_.width) / size_.height;
        double w = img.cols, h = w / aspect;
        if (h > img.rows) {
            h = img.rows;
            w = h * aspect;
        }
        const double zoom = 1.0 + 0.12 * p;
        w /= zoom;
        h /= zoom;
        const double cx = img.cols / 2.0 + (p - 0.5) * (img.cols - w) * 0.5;
        const double cy = img.rows / 2.0;
        cv::Rect2d window(std::clamp(cx - w / 2, 0.0, img.cols - w), std::clamp(cy - h / 2, 0.0, img.rows - h), w, h);
        cv::Mat out;
        cv::resize(img(cv::Rect(window) & cv::Rect(0, 0, img.cols, img.rows)), out, size_, 0, 0, cv::INTER_AREA);
        return out;
    }

    std::shared_ptr<const Images> images_;
    cv::Size size_;
    double fps_;
    double seconds_per_image_;
};

enum class MountKind { h264_passthrough, transcode, slideshow };

struct MountState {
    RtspMount mount;
    MountKind kind = MountKind::slideshow;
    std::shared_ptr<const Images> images;

    std::unique_ptr<Feeder> make_feeder() const {
        switch (kind) {
            case MountKind::h264_passthrough: return std::make_unique<H264Feeder>(mount.source);
            case MountKind::transcode: return std::make_unique<RawFileFeeder>(mount);
            case MountKind::slideshow: return std::make_unique<SlideshowFeeder>(mount, images);
        }
        return nullptr;
    }

    std::string launch() const {
        if (kind == MountKind::h264_passthrough)
            return "( appsrc name=src format=time ! rtph264pay name=pay0 pt=96 config-interval=-1 )";
        const int keyint = std::max(1, static_cast<int>(std::lround(mount.fps * 2)));
        return "( appsrc name=src format=time ! videoconvert ! video/x-raw,format=I420 ! "
               "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=" + std::to_string(keyint) +
               " bitrate=" + std::to_string(mount.bitrate_kbps) +
               " ! video/x-h264,profile=constrained-baseline ! rtph264pay name=pay0 pt=96 config-interval=-1 )";
    }
};

void validate(MountState& state, const std::string& who) {
    const RtspMount& m = state.mount;
    if (m.path.empty() || m.path[0] != '/') throw std::invalid_argument(who + ": the mount must start with '/'");
    if (!(m.fps > 0 && m.fps <= 120)) throw std::invalid_argument(who + ": fps must be in (0, 120]");
    if (!(m.seconds_per_image > 0)) throw std::invalid_argument(who + ": seconds_per_image must be > 0");
    if ((m.width > 0) != (m.height > 0) || m.width < 0 || m.height < 0 || m.width % 2 || m.height % 2)
        throw std::invalid_argument(who + ": width and height must both be set, even and positive");
    std::error_code ec;
    if (fs::is_directory(m.source, ec)) {
        auto images = std::make_shared<Images>();
        std::vector<fs::path> files;
        for (const auto& entry : fs::directory_iterator(m.source))
            if (entry.is_regular_file() && is_image(entry.path())) files.push_back(entry.path());
        std::sort(files.begin(), files.end());
        for (const auto& f : files) {
            cv::Mat img = cv::imread(f.string(), cv::IMREAD_COLOR);
            if (img.empty())
                spdlog::warn("rtsp-serve: {}: skipping unreadable image {}", who, f.string());
            else
                images->push_back(std::move(img));
        }
        if (images->empty())
            throw std::invalid_argument(who + ": no readable image (jpg, jpeg, png, bmp) in " + m.source.string());
        state.kind = MountKind::slideshow;
        state.images = std::move(images);
        return;
    }
    if (!fs::is_regular_file(m.source, ec))
        throw std::invalid_argument(who + ": " + m.source.string() + " is neither a video file nor a folder");
    const bool want_raw = m.transcode || m.width > 0;
    if (!want_raw) {
        try {
            H264Feeder probe(m.source);
            state.kind = MountKind::h264_passthrough;
            return;
        } catch (const std::exception& e) {
            spdlog::debug("rtsp-serve: {}: not passed through as H.264 ({}); transcoding", who, e.what());
        }
    }
    try {
        RawFileFeeder probe(m);
        state.kind = MountKind::transcode;
    } catch (const std::exception& e) {
        throw std::invalid_argument(who + ": " + m.source.string() + " is not a playable video file: " + e.what());
    }
}

void on_need_data(GstElement* appsrc, guint, gpointer data) {
    auto* feeder = static_cast<Feeder*>(data);
    if (GstBuffer* buf = feeder->next())
        gst_app_src_push_buffer(GST_APP_SRC(appsrc), buf);
    else
        gst_app_src_end_of_stream(GST_APP_SRC(appsrc));
}

void on_media_configure(GstRTSPMediaFactory*, GstRTSPMedia* media, gpointer data) {
    const auto* state = static_cast<const MountState*>(data);
    gst::ElementPtr bin{gst_rtsp_media_get_element(media)};
    gst::ElementPtr appsrc{gst_bin_get_by_name_recurse_up(GST_BIN(bin.get()), "src")};
    std::unique_ptr<Feeder> feeder;
    try {
        feeder = state->make_feeder();
    } catch (const std::exception& e) {
        spdlog::error("rtsp-serve: mount {}: {}", state->mount.path, e.what());
        gst_app_src_end_of_stream(GST_APP_SRC(appsrc.get()));
        return;
    }
    gst::CapsPtr caps{feeder->caps()};
    g_object_set(appsrc.get(), "caps", caps.get(), "is-live", FALSE, "max-bytes", guint64{0}, nullptr);
    Feeder* raw = feeder.release();
    g_object_set_data_full(G_OBJECT(media), "faceadapt-feeder", raw, [](gpointer p) { delete static_cast<Feeder*>(p); });
    g_signal_connect(appsrc.get(), "need-data", G_CALLBACK(on_need_data), raw);
}

}  // namespace

struct RtspTestServer::Impl {
    RtspServerOptions options;
    std::vector<std::unique_ptr<MountState>> mounts;
    gst::ContextPtr context{g_main_context_new()};
    gst::LoopPtr loop{g_main_loop_new(context.get(), FALSE)};
    std::unique_ptr<GstRTSPServer, gst::GObjectUnref> server;
    gst::SourcePtr server_source;
    gst::SourcePtr cleanup_timer;
    std::thread thread;
    std::atomic<int> bound_port{0};

    void build() {
        server.reset(gst_rtsp_server_new());
        gst_rtsp_server_set_address(server.get(), options.address.c_str());
        gst_rtsp_server_set_service(server.get(), std::to_string(options.port).c_str());
        std::unique_ptr<GstRTSPMountPoints, gst::GObjectUnref> points{gst_rtsp_server_get_mount_points(server.get())};
        const bool auth = !options.username.empty();
        if (auth) {
            std::unique_ptr<GstRTSPAuth, gst::GObjectUnref> a{gst_rtsp_auth_new()};
            GstRTSPToken* token = gst_rtsp_token_new(GST_RTSP_TOKEN_MEDIA_FACTORY_ROLE, G_TYPE_STRING, "user", nullptr);
            gchar* basic = gst_rtsp_auth_make_basic(options.username.c_str(), options.password.c_str());
            gst_rtsp_auth_add_basic(a.get(), basic, token);
            g_free(basic);
            gst_rtsp_token_unref(token);
            gst_rtsp_server_set_auth(server.get(), a.get());
        }
        for (auto& state : mounts) {
            GstRTSPMediaFactory* factory = gst_rtsp_media_factory_new();
            gst_rtsp_media_factory_set_launch(factory, state->launch().c_str());
            gst_rtsp_media_factory_set_shared(factory, TRUE);
            if (auth)
                gst_rtsp_media_factory_add_role(factory, "user", GST_RTSP_PERM_MEDIA_FACTORY_ACCESS, G_TYPE_BOOLEAN,
                                                TRUE, GST_RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, G_TYPE_BOOLEAN, TRUE,
                                                nullptr);
            g_signal_connect(factory, "media-configure", G_CALLBACK(on_media_configure), state.get());
            gst_rtsp_mount_points_add_factory(points.get(), state->mount.path.c_str(), factory);  // takes it
        }
    }
};

RtspTestServer::RtspTestServer(RtspServerOptions options) : impl_(std::make_unique<Impl>()) {
    gst::ensure_initialized();
    if (options.mounts.empty()) throw std::invalid_argument("rtsp-serve: no mount given");
    if (options.port < 0 || options.port > 65535)
        throw std::invalid_argument("rtsp-serve: port " + std::to_string(options.port) + " is out of range");
    if (options.username.empty() != options.password.empty())
        throw std::invalid_argument("rtsp-serve: give both a username and a password, or neither");
    for (const auto& m : options.mounts) {
        auto state = std::make_unique<MountState>();
        state->mount = m;
        validate(*state, "mount " + m.path);
        for (const auto& other : impl_->mounts)
            if (other->mount.path == m.path) throw std::invalid_argument("rtsp-serve: mount " + m.path + " given twice");
        impl_->mounts.push_back(std::move(state));
    }
    impl_->options = std::move(options);
}

RtspTestServer::~RtspTestServer() { stop(); }

void RtspTestServer::start() {
    Impl& d = *impl_;
    if (d.thread.joinable()) return;
    d.build();
    GError* error = nullptr;
    d.server_source.reset(gst_rtsp_server_create_source(d.server.get(), nullptr, &error));
    if (!d.server_source) {
        std::string reason = error ? error->message : "unknown reason";
        if (error) g_error_free(error);
        d.server.reset();
        throw std::runtime_error("rtsp-serve: cannot listen on " + d.options.address + ":" +
                                 std::to_string(d.options.port) + ": " + reason);
    }
    g_source_attach(d.server_source.get(), d.context.get());
    d.bound_port = gst_rtsp_server_get_bound_port(d.server.get());
    d.cleanup_timer.reset(g_timeout_source_new_seconds(2));
    g_source_set_callback(
        d.cleanup_timer.get(),
        [](gpointer s) -> gboolean {
            std::unique_ptr<GstRTSPSessionPool, gst::GObjectUnref> pool{
                gst_rtsp_server_get_session_pool(static_cast<GstRTSPServer*>(s))};
            gst_rtsp_session_pool_cleanup(pool.get());
            return G_SOURCE_CONTINUE;
        },
        d.server.get(), nullptr);
    g_source_attach(d.cleanup_timer.get(), d.context.get());
    d.thread = std::thread([&d] {
        g_main_context_push_thread_default(d.context.get());
        g_main_loop_run(d.loop.get());
        // Close every client connection (their media stop) before the server goes.
        gst_rtsp_server_client_filter(
            d.server.get(), [](GstRTSPServer*, GstRTSPClient*, gpointer) { return GST_RTSP_FILTER_REMOVE; }, nullptr);
        d.cleanup_timer.reset();
        d.server_source.reset();
        while (g_main_context_iteration(d.context.get(), FALSE)) {
        }
        g_main_context_pop_thread_default(d.context.get());
    });
    for (const auto& m : d.mounts)
        spdlog::info("rtsp-serve: {} -> {} ({})", url(m->mount.path), m->mount.source.string(),
                     m->kind == MountKind::h264_passthrough ? "H.264 passed through, looped"
                     : m->kind == MountKind::transcode      ? "re-encoded H.264, looped"
                                                            : "slideshow, H.264");
}

void RtspTestServer::stop() {
    Impl& d = *impl_;
    if (!d.thread.joinable()) return;
    gst::invoke(d.context.get(), [&d] { g_main_loop_quit(d.loop.get()); });
    d.thread.join();
    d.server.reset();
}

int RtspTestServer::serve_until_signal(RtspServerOptions options,
                                       const std::function<void(const RtspTestServer&)>& on_ready) {
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
    RtspTestServer server(std::move(options));
    server.start();
    if (on_ready) on_ready(server);
    int sig = 0;
    sigwait(&stop_signals, &sig);
    spdlog::info("rtsp-serve: signal {}, stopping", sig);
    server.stop();
    return sig;
}

int RtspTestServer::port() const { return impl_->bound_port.load(); }

std::string RtspTestServer::url(const std::string& mount) const {
    return "rtsp://" + impl_->options.address + ":" + std::to_string(port()) + mount;
}

}  // namespace faceadapt::ingest
