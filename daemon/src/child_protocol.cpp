#include "faceadapt/daemon/child_protocol.hpp"

#include <cerrno>
#include <cmath>

#include <unistd.h>

#include <fmt/format.h>

#include "faceadapt/common/text.hpp"
#include "faceadapt/publish/operating_point_json.hpp"

namespace faceadapt::daemon {
namespace {

using json = nlohmann::json;

const json& member(const json& j, const char* key, const char* where) {
    const auto it = j.find(key);
    if (it == j.end()) throw ProtocolError(fmt::format("{}: member '{}' missing", where, key));
    return *it;
}

double number(const json& j, const char* key, const char* where) {
    const json& v = member(j, key, where);
    if (!v.is_number()) throw ProtocolError(fmt::format("{}: member '{}' is not a number", where, key));
    const double d = v.get<double>();
    if (!std::isfinite(d)) throw ProtocolError(fmt::format("{}: member '{}' is not finite", where, key));
    return d;
}

int integer(const json& j, const char* key, const char* where) {
    const json& v = member(j, key, where);
    if (!v.is_number_integer()) throw ProtocolError(fmt::format("{}: member '{}' is not an integer", where, key));
    return v.get<int>();
}

bool boolean(const json& j, const char* key, const char* where) {
    const json& v = member(j, key, where);
    if (!v.is_boolean()) throw ProtocolError(fmt::format("{}: member '{}' is not true/false", where, key));
    return v.get<bool>();
}

std::string string(const json& j, const char* key, const char* where) {
    const json& v = member(j, key, where);
    if (!v.is_string()) throw ProtocolError(fmt::format("{}: member '{}' is not a string", where, key));
    return v.get<std::string>();
}

template <typename T>
void put(json& j, const char* key, const std::optional<T>& v) {
    if (v) j[key] = *v;
}

template <typename T>
std::optional<T> optional_number(const json& j, const char* key) {
    if (!j.contains(key)) return std::nullopt;
    if constexpr (std::is_same_v<T, int>) return integer(j, key, "progress");
    else return number(j, key, "progress");
}

}  // namespace

json to_json(const EmbeddedGallery& g) {
    json out = json::array();
    for (std::size_t i = 0; i < g.names.size() && i < g.embeddings.size(); ++i)
        out.push_back({{"name", g.names[i]}, {"embedding", g.embeddings[i]}});
    return out;
}

void put_gallery_revision(json& object, const EmbeddedGallery& g) {
    if (g.revision >= 0) object["gallery_revision"] = g.revision;
}

std::int64_t get_gallery_revision(const json& object) {
    if (!object.contains("gallery_revision")) return -1;
    const json& r = object["gallery_revision"];
    if (!r.is_number_integer() || r.get<std::int64_t>() < 0)
        throw ProtocolError("gallery_revision: not an integer >= 0");
    return r.get<std::int64_t>();
}

EmbeddedGallery gallery_from_json(const json& j) {
    if (!j.is_array()) throw ProtocolError("gallery: not an array");
    EmbeddedGallery g;
    for (const json& e : j) {
        if (!e.is_object()) throw ProtocolError("gallery: an entry is not an object");
        g.names.push_back(string(e, "name", "gallery entry"));
        const json& v = member(e, "embedding", "gallery entry");
        if (!v.is_array() || v.size() != 128) throw ProtocolError("gallery entry: embedding is not 128 numbers");
        std::array<float, 128> emb{};
        for (std::size_t k = 0; k < 128; ++k) {
            if (!v[k].is_number() || !std::isfinite(v[k].get<double>()))
                throw ProtocolError("gallery entry: embedding holds a non-finite or non-number value");
            emb[k] = v[k].get<float>();
        }
        g.embeddings.push_back(emb);
    }
    return g;
}

ModelFigures figures_from_json(const json& j) {
    if (!j.is_object()) throw ProtocolError("figures: not an object");
    const json& g = member(j, "gallery", "figures");
    const json& s = member(j, "site", "figures");
    if (!g.is_object() || !s.is_object()) throw ProtocolError("figures: gallery/site are not objects");
    ModelFigures f;
    f.gallery.evaluated = boolean(g, "evaluated", "gallery figures");
    f.gallery.people = integer(g, "people", "gallery figures");
    f.gallery.images = integer(g, "images", "gallery figures");
    f.gallery.far = number(g, "far", "gallery figures");
    // A non-finite figure is the gate's to refuse (decide()), so it is kept here as NaN.
    auto figure = [](const json& o, const char* key, const char* where) {
        const json& v = member(o, key, where);
        if (v.is_null()) return std::nan("");
        if (!v.is_number()) throw ProtocolError(fmt::format("{}: member '{}' is not a number", where, key));
        return v.get<double>();
    };
    f.gallery.tar = figure(g, "tar", "gallery figures");
    f.gallery.rank1 = figure(g, "rank1", "gallery figures");
    f.site.evaluated = boolean(s, "evaluated", "site figures");
    f.site.crops = integer(s, "crops", "site figures");
    f.site.groups = integer(s, "groups", "site figures");
    f.site.consistency = figure(s, "consistency", "site figures");
    f.site.compactness = figure(s, "compactness", "site figures");
    if (const auto it = j.find("door"); it != j.end()) {  // since issue 12
        DoorFigures door;
        try {
            door.point = publish::operating_point_from_json(*it);
        } catch (const std::invalid_argument& e) {
            throw ProtocolError(fmt::format("door figures: {}", e.what()));
        }
        if (const auto src = it->find("sources"); src != it->end()) {
            if (!src->is_object()) throw ProtocolError("door figures: sources is not an object");
            auto count = [&](const char* key) -> std::size_t {
                const json& v = member(*src, key, "door figures sources");
                if (!v.is_number_unsigned()) throw ProtocolError(fmt::format("door figures: sources.{} is not a count", key));
                return v.get<std::size_t>();
            };
            door.sources = {count("enrolled_impostor"), count("same_frame_impostor"), count("stranger_impostor"),
                            count("enrolled_genuine"), count("track_genuine")};
        }
        f.door = door;
    }
    return f;
}

std::string to_protocol_line(const ChildMessage& m) {
    json j;
    if (const auto* p = std::get_if<ChildProgress>(&m)) {
        j = {{"type", "progress"}, {"phase", p->phase}};
        put(j, "cycle", p->cycle);
        put(j, "cycles", p->cycles);
        put(j, "iter", p->iter);
        put(j, "iters", p->iters);
        put(j, "loss", p->loss);
        put(j, "images_per_s", p->images_per_s);
        put(j, "eta_s", p->eta_s);
    } else if (const auto* r = std::get_if<ChildTrainResult>(&m)) {
        j = {{"type", "result"}, {"model", r->model.string()}, {"provenance", r->provenance}};
    } else if (const auto* e = std::get_if<ChildEvaluation>(&m)) {
        j = {{"type", "evaluation"},
             {"role", e->role},
             {"model", e->model.string()},
             {"figures", to_json(e->figures)},
             {"gallery", to_json(e->gallery)}};
        put_gallery_revision(j, e->gallery);
    } else {
        j = {{"type", "error"}, {"message", std::get<ChildError>(m).message}};
    }
    // Non-finite figures become null (JSON has no NaN); figures_from_json reads them back as NaN.
    return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

void ProtocolWriter::write(const ChildMessage& m) {
    const std::string line = to_protocol_line(m);
    std::lock_guard lock(mutex_);
    if (failed_) return;
    std::string_view rest = line;
    while (!rest.empty()) {
        const ssize_t n = ::write(fd_, rest.data(), rest.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            failed_ = true;
            return;
        }
        rest.remove_prefix(static_cast<std::size_t>(n));
    }
}

ChildMessage parse_protocol_line(std::string_view line) {
    if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
    if (line.size() > kMaxChildLineBytes)
        throw ProtocolError(fmt::format("line of {} bytes (limit {})", line.size(), kMaxChildLineBytes));
    json j;
    try {
        j = json::parse(line);
    } catch (const json::parse_error& e) {  // its what() quotes the text: not repeated
        throw ProtocolError(fmt::format("not JSON (parse error at byte {})", e.byte));
    } catch (const json::exception&) {  // out_of_range: a number like 1e999
        throw ProtocolError("not JSON (a number out of range)");
    }
    if (!j.is_object()) throw ProtocolError("not a JSON object");
    const std::string type = string(j, "type", "message");
    try {
        if (type == "progress") {
            ChildProgress p;
            p.phase = string(j, "phase", "progress");
            p.cycle = optional_number<int>(j, "cycle");
            p.cycles = optional_number<int>(j, "cycles");
            p.iter = optional_number<int>(j, "iter");
            p.iters = optional_number<int>(j, "iters");
            p.loss = optional_number<double>(j, "loss");
            p.images_per_s = optional_number<double>(j, "images_per_s");
            p.eta_s = optional_number<double>(j, "eta_s");
            if (p.cycle.has_value() != p.cycles.has_value() || p.iter.has_value() != p.iters.has_value())
                throw ProtocolError("progress: cycle/cycles and iter/iters come in pairs");
            return p;
        }
        if (type == "result") {
            ChildTrainResult r;
            r.model = string(j, "model", "result");
            r.provenance = member(j, "provenance", "result");
            if (!r.provenance.is_object()) throw ProtocolError("result: provenance is not an object");
            return r;
        }
        if (type == "evaluation") {
            ChildEvaluation e;
            e.role = string(j, "role", "evaluation");
            if (e.role != "current" && e.role != "candidate" && e.role != "source" && e.role != "best")
                throw ProtocolError("evaluation: role is not current, candidate, source or best");
            e.model = string(j, "model", "evaluation");
            e.figures = figures_from_json(member(j, "figures", "evaluation"));
            e.gallery = gallery_from_json(member(j, "gallery", "evaluation"));
            e.gallery.revision = get_gallery_revision(j);
            return e;
        }
        if (type == "error") return ChildError{common::printable(string(j, "message", "error"), 500)};  // goes to the journal
    } catch (const json::exception& e) {  // a value out of range for its C++ type
        throw ProtocolError(fmt::format("{}: {}", type, e.what()));
    }
    throw ProtocolError("unknown message type");
}

}  // namespace faceadapt::daemon
