// The training child's protocol: what `faceadapt train` and `faceadapt evaluate` tell faceadaptd.
//
// WHAT THIS REPRESENTS
//   The one schema of the typed messages a child writes, as JSON lines (one JSON object per
//   line, UTF-8, '\n'-terminated) on the file descriptor named by its `--protocol-fd N` option
//   (faceadaptd passes kChildProtocolFd). Its stdout and stderr stay free text for the journal
//   and the crash report: nothing there is ever parsed, and a library printing to them cannot
//   corrupt the protocol. Version kChildProtocolVersion; every object has "type":
//
//   {"type":"progress", "phase":"train", "cycle":2, "cycles":6, "iter":30, "iters":50,
//    "loss":1.25, "images_per_s":41.0, "eta_s":610}
//       phase: "train" | "evaluate"; every other member optional (cycle/cycles and
//       iter/iters come in pairs, 1-based; iter 0 = the cycle's clustering).
//   {"type":"result", "model":"/abs/candidate.model", "provenance":{...}}
//       train only, once, after the model file is written (durably). provenance is what the
//       model file's metadata holds (method, cycles, iters, seed, convergence, cycle_reports...).
//   {"type":"evaluation", "role":"current"|"candidate"|"source"|"best", "model":"/abs/file" or ""
//    (the pretrained source), "figures":{"gallery":{...},"site":{...},"door":{...}} (gate.hpp
//    to_json(ModelFigures); "door", since issue 12, is the model's calibrated operating point in
//    publish/operating_point_json.hpp's form plus "measured_far" and "sources"),
//    "gallery":[{"name":"alice","embedding":[128 numbers]}, ...], "gallery_revision":12}
//       evaluate only, once per model: the gate's figures and the enrolled gallery embedded by
//       that model (what a release packs; an empty list when nothing is enrolled), and the
//       gallery's revision (optional; EmbeddedGallery::revision).
//   {"type":"error", "message":"..."}
//       a failure the child could name before exiting non-zero (bad input, unreadable file).
//
//   Unknown members are ignored (a newer child may add some); an unknown "type", a missing or
//   mistyped member, a non-finite number, a line over kMaxChildLineBytes or text that is not a
//   JSON object is a ProtocolError (the reader counts it and keeps going).
// THREAD SAFETY
//   Pure functions.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "faceadapt/daemon/gate.hpp"

namespace faceadapt::daemon {

inline constexpr int kChildProtocolVersion = 1;
// The descriptor faceadaptd gives the child for the protocol (0, 1 and 2 are stdio).
inline constexpr int kChildProtocolFd = 3;
// A gallery of a few thousand entries fits; anything longer is refused, not buffered without end.
inline constexpr std::size_t kMaxChildLineBytes = 16u << 20;

// The enrolled gallery embedded by one model: names[i] is embeddings[i]'s person.
struct EmbeddedGallery {
    std::vector<std::string> names;
    std::vector<std::array<float, 128>> embeddings;
    // The quality::Gallery revision read before its entries were (so at most the one they
    // show); -1 when unknown (a child or a saved cycle from before revisions). A release keeps
    // it in the version's meta.json ("gallery_revision"): faceadaptd ships a gallery update
    // when the gallery's revision moved past it (gallery_update.hpp).
    std::int64_t revision = -1;
    // The embedding model's calibrated operating point for this gallery (what a release ships;
    // figures.door of its evaluation). Not part of to_json(EmbeddedGallery), which is the list.
    std::optional<calib::OperatingPoint> operating_point;
};

struct ChildProgress {
    std::string phase = "train";
    std::optional<int> cycle, cycles, iter, iters;
    std::optional<double> loss, images_per_s, eta_s;
};

struct ChildTrainResult {
    std::filesystem::path model;
    nlohmann::json provenance = nlohmann::json::object();
};

struct ChildEvaluation {
    std::string role;                  // "current", "candidate", "source" or "best"
    std::filesystem::path model;       // empty: the pretrained source model
    ModelFigures figures;
    EmbeddedGallery gallery;
};

struct ChildError {
    std::string message;
};

using ChildMessage = std::variant<ChildProgress, ChildTrainResult, ChildEvaluation, ChildError>;

struct ProtocolError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// One protocol line for `m`, '\n'-terminated.
std::string to_protocol_line(const ChildMessage& m);

// Parses one line (with or without its '\n'). throws ProtocolError saying what is wrong (the
// line itself is never quoted back: it came from outside).
ChildMessage parse_protocol_line(std::string_view line);

// The child's side: writes messages to the protocol descriptor, one whole line per write(2)
// (retried on EINTR and short writes). Owns nothing: the descriptor stays open. A failed
// write (the daemon is gone) is remembered, not thrown: the child carries on and exits.
// Thread safety: write() from several threads is serialised.
class ProtocolWriter {
public:
    explicit ProtocolWriter(int fd) : fd_(fd) {}
    void write(const ChildMessage& m);
    bool failed() const { return failed_; }
private:
    int fd_;
    bool failed_ = false;
    std::mutex mutex_;
};

// The JSON forms used inside the protocol and in the cycle's saved state. The revision is not
// part of the gallery's array: put_gallery_revision / get_gallery_revision keep it as the
// member "gallery_revision" of the object holding the array (absent when -1).
nlohmann::json to_json(const EmbeddedGallery& g);
void put_gallery_revision(nlohmann::json& object, const EmbeddedGallery& g);
// throws ProtocolError when the member is there but not an integer >= 0.
std::int64_t get_gallery_revision(const nlohmann::json& object);
// throws ProtocolError for a malformed gallery (names/embeddings count, not 128 finite numbers).
EmbeddedGallery gallery_from_json(const nlohmann::json& j);
// throws ProtocolError for missing or mistyped figures.
ModelFigures figures_from_json(const nlohmann::json& j);

}  // namespace faceadapt::daemon
