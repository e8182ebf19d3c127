// A training snapshot's site structure on disk (docs/site-snapshot.md): the crop store's
// index.csv rows (id,camera,unix_ms,track,score,file) and the optional constraints.csv of an
// operator's corrections, and the SiteStructure (constraints.hpp) they give a set of crops.
//
// WHAT THIS REPRESENTS
//   - read_snapshot_index()/write_snapshot_index(): index.csv, header
//     "id,camera,unix_ms,track,score,file"; a line is at most 4096 bytes; camera is
//     [A-Za-z0-9_.-]{1,64}; the file relative to the snapshot folder or absolute.
//   - read_constraints()/write_constraints(): constraints.csv, header "kind,a,b", rows
//     "must,<crop id>,<name>" (the operator says the crop shows <name>) and
//     "cannot,<ref>,<ref>" with ref = <crop id> or "name:<name>" (not the same person);
//     names [A-Za-z0-9 _.-]{1,64}; at most kMaxConstraintRows rows. A missing file is no
//     constraint.
//   - site_structure(): per row, its track (keyed by camera and track id, -1 = none), its time
//     (unix_ms), its frame (rows with the same camera and unix_ms > 0), its named group; the
//     cannot-links expanded to crop pairs (a name stands for every crop must-linked to it),
//     at most kMaxCannotPairs. Ids the rows do not hold are skipped and counted.
// ERRORS
//   std::invalid_argument naming the file and the line for anything malformed or over a
//   bound; std::runtime_error naming the file when it cannot be written. Values from the
//   files are never echoed raw in messages.
// THREAD SAFETY
//   Pure functions of their inputs (and the files).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "faceadapt/learner/constraints.hpp"

namespace faceadapt::learner {

inline constexpr int64_t kMaxConstraintRows = 1'000'000;
inline constexpr int64_t kMaxCannotPairs = 10'000'000;

struct SnapshotRow {
    int64_t id = 0;
    std::string camera;
    int64_t unix_ms = 0;
    int64_t track = -1;
    double score = 0.0;
    std::filesystem::path file;  // as written (relative to the snapshot folder or absolute)
};

std::vector<SnapshotRow> read_snapshot_index(const std::filesystem::path& index_csv);
void write_snapshot_index(const std::filesystem::path& index_csv, const std::vector<SnapshotRow>& rows);

struct ConstraintRef {
    int64_t crop = -1;  // a crop id, or
    std::string name;   // a named group (crop < 0)
    bool operator==(const ConstraintRef&) const = default;
};

struct OperatorConstraints {
    std::vector<std::pair<int64_t, std::string>> must;          // crop id -> name
    std::vector<std::pair<ConstraintRef, ConstraintRef>> cannot;
    bool empty() const { return must.empty() && cannot.empty(); }
};

OperatorConstraints read_constraints(const std::filesystem::path& constraints_csv);
void write_constraints(const std::filesystem::path& constraints_csv, const OperatorConstraints& c);

struct StructureCounts {
    int64_t tracks = 0, frames = 0, shared_frames = 0;  // frames with 2 or more crops
    int64_t must = 0, cannot_pairs = 0;
    int64_t unknown_ids = 0;  // constraint rows naming a crop not in the rows
};

// The structure of `rows` (in that order) with `c` applied (c may be empty).
SiteStructure site_structure(const std::vector<SnapshotRow>& rows, const OperatorConstraints& c,
                             StructureCounts* counts = nullptr);

}  // namespace faceadapt::learner
