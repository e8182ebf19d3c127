// DoorEmbedder: the door's embedding backend, chosen when faceadapt-door is linked (not by a
// macro in faceadapt_door_main.cpp, which is compiled once for both doors):
//   door_embedder_onnx.cpp      faceadapt-door: the package's ONNX model with OpenCV DNN, no libtorch;
//   door_embedder_libtorch.cpp  faceadapt-door-libtorch (bench only): the libtorch model file.
// Thread safety: embed() is const and may be called from several threads (both backends
// serialise internally).
#pragma once

#include <filesystem>
#include <memory>
#include <string_view>

#include <opencv2/core.hpp>

#include "faceadapt/publish/door_match.hpp"

namespace faceadapt::tools {

class DoorEmbedder {
public:
    // The package model format this backend runs (publish::kModelFormatOnnx or ...Libtorch).
    static std::string_view model_format();

    // Loads the installed model file and runs it on `threads` threads (>= 1).
    // Throws std::runtime_error (naming the file) when the model cannot be loaded.
    DoorEmbedder(const std::filesystem::path& model_file, int threads);
    ~DoorEmbedder();
    DoorEmbedder(const DoorEmbedder&) = delete;
    DoorEmbedder& operator=(const DoorEmbedder&) = delete;

    // The embedding of one aligned 150x150 RGB chip (CV_8UC3).
    publish::Embedding embed(const cv::Mat& rgb_chip) const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace faceadapt::tools
