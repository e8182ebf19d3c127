// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320, as zlib's crc32) of a byte range.
//
// Hand-written (a 256-entry table) rather than zlib's: the learner-only build (libtorch alone,
// for GPU machines) must not need zlib's headers, and the model file is its only user.
// THREAD SAFETY
//   Pure function (the table is a function-local static, initialised once).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace faceadapt::common {

// Continues `crc` (0 to start) over `bytes`: crc32(b, crc32(a)) == crc32(a + b).
std::uint32_t crc32(std::string_view bytes, std::uint32_t crc = 0);

}  // namespace faceadapt::common
