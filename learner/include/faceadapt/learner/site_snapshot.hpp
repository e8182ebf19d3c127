// A training snapshot's site structure (docs/site-snapshot.md): the SiteStructure
// (constraints.hpp) that a snapshot's index.csv rows and the operator's constraints.csv give a
// set of crops. The files themselves are read and written by common/site_files.hpp (standard
// library only, shared with the torch-free daemon); their names are brought in here.
//
// WHAT THIS REPRESENTS
//   site_structure(): per row, its track (keyed by camera and track id, -1 = none), its time
//   (unix_ms), its frame (rows with the same camera and unix_ms > 0), its named group; the
//   cannot-links expanded to crop pairs (a name stands for every crop must-linked to it),
//   at most kMaxCannotPairs. A "same,<a>,<b>" row (the console's merge of two groups) puts both
//   crops, and the names and crops linked to them, in one named group. Ids the rows do not
//   hold are skipped and counted.
// ERRORS
//   std::invalid_argument when the cannot-links expand past kMaxCannotPairs.
// THREAD SAFETY
//   Pure function of its inputs.
#pragma once

#include <cstdint>
#include <vector>

#include "faceadapt/common/site_files.hpp"
#include "faceadapt/learner/constraints.hpp"

namespace faceadapt::learner {

using common::ConstraintRef;
using common::kMaxCannotPairs;
using common::kMaxConstraintRows;
using common::OperatorConstraints;
using common::read_constraints;
using common::read_snapshot_index;
using common::SnapshotRow;
using common::write_constraints;
using common::write_snapshot_index;

struct StructureCounts {
    int64_t tracks = 0, frames = 0, shared_frames = 0;  // frames with 2 or more crops
    int64_t must = 0, cannot_pairs = 0;
    int64_t same = 0;         // "same" rows applied (both crops in the rows)
    int64_t unknown_ids = 0;  // constraint rows naming a crop not in the rows
};

// The structure of `rows` (in that order) with `c` applied (c may be empty).
SiteStructure site_structure(const std::vector<SnapshotRow>& rows, const OperatorConstraints& c,
                             StructureCounts* counts = nullptr);

}  // namespace faceadapt::learner
