// Embedder: batched inference of a face model on aligned chips (torch-free header).
//
// WHAT THIS REPRESENTS
//   A loaded FaceResNet (a model file, or the pretrained source model) on a device, turning
//   150x150 RGB chips into raw 128-D embeddings (same as FaceResNet::forward: NOT L2-normalised;
//   compare with euclidean_distance, 0.6 = dlib's same-person threshold for the source model).
//   Runs under torch::InferenceMode in batches of `batch`; on CPU it uses every core of the
//   machine (torch::set_num_threads(hardware_concurrency) at construction, a process-wide
//   setting) and channels-last memory format where measured faster.
// THREAD SAFETY
//   embed() is const and may be called from several threads; calls are serialised internally
//   (one forward at a time keeps the intra-op thread pool from being oversubscribed).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "faceadapt/learner/embedding.hpp"
#include "faceadapt/learner/model_metadata.hpp"

#ifdef FACEADAPT_HAVE_OPENCV
#include <opencv2/core.hpp>
#endif

namespace faceadapt::learner {

class Embedder {
public:
    // requires: model_file is a faceadapt model file, or empty for the source model
    //           (load_source_model(), i.e. default_weights_dir()); device is "cpu", "cuda" or
    //           "cuda:N"; batch >= 1.
    // throws:   std::runtime_error naming the file when the model cannot be loaded;
    //           std::invalid_argument for a bad device string or batch, or CUDA unavailable.
    explicit Embedder(const std::filesystem::path& model_file_or_empty_for_source = {},
                      const std::string& device = "cpu", int batch = 64);
    ~Embedder();
    Embedder(Embedder&&) noexcept;
    Embedder& operator=(Embedder&&) noexcept;

#ifdef FACEADAPT_HAVE_OPENCV
    // requires: each chip is 150x150 CV_8UC3 in RGB order (ingest::AlignedFace::chip).
    // ensures:  result[i] is the embedding of chips[i].
    // throws:   std::invalid_argument naming the index of a chip of the wrong size/type.
    std::vector<Embedding> embed(const std::vector<cv::Mat>& rgb_chips_150) const;
#endif

    // requires: rgb points to `count` chips of 150*150*3 bytes each, back to back, row-major
    //           RGB (NHWC uint8).
    // ensures:  result[i] is the embedding of chip i.
    std::vector<Embedding> embed(const std::uint8_t* rgb, std::size_t count) const;

    // The metadata of the loaded model (for the source model: version 0, provenance naming the
    // weight files).
    const ModelMetadata& metadata() const;
    std::string device() const;
    int batch() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace faceadapt::learner
