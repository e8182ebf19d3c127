// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320) of a byte range: zlib's crc32_z, the
// project's one CRC-32 (zlib is there in every build, the learner-only one included: libtorch
// needs it). Kept as a function here so callers take string_view and need no zlib header.
// THREAD SAFETY
//   Pure function.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace faceadapt::common {

// Continues `crc` (0 to start) over `bytes`: crc32(b, crc32(a)) == crc32(a + b).
std::uint32_t crc32(std::string_view bytes, std::uint32_t crc = 0);

}  // namespace faceadapt::common
