// DnnEmbedder: the face embedding of an ONNX model run by OpenCV DNN (torch-free).
//
// WHAT THIS REPRESENTS
//   A model.onnx written by write_face_resnet_onnx() (or any graph with the same contract:
//   input float [N,3,150,150] RGB 0..255, output [N,128]) loaded into cv::dnn::Net on the CPU
//   (DNN_BACKEND_OPENCV, DNN_TARGET_CPU). FLOAT16 initializers are expanded to FLOAT before
//   OpenCV reads the file (OpenCV 4.6 cannot read FLOAT16 tensors). This is what the door runs
//   instead of learner::Embedder, which needs libtorch.
// THREAD SAFETY
//   embed() is const and may be called from several threads; calls are serialised internally
//   (cv::dnn::Net::forward is not reentrant). OpenCV's thread count is the caller's business
//   (cv::setNumThreads, process-wide).
#pragma once

#include <array>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <vector>

#include <opencv2/core.hpp>

namespace faceadapt::onnx {

using DnnEmbedding = std::array<float, 128>;

class DnnEmbedder {
public:
    // requires: onnx_file is at most 256 MiB.
    // throws:   std::runtime_error naming the file when it cannot be read, is not an ONNX model
    //           OpenCV can import, or its output for a test chip is not [1,128].
    explicit DnnEmbedder(const std::filesystem::path& onnx_file);
    ~DnnEmbedder();
    DnnEmbedder(DnnEmbedder&&) noexcept;
    DnnEmbedder& operator=(DnnEmbedder&&) noexcept;

    // requires: each chip is 150x150 CV_8UC3 in RGB order (ingest::AlignedFace::chip).
    // ensures:  result[i] is the raw embedding of chips[i] (batches of at most `batch`).
    // throws:   std::invalid_argument naming the index of a chip of the wrong size/type.
    std::vector<DnnEmbedding> embed(const std::vector<cv::Mat>& rgb_chips_150, std::size_t batch = 16) const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace faceadapt::onnx
