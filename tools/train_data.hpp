// The train command's input: which files, which sample of them, and the two enhanced views of
// the sample written to scratch chip files that the co-trainer streams.
//
// WHAT THIS REPRESENTS
//   list_training_inputs(): every image under --data with its stratum (camera, UTC day, track).
//   A store snapshot (the daemon's data folder) has an index.csv
//   "id,camera,unix_ms,track,score,file" that gives them (and its rows: the site structure of
//   docs/site-snapshot.md, with its optional constraints.csv); a plain folder gives the first
//   sub-folder as the camera and no day or track. Either way the inputs come in path order.
//   prepare_training_views(): decodes the sampled files in blocks of kBlock (the header's size
//   checked before any decoding: ingest::read_image_bounded), aligns photos (or takes 150x150
//   chips as they are), makes the two views of claim 2, and appends them to two FACHIPS1 files.
//   Only one block of images is in memory at a time. Files that cannot be read, are not chips of
//   the right size (with --chips) or show no face are skipped and counted, never fatal.
// THREAD SAFETY
//   Call from one thread; prepare_training_views() runs its own decoding threads.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "faceadapt/learner/chip_source.hpp"
#include "faceadapt/learner/site_snapshot.hpp"
#include "faceadapt/learner/training_sample.hpp"

namespace faceadapt::tools {

struct TrainingInput {
    std::filesystem::path file;
    learner::CropKey key;
    learner::SnapshotRow row;  // a store snapshot's index row (id -1 in a plain folder)
};

// requires: data is a folder. throws std::invalid_argument naming it when it holds no image or
// its index.csv is malformed.
std::vector<TrainingInput> list_training_inputs(const std::filesystem::path& data);

struct ViewOptions {
    bool chips_only = false;        // the files are 150x150 chips (no detection)
    std::string views = "quality";  // quality (quality::Enhancer) | tensor (learner::enhance_chips)
    bool second_view = true;        // false: only view 1 (method naive)
    std::filesystem::path view1, view2;  // the scratch chip files to write
};

struct PreparedViews {
    std::shared_ptr<const learner::ChipFile> set1, set2;  // set2 null without second_view
    int64_t used = 0;        // chips in the sets
    std::vector<int64_t> used_inputs;  // for each chip, the index of the input it came from
    int64_t unreadable = 0;  // refused by read_image_bounded (unreadable, too large, wrong size)
    int64_t no_face = 0;     // photos without a detected face
    std::vector<std::string> first_errors;  // up to 5 of the refusals, for the log
};

// throws std::invalid_argument for an unknown views name; std::runtime_error when a scratch
// file cannot be written.
PreparedViews prepare_training_views(const std::vector<TrainingInput>& inputs, const ViewOptions& options);
// The same from the chips `sample` of a chips file (a FACHIPS1 --data file).
PreparedViews prepare_training_views(const learner::ChipSource& chips, const std::vector<size_t>& sample,
                                     const ViewOptions& options);

// The site structure of a snapshot's `inputs` (the sample given to prepare_training_views) over
// the chips `views` kept: tracks, frames and the operator constraints of `constraints_csv`
// (absent: none). throws std::invalid_argument naming the file when it is malformed.
learner::SiteStructure training_structure(const std::vector<TrainingInput>& inputs, const PreparedViews& views,
                                          const std::filesystem::path& constraints_csv,
                                          learner::StructureCounts* counts);

// Peak resident set of this process so far, MB (getrusage's ru_maxrss).
double peak_rss_mb();

}  // namespace faceadapt::tools
