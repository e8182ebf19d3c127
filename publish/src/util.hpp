// Internal helpers of faceadapt_publish: hex (libsodium), SHA-256, whole-file I/O, durable writes.
// Not installed; nothing outside publish/src includes this.
#pragma once

#include <sodium.h>

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "faceadapt/common/durable_file.hpp"
#include "faceadapt/common/time.hpp"

namespace faceadapt::publish::detail {

// Initialises libsodium once (thread-safe); throws std::runtime_error when it cannot.
void ensure_sodium();

std::string to_hex(std::span<const std::uint8_t> bytes);
// throws std::invalid_argument naming `what` when `hex` is not even-length lowercase/uppercase hex.
std::vector<std::uint8_t> from_hex(std::string_view hex, const std::string& what);

// Incremental SHA-256 (libsodium).
class Sha256 {
public:
    Sha256();
    void update(std::string_view bytes);
    std::string hex();  // finalises; call once
private:
    crypto_hash_sha256_state state_{};
};
std::string sha256_hex(std::string_view bytes);

// Whole-file I/O and the crash-safe write come from common/durable_file.hpp.
using common::fsync_path;
using common::read_file;
// Staging data that is re-verified before use: atomic, not fsync'ed.
inline void write_file(const std::filesystem::path& file, std::string_view bytes) {
    common::write_file_atomic(file, bytes, {.fsync = false});
}
// temp + write + fsync + rename + fsync(folder); `mode` applies before any byte is written
// (0600 keys are never readable by others).
inline void write_file_durable(const std::filesystem::path& file, std::string_view bytes,
                               unsigned mode = 0644) {
    common::write_file_atomic(file, bytes, {.fsync = true, .mode = mode});
}

// "2026-11-27T01:02:03Z"
using common::utc_timestamp;

}  // namespace faceadapt::publish::detail
