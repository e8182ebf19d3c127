// Private helpers shared by the GStreamer parts of ingest (camera_source.cpp, rtsp_*.cpp):
// one-time initialisation and RAII owners for GLib/GStreamer handles.
#pragma once

#include <memory>
#include <string>

#include <glib.h>
#include <gst/gst.h>

namespace faceadapt::ingest::gst {

// Initialises GStreamer once per process. throws std::runtime_error with GStreamer's reason.
void ensure_initialized();

struct ObjectUnref {
    void operator()(gpointer p) const { if (p) gst_object_unref(p); }
};
struct GObjectUnref {
    void operator()(gpointer p) const { if (p) g_object_unref(p); }
};
struct MessageUnref {
    void operator()(GstMessage* m) const { if (m) gst_message_unref(m); }
};
struct SampleUnref {
    void operator()(GstSample* s) const { if (s) gst_sample_unref(s); }
};
struct CapsUnref {
    void operator()(GstCaps* c) const { if (c) gst_caps_unref(c); }
};
struct ContextUnref {
    void operator()(GMainContext* c) const { if (c) g_main_context_unref(c); }
};
struct LoopUnref {
    void operator()(GMainLoop* l) const { if (l) g_main_loop_unref(l); }
};
struct SourceDestroy {  // detaches and releases a GSource
    void operator()(GSource* s) const {
        if (s) {
            g_source_destroy(s);
            g_source_unref(s);
        }
    }
};

using ElementPtr = std::unique_ptr<GstElement, ObjectUnref>;
using BusPtr = std::unique_ptr<GstBus, ObjectUnref>;
using PadPtr = std::unique_ptr<GstPad, ObjectUnref>;
using MessagePtr = std::unique_ptr<GstMessage, MessageUnref>;
using SamplePtr = std::unique_ptr<GstSample, SampleUnref>;
using CapsPtr = std::unique_ptr<GstCaps, CapsUnref>;
using ContextPtr = std::unique_ptr<GMainContext, ContextUnref>;
using LoopPtr = std::unique_ptr<GMainLoop, LoopUnref>;
using SourcePtr = std::unique_ptr<GSource, SourceDestroy>;

// gst_element_factory_make that throws std::runtime_error naming the missing plugin element.
GstElement* make_element(const char* factory, const char* name = nullptr);

// "message (debug detail)" of an ERROR/WARNING message, on one line.
std::string describe(GstMessage* message);

// Queues `fn` to run once on `context`'s thread (an idle source; never runs on the caller's
// thread, even when nobody iterates the context yet).
template <typename Fn>
void invoke(GMainContext* context, Fn fn) {
    GSource* source = g_idle_source_new();
    g_source_set_priority(source, G_PRIORITY_DEFAULT);
    g_source_set_callback(
        source,
        [](gpointer data) -> gboolean {
            (*static_cast<Fn*>(data))();
            return G_SOURCE_REMOVE;
        },
        new Fn(std::move(fn)),  // owned by the source; freed by the destroy notify
        [](gpointer data) { delete static_cast<Fn*>(data); });
    g_source_attach(source, context);
    g_source_unref(source);
}

}  // namespace faceadapt::ingest::gst
