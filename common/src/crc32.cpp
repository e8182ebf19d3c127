#include "faceadapt/common/crc32.hpp"

#include <zlib.h>

namespace faceadapt::common {

std::uint32_t crc32(std::string_view bytes, std::uint32_t crc) {
    return static_cast<std::uint32_t>(
        ::crc32_z(crc, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<z_size_t>(bytes.size())));
}

}  // namespace faceadapt::common
