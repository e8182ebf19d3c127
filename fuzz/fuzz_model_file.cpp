// libFuzzer: the model file reader. The input is written to a file (the reader takes a path)
// and read twice: read_model_metadata (header + metadata JSON only), then load_model. For
// load_model the harness first rewrites the CRC-32 trailer to match, so that the metadata
// checks and the torch archive reader behind the checksum meet arbitrary bytes too (a file
// with a correct checksum is what a buggy or hostile writer produces).
#include <unistd.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "faceadapt/common/crc32.hpp"
#include "faceadapt/learner/model_file.hpp"
#include "faceadapt/learner/model_metadata.hpp"

namespace {

const std::filesystem::path& scratch() {
    static const std::filesystem::path p =
        std::filesystem::temp_directory_path() / ("faceadapt-fuzz-model-" + std::to_string(::getpid()) + ".bin");
    return p;
}

void write(const std::string& bytes) {
    std::ofstream out(scratch(), std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string bytes(reinterpret_cast<const char*>(data), size);
    write(bytes);
    try {
        (void)faceadapt::learner::read_model_metadata(scratch());
    } catch (const std::runtime_error&) {
    }
    if (bytes.size() >= 4) {
        const std::uint32_t crc = faceadapt::common::crc32(std::string_view(bytes).substr(0, bytes.size() - 4));
        for (int i = 0; i < 4; ++i) bytes[bytes.size() - 4 + i] = static_cast<char>((crc >> (8 * i)) & 0xFF);
        write(bytes);
        try {
            (void)faceadapt::learner::load_model(scratch());
        } catch (const std::exception&) {  // c10::Error from the archive reader is a std::exception
        }
    }
    return 0;
}
