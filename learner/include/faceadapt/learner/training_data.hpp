// Training data for co-training: the two enhanced views (claim 2), random augmentation, the
// P x K pseudo-identity sampler, a threaded bounded prefetcher, and raw chip tensor files.
//
// WHAT THIS REPRESENTS
//   - enhance_chips(): a minimal tensor-only enhancer (used by the learner-only build and as a
//     default; the full service passes views made by quality::Enhancer). Pipeline spec
//     "step,step,...", steps: stretch (grey-level stretch of the luma, 1st-99th percentile to
//     0-255), equalize (luma histogram equalisation, colour ratios kept), smooth (3x3 Gaussian),
//     median (3x3 median, denoising), sharpen (3x3 unsharp filter). kFirstViewSpec and
//     kSecondViewSpec are the two default, different pipelines.
//   - augment_chip(): flip, shift (zero fill, as MMT's pad+crop), brightness/contrast jitter,
//     random erasing (filled with the network's mean colour, i.e. 0 after normalisation).
//   - PkSampler: each batch holds P pseudo-identities x K images; the draw for (cycle, iter)
//     depends only on (seed, cycle, iter), so resuming mid-cycle gives the same batches.
//   - BatchPrefetcher: worker threads build the batches of iterations [first, last) ahead of
//     the trainer (at most `capacity` ready or in flight), each batch from its own seeded RNG,
//     so the result is the same whatever the thread timing.
// THREAD SAFETY
//   Free functions are pure. PkSampler is immutable after construction. BatchPrefetcher::next()
//   must be called from one thread; its destructor stops and joins the workers.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <torch/torch.h>

#include "faceadapt/learner/chip_source.hpp"

namespace faceadapt::learner {

inline constexpr const char* kFirstViewSpec = "stretch,equalize";
inline constexpr const char* kSecondViewSpec = "median,smooth";

// requires: chips uint8 [N,150,150,3] (any H,W) RGB on CPU; spec of known steps ("" = copy).
// ensures:  a new uint8 tensor of the same shape.
// throws:   std::invalid_argument naming an unknown step or a bad tensor.
torch::Tensor enhance_chips(const torch::Tensor& chips, const std::string& spec);

struct AugmentOptions {
    bool flip = true;
    int max_shift = 6;              // pixels, each axis
    double brightness = 0.3;        // factor in [1-b, 1+b]
    double contrast = 0.3;          // factor in [1-c, 1+c] around the image mean
    double erase_probability = 0.25;
    double erase_min_area = 0.02, erase_max_area = 0.2;
};

// Deterministic 64-bit mix of several values (splitmix64), for per-batch seeds.
uint64_t mix_seed(std::initializer_list<uint64_t> values);

// requires: src and dst are H*W*3 uint8 RGB buffers (not overlapping).
void augment_chip(const uint8_t* src, uint8_t* dst, int height, int width, const AugmentOptions& options,
                  uint64_t seed);

// What the site's structure gives the sampler (issue 15): per sample its track (-1 none) and
// the cannot-linked sample pairs.
struct SampleLinks {
    std::vector<int64_t> track;
    std::vector<std::pair<int64_t, int64_t>> cannot;
};

class PkSampler {
public:
    // requires: labels >= 0 for the samples to draw from (-1 = excluded); p >= 1, k >= 1,
    //           at least one label present. throws std::invalid_argument otherwise.
    // With `links` (one track per label entry): after a pseudo-identity is drawn, one of the
    // pseudo-identities cannot-linked to it (if any not drawn yet) is drawn next, each with the
    // two crops of such a pair among its K (the pair is then a guaranteed negative in the
    // batch), and each pseudo-identity's images come in pairs from one track where it can (a
    // positive across the two views, see CoTrainOptions::track_positive_weight). Without
    // links, or with links that link nothing, the draws are exactly those without.
    PkSampler(const std::vector<int64_t>& labels, int p, int k, uint64_t seed, const SampleLinks* links = nullptr);
    // The P*K sample indices of one iteration, grouped by pseudo-identity.
    std::vector<int64_t> batch(int64_t cycle, int64_t iter) const;
    int64_t num_identities() const { return static_cast<int64_t>(members_.size()); }
    int64_t batch_size() const { return int64_t{p_} * k_; }

private:
    std::vector<int64_t> linked_batch(std::mt19937_64& rng) const;
    struct Partner {
        int64_t id, mine, theirs;  // the other pseudo-identity, the pair's crop here and there
    };
    std::vector<std::vector<int64_t>> members_;
    std::vector<std::vector<Partner>> partners_;  // per pseudo-identity (empty: no links)
    std::vector<int64_t> track_;                  // per sample (empty: no links)
    int p_, k_;
    uint64_t seed_;
};

struct TrainingBatch {
    int64_t iter = 0;
    torch::Tensor indices;   // [B] int64 sample indices
    torch::Tensor targets;   // [B] int64 pseudo-labels
    torch::Tensor input1;    // [B,3,150,150] float: view 1, augmented (stream 1), normalised
    torch::Tensor input2;    // [B,3,150,150] float: view 2, augmented (stream 2), normalised
};

class BatchPrefetcher {
public:
    // requires: set1/set2 uint8 [N,H,W,3] on CPU (set2 may be undefined: input2 is then not
    //           built); labels.size() == N; workers >= 1, capacity >= 1.
    BatchPrefetcher(torch::Tensor set1, torch::Tensor set2, std::vector<int64_t> labels, const PkSampler& sampler,
                    AugmentOptions augment, uint64_t seed, int64_t cycle, int64_t first_iter, int64_t last_iter,
                    int workers = 2, int capacity = 4);
    // The same over chip sources (set2 null: input2 is not built); the workers read only the
    // chips of the batch they build.
    BatchPrefetcher(std::shared_ptr<const ChipSource> set1, std::shared_ptr<const ChipSource> set2,
                    std::vector<int64_t> labels, const PkSampler& sampler, AugmentOptions augment, uint64_t seed,
                    int64_t cycle, int64_t first_iter, int64_t last_iter, int workers = 2, int capacity = 4);
    ~BatchPrefetcher();
    BatchPrefetcher(const BatchPrefetcher&) = delete;
    BatchPrefetcher& operator=(const BatchPrefetcher&) = delete;

    // Blocks until the next iteration's batch is ready. throws std::out_of_range past last_iter,
    // or rethrows a worker's exception.
    TrainingBatch next();
    // Seconds next() has spent waiting for workers (the trainer's idle time).
    double wait_seconds() const { return wait_seconds_; }

private:
    TrainingBatch build(int64_t iter) const;
    void work();

    std::shared_ptr<const ChipSource> set1_, set2_;
    std::vector<int64_t> labels_;
    const PkSampler& sampler_;
    AugmentOptions augment_;
    uint64_t seed_;
    int64_t cycle_, next_build_, next_take_, last_;
    int capacity_;
    std::map<int64_t, TrainingBatch> ready_;
    std::exception_ptr error_;
    bool stop_ = false;
    double wait_seconds_ = 0.0;
    std::mutex mutex_;
    std::condition_variable cv_;
    std::vector<std::thread> threads_;
};

// Raw chip tensor files (for the learner-only build, where no image library is available):
// magic "FACHIPS1", int64 N, H, W, C (little-endian), then N*H*W*C uint8 bytes.
// throws std::runtime_error naming the file on I/O errors, bad magic or a short file.
void save_chips_file(const torch::Tensor& chips, const std::filesystem::path& path);
torch::Tensor load_chips_file(const std::filesystem::path& path);

}  // namespace faceadapt::learner
