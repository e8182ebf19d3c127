// A training snapshot's files and the operator's corrections on disk (docs/site-snapshot.md):
// the crop store's index.csv rows (id,camera,unix_ms,track,score,file), constraints.csv (an
// operator's corrections, written by the console, read by the learner) and clustering.csv (a
// training cycle's final pseudo-identity of each crop, read by the console). Standard library
// only: the torch-free daemon and the learner read and write them with the same code.
//
// WHAT THIS REPRESENTS
//   - read_snapshot_index()/write_snapshot_index(): index.csv, header
//     "id,camera,unix_ms,track,score,file"; a line is at most 4096 bytes; camera is
//     [A-Za-z0-9_.-]{1,64}; the file relative to the snapshot folder or absolute.
//   - read_constraints()/write_constraints(): constraints.csv, header "kind,a,b", rows
//     "must,<crop id>,<name>" (the operator says the crop shows <name>),
//     "cannot,<ref>,<ref>" with ref = <crop id> or "name:<name>" (not the same person) and
//     "same,<crop id>,<crop id>" (the same person, no name given: the console's "merge");
//     names [A-Za-z0-9 _.-]{1,64} (valid_person_name); at most kMaxConstraintRows rows. A
//     missing file is no constraint. write_constraints() is common's crash-safe write.
//   - read_clustering()/write_clustering(): clustering.csv, header "crop,cluster", rows
//     "<crop id>,<cluster>" with cluster >= 0 or -1 (noise); at most kMaxClusteringRows rows.
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
#include <utility>
#include <vector>

namespace faceadapt::common {

inline constexpr int64_t kMaxConstraintRows = 1'000'000;
inline constexpr int64_t kMaxCannotPairs = 10'000'000;
inline constexpr int64_t kMaxClusteringRows = 10'000'000;

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

// A person's name as the constraints (and the gallery) take it: 1-64 of A-Z a-z 0-9 space _ . -
bool valid_person_name(const std::string& name);

struct ConstraintRef {
    int64_t crop = -1;  // a crop id, or
    std::string name;   // a named group (crop < 0)
    bool operator==(const ConstraintRef&) const = default;
};

struct OperatorConstraints {
    std::vector<std::pair<int64_t, std::string>> must;          // crop id -> name
    std::vector<std::pair<ConstraintRef, ConstraintRef>> cannot;
    std::vector<std::pair<int64_t, int64_t>> same;              // crop id, crop id: one person
    bool empty() const { return must.empty() && cannot.empty() && same.empty(); }
    int64_t rows() const { return static_cast<int64_t>(must.size() + cannot.size() + same.size()); }
    bool operator==(const OperatorConstraints&) const = default;
};

OperatorConstraints read_constraints(const std::filesystem::path& constraints_csv);
// requires: every name valid, at most kMaxConstraintRows rows (else std::runtime_error).
void write_constraints(const std::filesystem::path& constraints_csv, const OperatorConstraints& c);

// One crop's final pseudo-identity in a cycle's clustering.
struct ClusterAssignment {
    int64_t crop = 0;
    int64_t cluster = -1;  // -1: noise
    bool operator==(const ClusterAssignment&) const = default;
};

std::vector<ClusterAssignment> read_clustering(const std::filesystem::path& clustering_csv);
// Crash-safe (common's atomic write). requires: crop >= 0, cluster >= -1, at most
// kMaxClusteringRows rows (else std::runtime_error naming the file).
void write_clustering(const std::filesystem::path& clustering_csv, const std::vector<ClusterAssignment>& rows);

}  // namespace faceadapt::common
