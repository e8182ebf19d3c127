// CoTrainer: dual-network mean-teacher co-training (patent CN112686171A claims 1-4 and 6; MMT)
// and the single-network pseudo-label baseline ("naive"), with checkpoint/resume.
//
// WHAT THIS REPRESENTS
//   Four FaceResNets: students net1, net2 and their mean (EMA) models mean1, mean2. net1 starts
//   as the source model, net2 as the source plus seeded Gaussian noise (perturb_scale x each
//   tensor's std) with its own dropout and augmentation stream. Each cycle:
//     S1  L2-normalised features of set 1 from mean1 and of set 2 from mean2 (no augmentation);
//         their normalised sum is the clustering feature.
//     S2  clustering (cluster.hpp: sparse Jaccard DBSCAN with a label-free eps, or spherical
//         k-means) -> pseudo-labels; noise dropped for this cycle; the cosine classifier of all
//         four nets re-initialised from the normalised cluster centroids; Adam rebuilt.
//     S3  `iters` steps on batches of P pseudo-ids x K images: net1 learns set 1 (its own
//         augmented view) with the hard labels plus soft targets from mean2 on set 2, net2 the
//         mirror image; loss_k = (1-a) CE_ls + a SoftCE + (1-b) Triplet + b SoftTriplet
//         + l2sp_alpha * ||backbone_k - start_k||^2 + distill_weight * similarity distillation
//         toward the source model's features of the same images; after each step
//         mean_k = lambda mean_k + (1-lambda) net_k (ema.hpp). The L2-SP gradient, Adam and the
//         EMA are one fused pass per parameter (MeanTeacherAdam), on CPU run from backward
//         hooks on a worker thread while the rest of backward goes on (OverlappedUpdates).
//     S4  label-free convergence of each net: the NMI between the pseudo-labels its OWN mean
//         model's features give this cycle and those they gave the cycle before (pseudo-label
//         stability: 1 = the net no longer changes how it groups the site's faces; it needs no
//         labels, is comparable between the two nets and does not depend on loss scales).
//   After the last cycle the final mean models' features are clustered once more for the last
//   convergence figure and the last pseudo-labels; the result is the more convergent mean model
//   (claim 1) or, with merge (the default), the convergence-weighted average
//   w1 = c1/(c1+c2) (claim 6), trained on the last pseudo-labelled set until its convergence
//   (the NMI of its own clustering against those labels, checked first) reaches
//   merge_convergence, for at most merge_max_cycles rounds. With source_mix < 1 that result is
//   then interpolated toward the source weights (the pseudo-labels stay as they are).
//   "naive": one net, clustered on its own features, trained with CE_ls + Triplet (+ L2-SP
//   with naive_l2sp_alpha, 0 by default: the honest plain self-training baseline).
//   FaceResNet has no BatchNorm and no buffers: the EMA averages every parameter, nothing else
//   needs handling.
// DETERMINISM AND RESUME
//   Every random draw is derived from (seed, cycle, iteration, ...): sampler, augmentation,
//   dropout (torch's generator is re-seeded before each step), net2's perturbation, k-means.
//   A checkpoint (written after each cycle and when stop is requested, durably: temp file,
//   fsync, rename, folder fsync) holds the four nets, both optimisers' state and the
//   CoTrainState (counters, pseudo-labels, convergence history), so resume() continues exactly
//   as if never stopped (bit-identical on CPU with the same thread count). It names its data set
//   by content_fingerprint() of set 1 (computed once, reading 64 chips at a time).
// MEMORY
//   The sets are read through ChipSource: with ChipFile, only the chips of the batch being built
//   or embedded are in memory, so a run's resident set does not grow with N except for the
//   features (N x 128 floats) and the clustering.
// THREAD SAFETY
//   One thread drives a CoTrainer; it runs its own prefetch worker threads internally.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <memory>

#include <torch/torch.h>

#include "faceadapt/learner/chip_source.hpp"
#include "faceadapt/learner/cluster.hpp"
#include "faceadapt/learner/constraints.hpp"
#include "faceadapt/learner/ema.hpp"
#include "faceadapt/learner/face_resnet.hpp"
#include "faceadapt/learner/mean_teacher_adam.hpp"
#include "faceadapt/learner/training_data.hpp"

namespace faceadapt::learner {

struct CoTrainOptions {
    std::string method = "mmt";          // mmt|naive
    int cycles = 6;
    int iters = 50;                      // steps per cycle
    int batch_ids = 8;                   // P
    int batch_per_id = 4;                // K
    double lr_backbone = 3.5e-5;
    double lr_classifier = 3.5e-4;
    EmaSchedule ema;                     // fixed 0.99 by default
    ClusterOptions cluster;
    ConstraintOptions constraints;       // how a site structure (set_structure) shapes the pseudo-labels
    // With a site structure: batches pair cannot-linked pseudo-identities (the pair's crops
    // inside: guaranteed negatives for the triplet mining) and draw images in track pairs.
    // Off by default: on the reduced Yale B run it cost 3 LFW points (docs/learner.md).
    bool constraint_batches = false;
    // With a site structure: weight of the cross-view track positives, 1 - cos(f_k(a), f_mean(other)(b))
    // for crops a != b of one track and one pseudo-identity in the batch (mmt only).
    double track_positive_weight = 0.3;
    // The result is start + source_mix x (adapted - start): the adapted weights interpolated
    // toward the model the run started from (WiSE-FT, Wortsman et al. CVPR 2022), in (0, 1].
    // 1 (the default) = the adapted weights as they are. Lower keeps more of faces in general
    // (LFW) and gives up site accuracy at about the same rate with or without a site structure
    // (docs/learner.md, "Mixing toward the source"): a site's choice, not a free gain.
    double source_mix = 1.0;
    double soft_ce_weight = 0.5;         // MMT's 0.5
    double soft_triplet_weight = 0.8;    // MMT's 0.8
    double label_smoothing = 0.1;
    double triplet_scale = 10.0;         // distances x this before the triplet softmax
    double l2sp_alpha = 10.0;            // each student toward its own start weights (docs/learner.md)
    double naive_l2sp_alpha = 0.0;
    double distill_weight = 0.0;         // similarity distillation toward the source model
    double dropout1 = 0.1, dropout2 = 0.15;
    double classifier_scale = 20.0;
    double perturb_scale = 0.02;         // net2 = source + N(0, (0.02 std)^2)
    AugmentOptions augment;
    bool merge = true;                   // claim 6 (false: claim 1, the more convergent mean model)
    double merge_convergence = 0.9;
    int merge_max_cycles = 3;
    uint64_t seed = 0;
    std::string device = "cpu";          // cpu|cuda
    int workers = 2;                     // prefetch threads
    int prefetch = 4;                    // batches ready ahead
    int extract_batch = 64;
    std::filesystem::path checkpoint;    // "" = no checkpoints

    // throws std::invalid_argument naming the first bad field.
    void validate() const;
};

// Where the co-training steps' time went: seconds summed over a cycle's steps (host clock).
// On CPU every part is exact; on CUDA kernels run asynchronously, so only the sum is exact there.
// Not stored in checkpoints.
struct StepTimes {
    double data = 0.0;         // waiting for the prefetched batch, copies to the device
    double forward = 0.0;      // net1/net2 forward + classify, mean1/mean2 forward (no grad)
    double losses = 0.0;       // CE, soft CE, triplets, distillation
    double backward = 0.0;     // zero_grad + backward
    double update_wait = 0.0;  // waiting for the worker's last updates after backward
    double update1 = 0.0, update2 = 0.0;  // each student's L2-SP + Adam + EMA left after backward
                                          // (all of it when not overlapped: CUDA)
    double other = 0.0;        // loss read-outs, logging
    double overlapped = 0.0;   // the updates' time on the worker thread, during backward (not in total())
    double total() const;
    // One line, milliseconds per step: "data 1.0, forward 800.0, ... (ms/step over N steps)".
    std::string text(int steps) const;
};

struct CycleReport {
    int cycle = 0;
    int64_t clusters = 0, noise = 0, clustered = 0;
    double eps = 0.0;
    double convergence1 = 0.0, convergence2 = 0.0;  // NMI vs previous cycle (0 at cycle 0)
    double loss1 = 0.0, loss2 = 0.0;                // mean total loss over the cycle
    double images_per_s = 0.0;                      // co-training step throughput
    double prefetch_wait_s = 0.0;                   // time the step waited for data
    double seconds = 0.0;
    StepTimes step_times;                           // this run's steps of the cycle (not checkpointed)
    int steps_timed = 0;                            // steps summed in step_times
    std::vector<double> step_seconds;               // each step's wall time, this run (not checkpointed)
};

// Where a run is, as numbers (what set_progress receives): after each cycle's clustering
// (iter 0) and at the iterations that are logged. cycle and iter are 1-based.
struct TrainProgress {
    int cycle = 0, cycles = 0, iter = 0, iters = 0;
    double loss = 0.0;             // total loss of the last step (0 at iter 0)
    double images_per_s = 0.0;     // this cycle's step throughput so far (0 at iter 0)
    double eta_s = 0.0;            // estimated seconds left for the run (0 at iter 0)
};

// Where a run's time went, seconds (host clock; this run only, not checkpointed): embedding
// passes over the sets, clustering (kNN, re-ranking, DBSCAN/k-means), co-training steps,
// checkpoint writes, and the merge (claim 6) with its fine-tune (its own embedding and
// clustering included there, not in the first two).
struct PhaseTimes {
    double embed = 0, cluster = 0, train = 0, checkpoint = 0, merge = 0;
};

// The co-training state a checkpoint saves besides the nets and optimisers, as one value:
// where the run is, the current pseudo-labels, each mean model's own last clustering and the
// cycle reports. save()/load() put it into / read it from a checkpoint archive whole.
struct CoTrainState {
    int cycle = 0, iter = 0;                 // next cycle / next iteration in it
    int64_t step = 0;                        // steps done over the whole run
    std::vector<int64_t> labels;             // current cycle's pseudo-labels (-1 noise)
    std::vector<int64_t> own1, own2;         // each mean model's own clustering
    std::vector<CycleReport> reports;        // one per started cycle (timings of this run not kept)
    int64_t classes() const;                 // 1 + the largest label (0 when none)
    // throws std::runtime_error naming `where` when a field is missing or malformed.
    void save(torch::serialize::OutputArchive& ar) const;
    void load(torch::serialize::InputArchive& ar, const std::string& where);
};

struct TrainResult {
    bool finished = false;           // false: stopped on request (checkpoint written)
    FaceResNet model{nullptr};       // the output (chosen mean model / merged / naive net), eval mode, CPU
    std::string chosen;              // "mean1", "mean2", "merged", "naive"
    double convergence1 = 0.0, convergence2 = 0.0;
    std::vector<CycleReport> cycles;
    std::vector<int64_t> final_labels;  // last pseudo-labels of the adapt set (-1 noise)
    PhaseTimes phases;
};

class CoTrainer {
public:
    // requires: source is the model to adapt (it is not modified); set1 uint8 [N,150,150,3]
    //           RGB on CPU, set2 the same crops through a different enhancement (same shape;
    //           undefined -> set1 is used for both, naive needs only set1); N >= 2.
    // throws:   std::invalid_argument for bad options or data.
    CoTrainer(const FaceResNet& source, torch::Tensor set1, torch::Tensor set2, CoTrainOptions options);
    // The same over chip sources (e.g. ChipFile: streamed from disk, never all in memory);
    // set2 null -> set1 for both. Sources must stay unchanged while the trainer lives.
    CoTrainer(const FaceResNet& source, std::shared_ptr<const ChipSource> set1, std::shared_ptr<const ChipSource> set2,
              CoTrainOptions options);

    // Receives each progress line (cycle, iter, losses, images/s, ETA; cycle summaries).
    void set_log(std::function<void(const std::string&)> log) { log_ = std::move(log); }
    // Receives the same progress as numbers (TrainProgress), for a caller that reports it typed.
    void set_progress(std::function<void(const TrainProgress&)> progress) { progress_ = std::move(progress); }

    // The site's structure over the training set (constraints.hpp: tracks, frames, an
    // operator's corrections): every pseudo-labelling (each cycle's, the final one, the merge's
    // check) of mmt then clusters with cluster_within_cannot_links() (eps lowered while more than
    // constraints.max_violation_rate of the cannot-linked pairs share a cluster) and goes through
    // apply_constraints(); naive's only through apply_constraints(). Call before run()/resume(). It is saved in
    // the checkpoint. An empty SiteStructure{} says "none" (a resume then refuses a checkpoint
    // made with one). throws std::invalid_argument when its size is not the set's.
    void set_structure(SiteStructure structure);
    const SiteStructure& structure() const { return structure_; }
    // The last constrained pseudo-labelling's report (zeros without a structure).
    const ConstraintReport& last_constraint_report() const { return constraint_report_; }

    // Loads options.checkpoint. ensures: the next run() continues where it stopped; without a
    // set_structure() call the checkpoint's structure is used.
    // throws std::runtime_error naming the file when missing/corrupt or made with other data,
    //        seed, method or site structure, and before libtorch parses it when its torch
    //        archive is not one OutputArchive writes (detail::check_torch_archive: bounded
    //        lengths, storages inside their records) or it is over 8 GiB.
    void resume();

    // Runs to the end, or until *stop becomes true (then checkpoints and returns finished=false).
    TrainResult run(const std::atomic<bool>* stop = nullptr);

    // Writes the checkpoint now (what run() does after each cycle).
    void save_checkpoint() const;

    // The four nets (net1/net2/mean1/mean2; naive uses net1 only).
    FaceResNet net(int which) const;
    int64_t global_step() const { return s_.step; }
    const CoTrainState& state() const { return s_; }

private:
    void start_cycle();
    double train_steps(const std::atomic<bool>* stop, CycleReport& report);
    // constrained: cluster_within_cannot_links() then apply_constraints() with the site structure
    // (when there is one). *eps: the eps used; *eps_lowered: whether it is below the rule's.
    std::vector<int64_t> cluster_labels(const torch::Tensor& features, double* eps, bool constrained = false,
                                        bool* eps_lowered = nullptr);
    // `labels` through apply_constraints() (as they are without a structure); logs the report.
    std::vector<int64_t> constrain(const torch::Tensor& features, std::vector<int64_t> labels);
    torch::Tensor extract(FaceResNet& net, const ChipSource& set);
    void reset_classifiers(const torch::Tensor& features, const std::vector<int64_t>& labels);
    void build_optimisers();
    FaceResNet merge_and_finetune(double c1, double c2, const std::vector<int64_t>& last_labels);
    void log(const std::string& line) const;

    CoTrainOptions o_;
    torch::Device device_;
    std::shared_ptr<const ChipSource> set1_, set2_;
    uint64_t data_fingerprint_ = 0;                        // content_fingerprint(set1), for checkpoints
    FaceResNet source_{nullptr}, net1_{nullptr}, net2_{nullptr}, mean1_{nullptr}, mean2_{nullptr};
    std::vector<torch::Tensor> start1_, start2_;         // L2-SP anchors (backbone, on device)
    torch::Tensor source_feat1_, source_feat2_;          // for distillation [N,128] on device
    std::unique_ptr<MeanTeacherAdam> opt1_, opt2_;         // each student's L2-SP + Adam + EMA
    CoTrainState s_;
    SiteStructure structure_;                              // empty: no site constraints
    bool structure_given_ = false;                         // set_structure() called
    ConstraintReport constraint_report_;
    mutable PhaseTimes phases_;
    torch::Tensor known_features_;                         // net1's features of set 1, when known (merge fine-tune)
    std::function<void(const std::string&)> log_;
    std::function<void(const TrainProgress&)> progress_;
};

}  // namespace faceadapt::learner
