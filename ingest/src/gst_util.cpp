#include "gst_util.hpp"

#include <mutex>
#include <stdexcept>

namespace faceadapt::ingest::gst {

void ensure_initialized() {
    static std::once_flag once;
    static std::string failure;
    std::call_once(once, [] {
        GError* error = nullptr;
        if (!gst_init_check(nullptr, nullptr, &error)) {
            failure = error ? error->message : "unknown reason";
            if (error) g_error_free(error);
        }
    });
    if (!failure.empty()) throw std::runtime_error("GStreamer initialisation failed: " + failure);
}

GstElement* make_element(const char* factory, const char* name) {
    GstElement* element = gst_element_factory_make(factory, name);
    if (!element)
        throw std::runtime_error(std::string("GStreamer element '") + factory +
                                 "' is missing (install its plugin package)");
    return element;
}

std::string describe(GstMessage* message) {
    GError* error = nullptr;
    gchar* debug = nullptr;
    if (GST_MESSAGE_TYPE(message) == GST_MESSAGE_ERROR)
        gst_message_parse_error(message, &error, &debug);
    else if (GST_MESSAGE_TYPE(message) == GST_MESSAGE_WARNING)
        gst_message_parse_warning(message, &error, &debug);
    std::string text = error ? error->message : "unknown GStreamer error";
    if (debug) {
        // The debug string is "file.c(line): function (): /Pipeline/element:\ndetail"; keep only
        // the detail (instance names and paths change from one attempt to the next).
        std::string detail = debug;
        const auto nl = detail.rfind('\n');
        detail = nl == std::string::npos ? std::string() : detail.substr(nl + 1);
        if (!detail.empty() && detail != text) text += " (" + detail + ")";
    }
    // Name the element by its kind (rtspsrc, filesrc...), stable across reconnects.
    if (GST_IS_ELEMENT(GST_MESSAGE_SRC(message))) {
        if (GstElementFactory* f = gst_element_get_factory(GST_ELEMENT(GST_MESSAGE_SRC(message))))
            text = std::string(gst_plugin_feature_get_name(GST_PLUGIN_FEATURE(f))) + ": " + text;
    }
    if (error) g_error_free(error);
    g_free(debug);
    return text;
}

}  // namespace faceadapt::ingest::gst
