// Model files: the versioned on-disk form of a FaceResNet (format in docs/model-format.md).
//
// WHAT THIS REPRESENTS
//   One file = magic "FADAPTMD" + format version + metadata JSON (ModelMetadata) + the torch
//   archive of the parameters + a CRC-32 trailer over everything before it. The learner writes
//   it, the gate, the publisher and the door agent load it, on CPU or CUDA.
// THREAD SAFETY
//   Free functions; save_model reads `net` (do not train it concurrently).
#pragma once

#include <filesystem>

#include <torch/torch.h>

#include "faceadapt/learner/face_resnet.hpp"
#include "faceadapt/learner/model_metadata.hpp"

namespace faceadapt::learner {

// requires: meta.architecture == "dlib-resnet29", meta.input_size == 150; the parent folder of `path` exists.
// ensures:  writes the file atomically (temp file in the same folder + fsync + rename + fsync of
//           the folder); num_classes/dropout/scale are taken from `net`, `created` is set to now
//           when empty. Parameters are saved from CPU copies, whatever net's device.
// throws:   std::runtime_error naming the file on any I/O error (the temp file is removed) or
//           std::invalid_argument for bad metadata.
void save_model(FaceResNet& net, const ModelMetadata& meta, const std::filesystem::path& path);

struct LoadedModel {
    FaceResNet net{nullptr};
    ModelMetadata meta;
};

// ensures:  returns the network in eval mode on `device` with the stored options, and its metadata.
// throws:   std::runtime_error naming the file when it is missing, truncated, corrupt (CRC), its
//           torch archive is not one OutputArchive writes (detail::check_torch_archive: bounded
//           records, stored entries, sane pickles; checked before libtorch parses it), of an
//           unknown format version or architecture, or its tensors do not fit the network.
LoadedModel load_model(const std::filesystem::path& path, torch::Device device = torch::kCPU);

}  // namespace faceadapt::learner
