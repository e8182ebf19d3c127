// The door-controller side: installed models on disk and the MQTT agent that keeps them current.
//
// WHAT THIS REPRESENTS
//   A door's model folder `dir` (docs/package-format.md, "Door controller folder"):
//     installed.json         {"version","previous_version","refuse_up_to","installed_at"}: the
//                            commit point, replaced atomically (temp + fsync + rename)
//     versions/<v>/          model.bin, gallery.bin, manifest.json (the signed envelope);
//                            the installed version and the previous one are kept
//     staging/<v>/           a package being received: manifest.json + chunk-<i> files
//   DoorAgent subscribes to its site's manifest, then to the chunks of a newer version;
//   reassembles them in any order (duplicates ignored, every chunk checked against the signed
//   manifest), verifies the signature with the pinned key and every SHA-256, installs
//   atomically, and reports DoorState retained on faceadapt/<site>/door/<door>/state.
//   Versions not newer than the installed one are refused (no downgrade) unless
//   allow_rollback. A half-received package survives a restart in staging/ and is resumed
//   (retained chunks arrive again); one that no longer verifies is discarded, never installed.
//   What fails verification, is for another site, or names a version not newer than the one
//   installed or being received never changes the transfer, the status or the ack: it is
//   counted (DoorState::ignored). Local faults (a full disk) are retried, never memorised as
//   a rejection. A damaged install folder is reported (DoorState::damage) and repaired by the
//   next package. Logs and state messages on error paths are throttled, with counts.
// THREAD SAFETY
//   DoorAgent's members may be called from any thread. The free functions must not run on
//   the same `dir` as a running agent, except read_installed.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "faceadapt/config/config.hpp"
#include "faceadapt/publish/keys.hpp"
#include "faceadapt/publish/package.hpp"
#include "faceadapt/publish/protocol.hpp"

namespace faceadapt::publish {

struct InstalledModel {
    std::int64_t version = 0;
    std::int64_t previous_version = 0;   // 0: none kept
    std::int64_t refuse_up_to = 0;       // set by an operator rollback: versions <= this are refused
    std::string installed_at;
    std::filesystem::path model_file;    // versions/<v>/model.bin (what learner::Embedder loads)
    std::filesystem::path gallery_file;
    std::filesystem::path manifest_file;
    Manifest manifest;                   // parsed from manifest_file (verified when installed)
};

// nullopt when nothing is installed in `dir`.
// throws std::runtime_error naming the file when installed.json or the version folder is damaged.
std::optional<InstalledModel> read_installed(const std::filesystem::path& dir);

// What `dir` holds, never throwing for a damaged folder (a door must start and repair itself
// over the air): the installed model when it is sound, otherwise what is damaged and the
// lowest version that may replace it (the version installed.json or versions/ names, so that
// a damaged folder does not open the door to downgrades).
struct InstallFolderState {
    std::optional<InstalledModel> installed;  // nullopt: nothing installed, or damaged
    std::string damage;                       // "" when sound; else what is wrong (printable)
    std::int64_t version_floor = 0;           // with damage: versions >= this may be installed
    std::int64_t previous_version = 0;        // kept version to record as previous (0: none)
    std::int64_t refuse_up_to = 0;
};
// `deep`: also check model.bin and gallery.bin against the manifest's SHA-256 and, with `key`,
// the manifest's signature (reads the model once). Thread safety: as read_installed.
InstallFolderState inspect_install_folder(const std::filesystem::path& dir, bool deep = false,
                                          const PublicKey* key = nullptr);

// The gallery of the installed model, after checking model.bin and gallery.bin against the
// manifest's SHA-256. throws PackageError naming the file that no longer matches.
Gallery load_installed_gallery(const InstalledModel& installed);

// Verifies `package` with `key` for `site` and installs it into `dir` (the offline path: a
// package file copied by hand). ensures: the new version is installed and the one before kept
// as previous. throws PackageError when it does not verify, is not for `site` or is not newer
// (unless allow_rollback); std::system_error (errno in code()) when the disk fails, leaving the
// installed version and no staging debris behind.
InstalledModel install_package(const std::filesystem::path& dir, const Package& package, const PublicKey& key,
                               std::string_view site, bool allow_rollback = false);

// Operator rollback: the previous version becomes the installed one, and versions up to the
// one rolled back from are refused from then on (an agent will not reinstall it).
// throws std::runtime_error when there is no previous version to go back to.
InstalledModel rollback_installed(const std::filesystem::path& dir);

struct MatchResult {
    bool matched = false;          // distance <= gallery.threshold
    std::string name;              // nearest entry ("" when the gallery is empty)
    double distance = 0;           // Euclidean, to the nearest entry
};
MatchResult match_gallery(const Gallery& gallery, const Embedding& probe);

struct DoorAgentOptions {
    std::string site;
    std::string door;                      // topic segment, [A-Za-z0-9_-]+
    config::MqttConfig mqtt;               // client_id "" -> "faceadapt-door-<site>-<door>"
    PublicKey public_key;                  // pinned: only packages signed by it are installed
    std::filesystem::path dir;
    bool allow_rollback = false;           // accept versions older than the installed one
    // architecture.model_format values this door can run (e.g. {"onnx"}); a package with another
    // format is rejected before any chunk is fetched. Empty: any (the agent never runs the model).
    std::vector<std::string> model_formats;
    std::chrono::milliseconds stall_resubscribe{5'000};  // no new chunk for this long: ask again
    std::uint64_t max_payload_bytes = 1ull << 30;
    // Received chunks waiting for the worker (payload + topic + 256 bytes each); beyond it
    // chunks are dropped and fetched again from the broker's retained copies (Paho's callbacks
    // must never block). Manifests have their own bound: at most kMaxPendingManifests of at
    // most max_manifest_bytes each; a newer one displaces the oldest, and the retained manifest
    // is asked for again. docs/mqtt.md, "Memory bound".
    std::size_t queue_bytes = 64u << 20;
    std::size_t max_manifest_bytes = 4u << 20;
    // A local fault while installing (disk full, I/O error): retried after this, doubling up
    // to 60 s; the staged chunks are kept.
    std::chrono::milliseconds install_retry{1'000};
};

inline constexpr std::size_t kMaxPendingManifests = 2;

class DoorAgent {
public:
    // Reads `dir` (created if needed) and any half-received package in it; does not connect.
    // throws std::invalid_argument for a bad site/door, std::runtime_error for an unusable dir.
    explicit DoorAgent(DoorAgentOptions options);
    ~DoorAgent();  // stop()
    DoorAgent(const DoorAgent&) = delete;
    DoorAgent& operator=(const DoorAgent&) = delete;

    // Starts the worker: connects (retrying with backoff until stop()), then runs.
    void start();
    // Disconnects and joins the worker; a package being received stays in staging/.
    void stop();

    DoorState state() const;
    // Waits until `predicate(state())` holds; false on timeout.
    bool wait_for(const std::function<bool(const DoorState&)>& predicate, std::chrono::milliseconds timeout) const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace faceadapt::publish
