// Import of the pretrained source model from the face-api (npm @vladmandic/face-api 1.7.15)
// weight files: face_recognition_model-weights_manifest.json + face_recognition_model.bin.
//
// WHAT THIS REPRESENTS
//   The manifest lists tensors in order (name, shape HWIO / [C] / [256,128], dtype, optional
//   uint8 quantisation {scale, min}); the .bin holds them back to back. Quantised tensors are
//   dequantised as q*scale + min, raw ones are little-endian float32. Conv filters are transposed
//   HWIO -> OIHW, the fc [256,128] becomes the Linear weight [128,256]. The manifest is read with
//   a small built-in JSON reader so that the learner-only build needs libtorch alone.
// THREAD SAFETY
//   Free functions without shared state: safe to call from several threads.
#pragma once

#include <filesystem>

#include "faceadapt/learner/face_resnet.hpp"

namespace faceadapt::learner {

// The folder scripts/fetch-weights fills (holding model/...): $FACEADAPT_WEIGHTS_DIR if set,
// else ~/.cache/faceadapt/face-api-1.7.15 if it exists, else /usr/share/faceadapt/face-api-1.7.15.
std::filesystem::path default_weights_dir();

// requires: model_dir holds face_recognition_model-weights_manifest.json and the .bin it names;
//           `model_dir` may be either the folder with those files or its parent (with model/).
// ensures:  returns a FaceResNet (num_classes 0, eval mode, CPU) carrying the imported weights.
// throws:   std::runtime_error naming the file when a file is missing or unreadable, the manifest
//           is not valid JSON or lacks/misnames a tensor, a shape differs from the network's,
//           or the .bin size differs from the byte count the manifest implies (short or long).
FaceResNet import_face_api_weights(const std::filesystem::path& model_dir);

// import_face_api_weights(default_weights_dir()).
FaceResNet load_source_model();

}  // namespace faceadapt::learner
