// ONNX export of a FaceResNet: the model doors run without libtorch (docs/door-integration.md).
//
// WHAT THIS REPRESENTS
//   The bridge from the libtorch network to faceadapt::onnx::write_face_resnet_onnx(): reads
//   each ConvAffine's conv weight/bias and affine scale/shift, folds the affine into the conv
//   (in double, rounded once to float) and writes the ONNX graph described in
//   faceadapt/onnx/face_graph.hpp (input "input" [N,3,150,150] RGB 0..255, normalisation in the
//   graph, output "embedding" [N,128]). The classifier is not exported (co-training only).
// THREAD SAFETY
//   Reads `net`'s parameters: do not train it concurrently.
#pragma once

#include <filesystem>
#include <string>

#include "faceadapt/learner/face_resnet.hpp"
#include "faceadapt/onnx/face_graph.hpp"

namespace faceadapt::learner {

// ensures: the folded weights of every conv layer and the fc, as CPU floats.
onnx::FaceResNetWeights folded_weights(FaceResNet& net);

// ensures: the serialised ONNX model of `net` (see onnx::write_face_resnet_onnx).
// throws:  std::invalid_argument when a parameter is not finite.
std::string export_onnx(FaceResNet& net, const onnx::ExportOptions& options = {});

// The daemon's and the CLI's call: the model file (empty = the pretrained source model) as ONNX
// bytes; options.model_version defaults to the file's version when left at 0.
// throws: std::runtime_error naming the model file when it cannot be loaded.
std::string export_model_file_onnx(const std::filesystem::path& model_file_or_empty_for_source,
                                   onnx::ExportOptions options = {});

}  // namespace faceadapt::learner
