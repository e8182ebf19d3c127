// Internal: checks that a package's model part is a well-formed file of the format and
// architecture its manifest names, without loading it (no torch here).
//
// WHAT THIS REPRESENTS
//   A streaming check over the model part's bytes (they go to disk chunk by chunk while a door
//   installs). Known formats: "faceadapt-model v1" (docs/model-format.md; the bare
//   "faceadapt-model" of earlier manifests is read as v1): magic, format version, metadata JSON
//   naming the manifest's architecture and input size, lengths that add up, the CRC-32.
//   "onnx" (faceadapt/onnx/face_graph.hpp's export): a protobuf ModelProto whose top-level fields
//   before the graph (within the first ~1 MiB) give IR version, the default-domain opset 11 and
//   the metadata_props faceadapt.architecture / input_size / embedding_dim / weights, which must
//   match the manifest, and whose graph is the last field and ends exactly at the part's end.
//   (The graph's nodes are not interpreted here: the door's runtime loads them.)
//   A new format adds a case to known_model_format() and to finish().
// THREAD SAFETY
//   One object per check, one thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "faceadapt/publish/package.hpp"

namespace faceadapt::publish::detail {

// true when this build can check model parts of `model_format`.
bool known_model_format(std::string_view model_format);

class ModelPartCheck {
public:
    // throws PackageError when architecture.model_format is not a known format.
    explicit ModelPartCheck(const ArchitectureSpec& architecture);
    void update(std::string_view bytes);  // the next bytes of the model part, in order
    // throws PackageError("model part: ...") naming what does not match.
    void finish();
private:
    ArchitectureSpec arch_;
    std::string head_;          // the first bytes (header + metadata), up to kMaxHead
    std::string tail_;          // the last <= 4 bytes seen (the CRC once finished)
    std::uint32_t crc_ = 0;     // CRC-32 of everything before tail_
    std::uint64_t size_ = 0;
};

}  // namespace faceadapt::publish::detail
