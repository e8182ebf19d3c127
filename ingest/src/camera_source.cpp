// CameraSource: see camera_source.hpp. All pipeline state lives on the camera's own GLib
// thread (Impl::run); the appsink callback (a streaming thread) only touches atomics and the
// frame callback.
#include "faceadapt/ingest/camera_source.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <mutex>
#include <random>
#include <stdexcept>
#include <thread>

#include <gst/app/gstappsink.h>
#include <gst/video/video.h>
#include <opencv2/imgproc.hpp>
#include <spdlog/spdlog.h>

#include "gst_util.hpp"

namespace faceadapt::ingest {

const char* to_string(CameraState state) {
    switch (state) {
        case CameraState::connecting: return "connecting";
        case CameraState::streaming: return "streaming";
        case CameraState::backing_off: return "backing_off";
        case CameraState::stopped: return "stopped";
    }
    return "unknown";
}

double backoff_delay_s(double initial_s, double max_s, std::uint64_t failures, double unit_random,
                       double jitter) {
    const double exponent = static_cast<double>(failures == 0 ? 0 : failures - 1);
    const double base = std::min(max_s, initial_s * std::pow(2.0, std::min(exponent, 62.0)));
    return base * (1.0 - jitter + 2.0 * jitter * unit_random);
}

namespace {

using Clock = std::chrono::steady_clock;

std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
        .count();
}

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

// Copies one mapped raw video frame into a BGR cv::Mat (own buffer).
cv::Mat to_bgr(GstVideoFrame& vf) {
    const int w = GST_VIDEO_FRAME_WIDTH(&vf);
    const int h = GST_VIDEO_FRAME_HEIGHT(&vf);
    auto plane = [&](int i, int rows, int cols, int type) {
        return cv::Mat(rows, cols, type, GST_VIDEO_FRAME_PLANE_DATA(&vf, i),
                       static_cast<size_t>(GST_VIDEO_FRAME_PLANE_STRIDE(&vf, i)));
    };
    cv::Mat bgr;
    switch (GST_VIDEO_FRAME_FORMAT(&vf)) {
        case GST_VIDEO_FORMAT_BGR:
            plane(0, h, w, CV_8UC3).copyTo(bgr);
            break;
        case GST_VIDEO_FORMAT_NV12: {
            const int ew = w & ~1, eh = h & ~1;  // 4:2:0 needs even sizes
            cv::cvtColorTwoPlane(plane(0, eh, ew, CV_8UC1), plane(1, eh / 2, ew / 2, CV_8UC2), bgr,
                                 cv::COLOR_YUV2BGR_NV12);
            break;
        }
        case GST_VIDEO_FORMAT_I420: {
            const int ew = w & ~1, eh = h & ~1;
            // OpenCV wants Y, U, V planes back to back without padding.
            cv::Mat packed(eh * 3 / 2, ew, CV_8UC1);
            plane(0, eh, ew, CV_8UC1).copyTo(packed.rowRange(0, eh));
            const size_t quarter = static_cast<size_t>(ew / 2) * (eh / 2);
            cv::Mat u(eh / 2, ew / 2, CV_8UC1, packed.ptr(eh));
            cv::Mat v(eh / 2, ew / 2, CV_8UC1, packed.ptr(eh) + quarter);
            plane(1, eh / 2, ew / 2, CV_8UC1).copyTo(u);
            plane(2, eh / 2, ew / 2, CV_8UC1).copyTo(v);
            cv::cvtColor(packed, bgr, cv::COLOR_YUV2BGR_I420);
            break;
        }
        default:
            throw std::runtime_error(std::string("unexpected raw format ") +
                                     gst_video_format_to_string(GST_VIDEO_FRAME_FORMAT(&vf)));
    }
    return bgr;
}

}  // namespace

struct CameraSource::Impl {
    config::CameraConfig camera;
    std::string masked_url;
    FrameCallback on_frame;
    bool is_file = false;

    // GLib loop of this camera, and its thread.
    gst::ContextPtr context{g_main_context_new()};
    gst::LoopPtr loop{g_main_loop_new(context.get(), FALSE)};
    std::thread thread;
    std::atomic<bool> stop_requested{false};
    std::mutex start_mutex;

    // Pipeline of the current attempt (camera thread only).
    gst::ElementPtr pipeline;
    gst::SourcePtr bus_watch;
    gst::SourcePtr retry_timer;
    gst::SourcePtr watchdog;
    GstElement* convert = nullptr;   // owned by pipeline
    std::atomic<bool> video_linked{false};  // set by pad-added (streaming thread) before no-more-pads
    std::atomic<std::uint64_t> generation{0};

    // Streaming-thread side.
    std::atomic<std::int64_t> last_buffer_ns{0};
    std::atomic<bool> first_frame_seen{false};
    std::int64_t next_sample_ns = 0;  // appsink thread only
    std::atomic<std::uint64_t> frames{0};
    std::atomic<std::uint64_t> decoded{0};

    // Camera-thread state, read by stats() under the mutex.
    mutable std::mutex stats_mutex;
    CameraState state = CameraState::stopped;
    std::uint64_t reconnects = 0, attempts = 0, faults = 0;
    std::string last_error;
    double backoff_s = 0.0;
    std::uint64_t failures_in_row = 0;   // resets when frames flow
    bool ever_streamed = false;
    bool failing = false;                // a fault was logged and frames have not returned
    std::string last_logged_error;
    std::mt19937 rng{std::random_device{}()};

    explicit Impl(config::CameraConfig c, FrameCallback cb)
        : camera(std::move(c)), on_frame(std::move(cb)) {
        masked_url = config::mask_url_credentials(camera.url);
        if (starts_with(camera.url, "file://")) {
            is_file = true;
        } else if (!starts_with(camera.url, "rtsp://") && !starts_with(camera.url, "rtsps://")) {
            throw std::invalid_argument("camera '" + camera.id + "': unsupported URL " + masked_url +
                                        " (expected rtsp://, rtsps:// or file://)");
        }
        if (!(camera.detect_fps > 0))
            throw std::invalid_argument("camera '" + camera.id + "': detect_fps must be > 0");
        gst::ensure_initialized();
    }

    std::string who() const { return "camera '" + camera.id + "' (" + masked_url + ")"; }

    // Keeps secrets out of error texts that GStreamer may have built from the URL.
    std::string scrub(std::string text) const {
        auto replace_all = [&](const std::string& what, const std::string& with) {
            if (what.empty()) return;
            for (size_t pos = 0; (pos = text.find(what, pos)) != std::string::npos; pos += with.size())
                text.replace(pos, what.size(), with);
        };
        if (camera.url != masked_url) replace_all(camera.url, masked_url);
        replace_all(camera.password.str(), "***");
        for (const auto& secret : config::url_secrets(camera.url)) replace_all(secret, "***");
        return text;
    }

    void set_state(CameraState s) {
        std::lock_guard lock(stats_mutex);
        state = s;
    }

    // ---- camera thread -------------------------------------------------------------------

    void run() {
        // Own the context for the whole life of the thread, so that work other threads queue
        // with gst::invoke always runs here, never on the caller's thread.
        g_main_context_acquire(context.get());
        g_main_context_push_thread_default(context.get());
        watchdog.reset(g_timeout_source_new(watchdog_period_ms()));
        g_source_set_callback(watchdog.get(), &Impl::on_watchdog, this, nullptr);
        g_source_attach(watchdog.get(), context.get());
        if (!stop_requested) {
            connect();
            g_main_loop_run(loop.get());
        }
        teardown();
        retry_timer.reset();
        watchdog.reset();
        // Drain what other threads queued (first-frame notices) before leaving the context.
        while (g_main_context_iteration(context.get(), FALSE)) {
        }
        set_state(CameraState::stopped);
        spdlog::info("{}: stopped", who());
        g_main_context_pop_thread_default(context.get());
        g_main_context_release(context.get());
    }

    guint watchdog_period_ms() const {
        const double period_s = std::clamp(camera.stall_timeout_s / 4.0, 0.05, 0.5);
        return static_cast<guint>(period_s * 1000.0);
    }

    void connect() {
        retry_timer.reset();
        {
            std::lock_guard lock(stats_mutex);
            ++attempts;
            state = CameraState::connecting;
        }
        const auto gen = ++generation;
        first_frame_seen = false;
        last_buffer_ns = now_ns();  // the stall timeout doubles as the connect timeout
        next_sample_ns = 0;
        video_linked = false;
        spdlog::debug("{}: connecting (attempt {})", who(), gen);
        try {
            build_pipeline();
        } catch (const std::exception& e) {
            fault(e.what());
            return;
        }
        if (gst_element_set_state(pipeline.get(), GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
            // Prefer the ERROR message the element posted, if any.
            gst::BusPtr bus{gst_element_get_bus(pipeline.get())};
            gst::MessagePtr msg{gst_bus_pop_filtered(bus.get(), GST_MESSAGE_ERROR)};
            fault(msg ? gst::describe(msg.get()) : "the pipeline refused to start");
        }
    }

    void build_pipeline() {
        pipeline.reset(GST_ELEMENT(gst_object_ref_sink(gst_pipeline_new(("camera-" + camera.id).c_str()))));
        GstElement* bin = pipeline.get();
        convert = gst::make_element("videoconvert");
        GstElement* sink = gst::make_element("appsink");
        gst_bin_add_many(GST_BIN(bin), convert, sink, nullptr);
        gst::CapsPtr caps{gst_caps_from_string("video/x-raw,format={ I420, NV12, BGR }")};
        g_object_set(sink, "caps", caps.get(), "drop", TRUE, "max-buffers", 1u, "sync",
                     is_file ? TRUE : FALSE,  // files play at their own rate, like a camera
                     "emit-signals", FALSE, "enable-last-sample", FALSE, nullptr);
        GstAppSinkCallbacks callbacks{};
        callbacks.new_sample = &Impl::on_new_sample;
        gst_app_sink_set_callbacks(GST_APP_SINK(sink), &callbacks, this, nullptr);
        if (!gst_element_link(convert, sink)) throw std::runtime_error("cannot link videoconvert to appsink");

        if (is_file) {
            GstElement* src = gst::make_element("uridecodebin");
            gst_bin_add(GST_BIN(bin), src);
            g_object_set(src, "uri", camera.url.c_str(), nullptr);
            g_signal_connect(src, "pad-added", G_CALLBACK(&Impl::on_decoded_pad), this);
            g_signal_connect(src, "no-more-pads", G_CALLBACK(&Impl::on_no_more_pads), this);
        } else {
            GstElement* src = gst::make_element("rtspsrc");
            GstElement* dec = gst::make_element("decodebin");
            gst_bin_add_many(GST_BIN(bin), src, dec, nullptr);
            g_object_set(src, "location", camera.url.c_str(), "latency",
                         static_cast<guint>(camera.latency_ms), nullptr);
            gst_util_set_object_arg(G_OBJECT(src), "protocols", camera.transport == "udp" ? "udp" : "tcp");
            const auto stall_us = static_cast<guint64>(camera.stall_timeout_s * 1e6);
            g_object_set(src, "tcp-timeout", stall_us, "timeout", stall_us, nullptr);
            if (g_object_class_find_property(G_OBJECT_GET_CLASS(src), "teardown-timeout"))
                g_object_set(src, "teardown-timeout", static_cast<guint64>(100 * GST_MSECOND), nullptr);
            if (!camera.username.empty())
                g_object_set(src, "user-id", camera.username.c_str(), "user-pw",
                             camera.password.str().c_str(), nullptr);
            g_signal_connect(src, "select-stream", G_CALLBACK(&Impl::on_select_stream), this);
            g_signal_connect(src, "pad-added", G_CALLBACK(&Impl::on_rtsp_pad), dec);
            g_signal_connect(dec, "pad-added", G_CALLBACK(&Impl::on_decoded_pad), this);
            g_signal_connect(dec, "no-more-pads", G_CALLBACK(&Impl::on_no_more_pads), this);
        }

        gst::BusPtr bus{gst_element_get_bus(bin)};
        bus_watch.reset(gst_bus_create_watch(bus.get()));
        g_source_set_callback(bus_watch.get(), G_SOURCE_FUNC(&Impl::on_bus_message),
                              this, nullptr);
        g_source_attach(bus_watch.get(), context.get());
    }

    void teardown() {
        bus_watch.reset();
        if (pipeline) {
            gst_element_set_state(pipeline.get(), GST_STATE_NULL);
            pipeline.reset();
        }
        convert = nullptr;
    }

    void fault(const std::string& raw_reason) {
        const std::string reason = scrub(raw_reason);
        teardown();
        double delay = 0.0;
        bool log_it = false;
        {
            std::lock_guard lock(stats_mutex);
            ++faults;
            ++failures_in_row;
            last_error = reason;
            delay = backoff_delay_s(camera.backoff_initial_s, camera.backoff_max_s, failures_in_row,
                                    std::uniform_real_distribution<double>(0.0, 1.0)(rng));
            backoff_s = delay;
            state = CameraState::backing_off;
            log_it = !failing || reason != last_logged_error;
            failing = true;
            if (log_it) last_logged_error = reason;
        }
        if (log_it)
            spdlog::warn("{}: {}; retrying in {:.1f} s, then backing off up to {:g} s", who(),
                         reason, delay, camera.backoff_max_s);
        else
            spdlog::debug("{}: retry failed: {}; next in {:.1f} s", who(), reason, delay);
        retry_timer.reset(g_timeout_source_new(static_cast<guint>(delay * 1000.0)));
        g_source_set_callback(retry_timer.get(), &Impl::on_retry, this, nullptr);
        g_source_attach(retry_timer.get(), context.get());
    }

    void mark_streaming(std::uint64_t gen) {
        if (gen != generation.load() || !pipeline) return;
        bool log_it = false;
        std::uint64_t retries = 0;
        {
            std::lock_guard lock(stats_mutex);
            if (state != CameraState::connecting) return;
            state = CameraState::streaming;
            if (ever_streamed && failing) ++reconnects;
            retries = failures_in_row;
            log_it = failing || !ever_streamed;
            ever_streamed = true;
            failing = false;
            failures_in_row = 0;
            last_logged_error.clear();
        }
        if (log_it) {
            if (retries > 0)
                spdlog::info("{}: streaming again after {} fault(s)", who(), retries);
            else
                spdlog::info("{}: streaming", who());
        }
    }

    // ---- GLib / GStreamer callbacks -------------------------------------------------------

    static gboolean on_watchdog(gpointer data) {
        auto* self = static_cast<Impl*>(data);
        if (!self->pipeline) return G_SOURCE_CONTINUE;
        const double idle_s = static_cast<double>(now_ns() - self->last_buffer_ns.load()) / 1e9;
        if (idle_s > self->camera.stall_timeout_s) {
            const bool connecting = !self->first_frame_seen.load();
            self->fault(connecting ? fmt::format("no frame within {:.1f} s of connecting", idle_s)
                                   : fmt::format("stalled: no frame for {:.1f} s", idle_s));
        }
        return G_SOURCE_CONTINUE;
    }

    static gboolean on_retry(gpointer data) {
        auto* self = static_cast<Impl*>(data);
        self->retry_timer.release();  // the source is being dispatched; GLib drops it on REMOVE
        g_source_unref(g_main_current_source());
        if (!self->stop_requested) self->connect();
        return G_SOURCE_REMOVE;
    }

    static gboolean on_bus_message(GstBus*, GstMessage* msg, gpointer data) {
        auto* self = static_cast<Impl*>(data);
        switch (GST_MESSAGE_TYPE(msg)) {
            case GST_MESSAGE_ERROR:
                self->fault(gst::describe(msg));
                return G_SOURCE_REMOVE;  // fault() destroyed this watch
            case GST_MESSAGE_EOS:
                if (self->is_file &&
                    gst_element_seek_simple(self->pipeline.get(), GST_FORMAT_TIME,
                                            static_cast<GstSeekFlags>(GST_SEEK_FLAG_FLUSH | GST_SEEK_FLAG_KEY_UNIT), 0)) {
                    spdlog::debug("{}: end of file, looping", self->who());
                    return G_SOURCE_CONTINUE;
                }
                self->fault(self->is_file ? "end of file and the seek back to its start failed"
                                          : "the camera ended the stream (EOS)");
                return G_SOURCE_REMOVE;
            case GST_MESSAGE_WARNING:
                spdlog::debug("{}: {}", self->who(), self->scrub(gst::describe(msg)));
                return G_SOURCE_CONTINUE;
            case GST_MESSAGE_APPLICATION:
                if (gst_message_has_name(msg, "faceadapt-no-video")) {
                    self->fault("no video stream in " + self->masked_url);
                    return G_SOURCE_REMOVE;
                }
                return G_SOURCE_CONTINUE;
            case GST_MESSAGE_STATE_CHANGED:
                if (GST_MESSAGE_SRC(msg) == GST_OBJECT(self->pipeline.get())) {
                    GstState old_state, new_state;
                    gst_message_parse_state_changed(msg, &old_state, &new_state, nullptr);
                    spdlog::trace("{}: pipeline {} -> {}", self->who(), gst_element_state_get_name(old_state),
                                  gst_element_state_get_name(new_state));
                }
                return G_SOURCE_CONTINUE;
            default:
                return G_SOURCE_CONTINUE;
        }
    }

    // rtspsrc: only the video stream is set up.
    static gboolean on_select_stream(GstElement*, guint, GstCaps* caps, gpointer) {
        const GstStructure* s = gst_caps_get_structure(caps, 0);
        const gchar* media = gst_structure_get_string(s, "media");
        return media && g_str_equal(media, "video");
    }

    static void on_rtsp_pad(GstElement*, GstPad* pad, gpointer decodebin) {
        gst::PadPtr sink{gst_element_get_static_pad(GST_ELEMENT(decodebin), "sink")};
        if (!gst_pad_is_linked(sink.get())) gst_pad_link(pad, sink.get());
    }

    static void on_decoded_pad(GstElement*, GstPad* pad, gpointer data) {
        auto* self = static_cast<Impl*>(data);
        gst::CapsPtr caps{gst_pad_get_current_caps(pad)};
        if (!caps) caps.reset(gst_pad_query_caps(pad, nullptr));
        const GstStructure* s = gst_caps_get_structure(caps.get(), 0);
        if (!g_str_has_prefix(gst_structure_get_name(s), "video/x-raw")) return;
        gst::PadPtr sink{gst_element_get_static_pad(self->convert, "sink")};
        if (!gst_pad_is_linked(sink.get()) && gst_pad_link(pad, sink.get()) == GST_PAD_LINK_OK)
            self->video_linked = true;
    }

    static void on_no_more_pads(GstElement* element, gpointer data) {
        auto* self = static_cast<Impl*>(data);
        if (self->video_linked) return;
        gst_element_post_message(element, gst_message_new_application(
                                              GST_OBJECT(element), gst_structure_new_empty("faceadapt-no-video")));
    }

    static GstFlowReturn on_new_sample(GstAppSink* sink, gpointer data) {
        auto* self = static_cast<Impl*>(data);
        gst::SamplePtr sample{gst_app_sink_pull_sample(sink)};
        if (!sample) return GST_FLOW_OK;
        const std::int64_t now = now_ns();
        self->last_buffer_ns = now;
        self->decoded.fetch_add(1, std::memory_order_relaxed);
        if (!self->first_frame_seen.exchange(true)) {
            const auto gen = self->generation.load();
            gst::invoke(self->context.get(), [self, gen] { self->mark_streaming(gen); });
        }
        // Sample at detect_fps: take a frame when it is due; keep the long-run rate exact.
        const auto period = static_cast<std::int64_t>(1e9 / self->camera.detect_fps);
        if (self->next_sample_ns != 0 && now < self->next_sample_ns) return GST_FLOW_OK;
        self->next_sample_ns = (self->next_sample_ns == 0 || now - self->next_sample_ns > period)
                                   ? now + period
                                   : self->next_sample_ns + period;

        GstVideoInfo info;
        if (!gst_video_info_from_caps(&info, gst_sample_get_caps(sample.get()))) return GST_FLOW_OK;
        GstVideoFrame vf;
        if (!gst_video_frame_map(&vf, &info, gst_sample_get_buffer(sample.get()), GST_MAP_READ))
            return GST_FLOW_OK;
        Frame frame;
        try {
            frame.bgr = to_bgr(vf);
        } catch (const std::exception& e) {
            gst_video_frame_unmap(&vf);
            spdlog::error("{}: {}", self->who(), e.what());
            return GST_FLOW_OK;
        }
        gst_video_frame_unmap(&vf);
        frame.camera = self->camera.id;
        frame.timestamp = std::chrono::system_clock::now();
        frame.sequence = self->frames.fetch_add(1, std::memory_order_relaxed);
        frame.stream = self->generation.load();
        try {
            if (self->on_frame) self->on_frame(std::move(frame));
        } catch (const std::exception& e) {  // never let an exception unwind into GStreamer
            spdlog::error("{}: frame callback failed: {}", self->who(), e.what());
        }
        return GST_FLOW_OK;
    }
};

CameraSource::CameraSource(config::CameraConfig camera, FrameCallback on_frame)
    : impl_(std::make_unique<Impl>(std::move(camera), std::move(on_frame))) {}

CameraSource::~CameraSource() { stop(); }

void CameraSource::start() {
    std::lock_guard lock(impl_->start_mutex);
    if (impl_->thread.joinable()) return;
    impl_->stop_requested = false;
    impl_->thread = std::thread([impl = impl_.get()] { impl->run(); });
}

void CameraSource::request_stop() {
    Impl* impl = impl_.get();
    if (impl->stop_requested.exchange(true)) return;
    gst::invoke(impl->context.get(), [impl] { g_main_loop_quit(impl->loop.get()); });
}

void CameraSource::stop() {
    request_stop();
    std::lock_guard lock(impl_->start_mutex);
    if (impl_->thread.joinable()) impl_->thread.join();
}

const std::string& CameraSource::id() const { return impl_->camera.id; }

CameraStats CameraSource::stats() const {
    CameraStats s;
    {
        std::lock_guard lock(impl_->stats_mutex);
        s.state = impl_->state;
        s.reconnects = impl_->reconnects;
        s.attempts = impl_->attempts;
        s.faults = impl_->faults;
        s.last_error = impl_->last_error;
        s.backoff_s = impl_->backoff_s;
    }
    s.frames = impl_->frames.load();
    s.decoded = impl_->decoded.load();
    return s;
}

}  // namespace faceadapt::ingest
