// ModelRegistry: the models the daemon has made, under <state_dir>/models.
//
// WHAT THIS REPRESENTS
//   models/
//     versions/<N>/model        the model file (as written by `faceadapt train --out`)
//     versions/<N>/meta.json    version, origin ("train", "rollback of 3"), created, figures,
//                               published (true once the package went out completely)
//     current, previous         the version numbers in use (text; absent = 0, the pretrained base)
//     next_version              monotonic counter: a version number is never reused
//     candidates/<cycle>/       a training cycle's output and checkpoints
//     history.jsonl             one JSON object per gate decision, promotion, rollback, publish
//   Version 0 is the pretrained source model; it is never stored here.
//   Every write is temp file + fsync + rename, so a kill -9 leaves either the old or the new
//   state: a version directory appears whole or not at all; history lines are appended whole.
// THREAD SAFETY
//   Not thread-safe; one owner (the daemon's control thread, or the CLI).
//   Two processes (daemon and `faceadapt models rollback`) may use the same folder: version
//   numbers are claimed under an flock on models/.lock.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace faceadapt::daemon {

struct ModelVersion {
    int version = 0;
    std::filesystem::path model_file;   // empty for version 0
    nlohmann::json meta;                // meta.json as stored
    bool published() const { return meta.value("published", false); }
    std::string origin() const { return meta.value("origin", std::string{}); }
};

class ModelRegistry {
public:
    // Opens (creating when absent) `models_dir`. throws std::runtime_error naming the folder.
    explicit ModelRegistry(std::filesystem::path models_dir);

    const std::filesystem::path& dir() const { return dir_; }
    int current_version() const;
    int previous_version() const;
    // Every stored version, ascending.
    std::vector<ModelVersion> list() const;
    // throws std::out_of_range naming the version when it is not stored (0 is never stored).
    ModelVersion get(int version) const;
    bool contains(int version) const;

    // A fresh folder candidates/<name>/ (created); name is e.g. "cycle-20261127T010203".
    std::filesystem::path candidate_dir(const std::string& name) const;

    // Copies `model_file` in as the next version with `meta` (+ version, origin, created).
    // ensures: the returned version is larger than every version ever added here.
    // throws std::runtime_error naming the file on I/O failure.
    ModelVersion add(const std::filesystem::path& model_file, const std::string& origin,
                     nlohmann::json meta = nlohmann::json::object());
    // Makes `version` current; the old current becomes previous. requires: version == 0 or stored.
    void set_current(int version);
    // Rewrites meta.json of `version` with `patch` merged in (e.g. {"published": true}).
    void update_meta(int version, const nlohmann::json& patch);

    // Appends one line to history.jsonl (adds "time" in UTC ISO-8601 when absent) and fsyncs.
    void append_history(nlohmann::json record);
    // Every complete line of history.jsonl (a torn last line, from a crash, is skipped).
    std::vector<nlohmann::json> history() const;

private:
    std::filesystem::path dir_;
};

}  // namespace faceadapt::daemon
