// TrainingCycle: one co-training cycle, step by step, each step with typed inputs and outputs.
//
// WHAT THIS REPRESENTS
//   prepare -> train -> evaluate -> gate -> release, for one candidate directory
//   <models>/candidates/<name>/ of the model registry:
//     prepare   the store's records (one consistent snapshot) split by split_records() into the
//               training set and held-out tracks (whole groups of neighbouring track ids), the
//               same-frame pairs taken among the held-out tracks only; the chips copied to
//               data/ (for the training child; with the store's index.csv of them) and
//               holdout/ (listed in holdout.json for the evaluation child). -> PreparedData
//     train     `faceadapt train --data data --chips --protocol-fd 3 --clustering F ...` (the
//               child: nice, idle I/O, RLIMIT_AS); its "result" message names the candidate and
//               its provenance; F (common/site_files.hpp's clustering.csv in the candidate
//               folder) holds each sampled crop's final pseudo-identity, which the step checks
//               and keeps as the latest clustering (latest_clustering_file) for the console's
//               Unknown faces, whatever the gate decides later. -> TrainOutput. A stop (SIGTERM to the daemon) ends the child, which
//               checkpoints; the next run resumes it with --resume.
//     evaluate  `faceadapt evaluate --protocol-fd 3 ...` (a second child, so faceadaptd never
//               loads torch): the gate's figures of the current model and the candidate (and of
//               the source model and the best version so far, the gate's references) on the
//               enrolled gallery, the held-out crops, the same-frame pairs and [gate]
//               strangers_dir, each model at its own calibrated operating point, and the
//               gallery embedded by the candidate. -> Evaluation
//     gate      decide() (gate.hpp); promoted: the candidate registered as a new version and
//               made current. -> GateDecision, the version
//     release   the Hooks' release with that version and the candidate's embedded gallery, which
//               carries the candidate's operating point (the package's threshold).
//   The state (CycleState: the step reached and every earlier step's output) is saved whole to
//   <models>/cycle.json with common's durable write after each step, so a daemon killed at any
//   point resumes at the step it was in: a finished step is never run again. A failed child or
//   a gate refusal ends the cycle (history.jsonl says why); an ended cycle removes its data,
//   held-out crops, checkpoint and cycle.json (the candidate model stays in its folder).
//   What is decided is what faceadaptd decided before this seam: the same split (a stable hash
//   of camera/track group since issue 12's held-out calibration), the same child arguments, the same gate, the same history records and
//   metrics.
// THREAD SAFETY
//   One thread drives a TrainingCycle (faceadaptd's learner thread). `stop` may be set from any
//   thread; the hooks run on the driving thread, the children's callbacks on reader threads.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "faceadapt/config/config.hpp"
#include "faceadapt/daemon/child_protocol.hpp"
#include "faceadapt/daemon/gate.hpp"
#include "faceadapt/daemon/training_child.hpp"
#include "faceadapt/quality/crop_store.hpp"

namespace faceadapt::daemon {

class MetricsRegistry;
class ModelRegistry;

enum class CycleStep { prepare, train, evaluate, gate, release, done };
std::string_view to_string(CycleStep step);
// throws std::invalid_argument for a name that is not a step.
CycleStep cycle_step_from_string(std::string_view name);

// ---- prepare: the split (pure) ------------------------------------------------------------
// Whole tracks are held out (their crops are one person: the site figures' weak labels), and
// whole groups of kHoldoutTrackGroup consecutive track ids of one camera together: a tracker
// numbers tracks in the order they start, so two people seen in one frame mostly have
// neighbouring ids, and a group keeps their same-frame pair whole for the calibration of the
// held-out crops (a hash per track would keep both tracks of a pair for only fraction^2 of the
// pairs: 1% at the default 0.1; docs/operating-point.md, section 4). Which groups is a hash
// (FNV-1a) of "camera/group<track / kHoldoutTrackGroup>", so it is stable across cycles (a
// track's id never changes) and a group never spans two tracker runs (a run's base,
// kTrackRunStride, is a multiple of the group): a record is held out when track >= 0 and
// hash % 1000 < holdout_fraction * 1000. Untracked crops train.
inline constexpr std::int64_t kHoldoutTrackGroup = 8;
static_assert(quality::kTrackRunStride % kHoldoutTrackGroup == 0, "a holdout group must not span two tracker runs");
bool held_out(const std::string& camera, std::int64_t track, double holdout_fraction);
// "camera/track": the held-out crops' label for the site figures.
std::string track_label(const quality::CropRecord& r);

struct CycleSplit {
    std::vector<quality::CropRecord> training, holdout;  // in the input's order
};
// ensures: every record is in exactly one of the two sets, by held_out().
CycleSplit split_records(std::vector<quality::CropRecord> records, double holdout_fraction);

// ---- each step's output ------------------------------------------------------------------
struct PreparedData {
    std::filesystem::path data_dir;       // training chips <camera>/<id>.png + index.csv
    std::filesystem::path holdout_file;   // {"crops":[{"file":..,"track":..}]}
    std::size_t training = 0, holdout = 0;
    std::int64_t max_crop_id = 0;         // largest id exported (the scheduler's mark)
};

struct TrainOutput {
    std::filesystem::path model;          // the candidate model file
    nlohmann::json provenance = nlohmann::json::object();
    double seconds = 0;                   // the cycle's wall time up to the trained candidate
    std::int64_t clustered = -1;          // crops in the clustering kept (-1: the child wrote none)
};

// <models>/clustering.csv: the latest training step's clustering of the site's crops
// (common/site_files.hpp), replaced whole (crash-safe) by each successful training step.
std::filesystem::path latest_clustering_file(const std::filesystem::path& models_dir);

struct Evaluation {
    ModelFigures current, candidate;
    EmbeddedGallery gallery;              // embedded by the candidate: what its release packs
    std::vector<GateReference> references;  // the source model and the best so far (issue 18 item 7)
};

// ---- prepare: the same-frame pairs (pure) -------------------------------------------------
// Two tracks of one camera with crops of the same frame time are two people (the store's
// timestamp is the frame's wall-clock time, ms): their track labels, each pair once, and up
// to `per_track` crops of each such track (at most `max_crops` crops in all), in input order.
struct FramePairs {
    std::vector<std::pair<std::string, std::string>> pairs;
    std::vector<quality::CropRecord> crops;
};
FramePairs same_frame_pairs(const std::vector<quality::CropRecord>& records, std::size_t per_track = 8,
                            std::size_t max_crops = 4000);

// The promoted version with the lowest door FRR recorded at its gate (history.jsonl), other than
// `current` and still stored; 0 when none.
int best_version_so_far(const ModelRegistry& registry, int current);

struct CycleState {
    std::string name;                     // "cycle-<UTC compact>"
    CycleStep step = CycleStep::prepare;  // the next step to run
    std::string started;                  // UTC ISO-8601
    int parent_version = 0;               // the current version when training started
    std::optional<PreparedData> prepared;
    std::optional<TrainOutput> training;
    std::optional<Evaluation> evaluation;
    std::optional<GateDecision> decision;
    int version = 0;                      // the version the gate registered (0: none yet)
};
nlohmann::json to_json(const CycleState& s);
// A state of the release before the steps were saved ({"name", "status": "training", ...})
// reads as that cycle at its prepare step. throws std::runtime_error saying which member is
// missing or malformed, or when a step lacks an earlier step's output.
CycleState cycle_state_from_json(const nlohmann::json& j);

// ---- running a child ---------------------------------------------------------------------
// Runs argv as a TrainingChild until it exits, polling every 100 ms; when *stop becomes true
// the child gets SIGTERM (it checkpoints), then SIGKILL after `stop_grace`.
struct ChildSupervision {
    TrainingLimits limits;
    std::chrono::milliseconds stop_grace{7000};
    const std::atomic<bool>* stop = nullptr;
    TrainingChild::ProgressCallback on_progress;
    TrainingChild::OutputCallback on_output;
};
TrainingResult run_child_supervised(const std::vector<std::string>& argv, const ChildSupervision& supervision);

class TrainingCycle {
public:
    struct Options {
        std::filesystem::path trainer;        // the `faceadapt` executable
        std::filesystem::path config_file;    // passed to `faceadapt train --config`
    };
    struct Hooks {
        // Runs one child to its end (faceadaptd: run_child_supervised with the [learner]
        // limits, its stop flag and its progress metrics); `cycle` names the cycle for its log
        // lines. Required.
        std::function<TrainingResult(const std::string& cycle, const std::vector<std::string>& argv)> run_child;
        // Publishes a promoted version with its gallery (faceadaptd: release_version). Required.
        std::function<void(int version, const EmbeddedGallery& gallery)> release;
        // The trainer status line ("snapshot", "training", "gate", "publishing"...). Optional.
        std::function<void(const std::string&)> status;
        // Called after each save of the state, with the step saved as next. Optional; a test
        // throws from it to leave the cycle as a killed daemon would.
        std::function<void(CycleStep next)> saved;
    };
    enum class Outcome {
        ended,    // finished, failed or refused: the state is gone, the scheduler may mark max_crop_id
        stopped,  // `stop` was set: the state stays and the next run() resumes it
    };
    struct Report {
        Outcome outcome = Outcome::ended;
        CycleState state;                     // as it ended (step done) or stopped
    };

    // The references must outlive the cycle. The store is only read (snapshot, chips). Describes
    // the metric families it sets (faceadapt_training_*, faceadapt_gate_*, faceadapt_model_version).
    TrainingCycle(const quality::CropStore& store, ModelRegistry& registry, MetricsRegistry& metrics, Options options,
                  Hooks hooks);

    // The state saved by an unfinished run, if any (an unreadable cycle.json is logged and
    // treated as none).
    std::optional<CycleState> saved_state() const;

    // Resumes the saved cycle, or starts a new one, and runs it step by step until it ends or
    // `stop` is set. `config` is the configuration to run it under. Exceptions of a step are
    // handled as the step's failure (logged, history, metrics) except those of Hooks::saved.
    Report run(const config::Config& config, const std::atomic<bool>& stop);

    // The enrolled gallery embedded by `model_file` (empty: the source model), through the
    // evaluation child; what a republish at startup packs.
    // throws std::runtime_error when the child fails (its result described).
    EmbeddedGallery embed_gallery(const config::Config& config, const std::filesystem::path& model_file);

    std::filesystem::path state_file() const;

private:
    struct Run;
    const quality::CropStore& store_;
    ModelRegistry& registry_;
    MetricsRegistry& metrics_;
    Options options_;
    Hooks hooks_;
};

}  // namespace faceadapt::daemon
