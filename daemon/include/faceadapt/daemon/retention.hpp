// Retention of the model state under <state_dir>/models (issue 18, item 5).
//
// WHAT THIS REPRESENTS
//   What a training cycle leaves behind once it ended, and what publications leave behind:
//     candidates/<cycle>/   every folder but the running cycle's (cycle.json names it) is
//                           removed: a promoted candidate was copied into versions/<N>/ by the
//                           gate, a refused or failed one is never used again (its reasons stay
//                           in history.jsonl).
//     packages/<N>.fapkg    only the newest `keep_packages` (by version) and the current
//                           version's are kept: a release rebuilds its package from
//                           versions/<N>/model, so a package is a copy for the operator only.
//     versions/<N>/         only the newest `keep_versions` and the current and previous
//                           versions are kept (not while a cycle is in progress: it may have
//                           been trained from an older one); the history keeps their records.
//     *.tmp                 debris of an interrupted atomic write (never a live file: writers
//                           rename theirs before returning).
//   Kept always: current, previous, next_version (so a number is never reused),
//   history.jsonl, scheduler.json, cycle.json. `faceadapt models rollback N` works for every N
//   that `faceadapt models list` shows, and for 0 (the pretrained source, never stored).
// THREAD SAFETY
//   Call from the thread that runs the cycles (the daemon's learner thread), never while a
//   cycle runs: it reads cycle.json to spare the cycle in progress.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

namespace faceadapt::daemon {

class ModelRegistry;

struct RetentionPolicy {
    int keep_packages = 5;   // >= 1
    int keep_versions = 10;  // >= 2
};

struct RetentionReport {
    int candidates_removed = 0;
    int packages_removed = 0;
    int versions_removed = 0;
    int temp_files_removed = 0;
    std::uint64_t bytes_freed = 0;
};

// Applies `policy` to registry.dir(). `active_cycle`: the name of a cycle whose candidate folder
// must stay ("" when none is saved). Errors removing a file are logged (naming it) and skipped.
RetentionReport apply_retention(const ModelRegistry& registry, const RetentionPolicy& policy,
                                const std::string& active_cycle);

// Bytes of the regular files under `dir` (0 when it does not exist); unreadable entries are
// skipped. For the faceadapt_state_bytes gauge.
std::uint64_t folder_bytes(const std::filesystem::path& dir);

}  // namespace faceadapt::daemon
