// ModelMetadata: what a faceadapt model file says about itself (torch-free; see model_file.hpp
// and docs/model-format.md for the on-disk format).
//
// WHAT THIS REPRESENTS
//   The architecture and input spec a model file needs to be loaded, plus its lineage (version,
//   parent) and the training provenance and metrics as a JSON value (nlohmann::json, the one JSON
//   library of the project; the file's metadata block is written and read with it). Readable
//   without libtorch, so
//   the daemon, the gate and the door agent can list and check models cheaply.
// THREAD SAFETY
//   Plain value type; read_model_metadata is a free function without shared state.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

namespace faceadapt::learner {

inline constexpr uint32_t kModelFormatVersion = 1;
inline constexpr const char* kArchitectureResNet29 = "dlib-resnet29";

struct ModelMetadata {
    std::string architecture = kArchitectureResNet29;
    int input_size = 150;            // square RGB chip side
    int64_t version = 0;             // this model's version (0 = the imported source model)
    int64_t parent_version = -1;     // the model it was trained from; -1 = none
    std::string created;             // ISO-8601 UTC, e.g. "2026-11-27T01:02:03Z" (save_model fills it when empty)
    nlohmann::json provenance = nlohmann::json::object();  // training provenance + metrics (any JSON value)
    // Network options stored with the weights (filled by save_model from the network).
    int64_t num_classes = 0;
    double embedding_dropout = 0.0;
    double classifier_scale = 20.0;
};

// requires: path is a model file written by save_model.
// ensures:  returns its metadata; reads only the header and the metadata block (no tensors).
// throws:   std::runtime_error naming the file for a missing/short file, bad magic, an unknown
//           format version, malformed metadata JSON or an unknown architecture.
ModelMetadata read_model_metadata(const std::filesystem::path& path);

}  // namespace faceadapt::learner
