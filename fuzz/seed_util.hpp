// Shared by the seed generators (make_seeds.cpp, C++20 with publish/; make_model_seeds.cpp,
// C++17 with libtorch): writing a seed file and building a model file around given weights.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include <zlib.h>

namespace faceadapt::fuzz {

inline void put_seed(const std::filesystem::path& out_dir, const std::string& target, const std::string& name,
                     const std::string& bytes) {
    const std::filesystem::path dir = out_dir / target;
    std::filesystem::create_directories(dir);
    std::ofstream(dir / name, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

template <typename T>
void put_le(std::string& out, T v) {
    for (std::size_t i = 0; i < sizeof(T); ++i) out += static_cast<char>((static_cast<std::uint64_t>(v) >> (8 * i)) & 0xFF);
}

// zlib's CRC-32, the one the model file format uses (common/crc32.hpp wraps the same call).
inline std::uint32_t crc32(const std::string& s) {
    return static_cast<std::uint32_t>(::crc32_z(0, reinterpret_cast<const Bytef*>(s.data()), s.size()));
}

// Metadata as learner/src/model_file.cpp writes it (docs/model-format.md).
inline const std::string kSeedMetadata =
    R"({"format":"faceadapt-model","format_version":1,"architecture":"dlib-resnet29",)"
    R"("input":{"size":150,"channels":"RGB"},"embedding_dim":128,"version":3,"parent_version":2,)"
    R"("created":"2026-12-01T00:00:00Z","network":{"num_classes":0,"embedding_dropout":0,"classifier_scale":30},)"
    R"("provenance":{"seed":1}})";

// A model file (magic, format version, metadata, weights, CRC-32 trailer) around `weights`.
inline std::string model_file(const std::string& metadata, const std::string& weights) {
    std::string bytes = "FADAPTMD";
    put_le<std::uint32_t>(bytes, 1);
    put_le<std::uint32_t>(bytes, static_cast<std::uint32_t>(metadata.size()));
    bytes += metadata;
    put_le<std::uint64_t>(bytes, weights.size());
    bytes += weights;
    put_le<std::uint32_t>(bytes, crc32(bytes));
    return bytes;
}

}  // namespace faceadapt::fuzz
