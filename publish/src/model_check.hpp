// Internal: checks that a package's model part is a well-formed file of the format and
// architecture its manifest names, without loading it (no torch here).
//
// WHAT THIS REPRESENTS
//   A streaming check over the model part's bytes (they go to disk chunk by chunk while a door
//   installs). Known formats: "faceadapt-model v1" (docs/model-format.md; the bare
//   "faceadapt-model" of earlier manifests is read as v1): magic, format version, metadata JSON
//   naming the manifest's architecture and input size, lengths that add up, the CRC-32.
//   A new format (e.g. ONNX) adds a case to known_model_format() and to finish().
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
