// Internal helpers of faceadapt_publish: hex (libsodium), SHA-256 (OpenSSL), whole-file I/O, durable writes.
// Not installed; nothing outside publish/src includes this.
#pragma once

#include <sodium.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/evp.h>

#include "faceadapt/common/durable_file.hpp"
#include "faceadapt/common/time.hpp"

namespace faceadapt::publish::detail {

// Initialises libsodium once (thread-safe); throws std::runtime_error when it cannot.
void ensure_sodium();

std::string to_hex(std::span<const std::uint8_t> bytes);
// throws std::invalid_argument naming `what` when `hex` is not even-length lowercase/uppercase hex.
std::vector<std::uint8_t> from_hex(std::string_view hex, const std::string& what);

// Incremental SHA-256. OpenSSL's libcrypto, not libsodium's crypto_hash_sha256: libsodium's is
// portable C (275 MB/s here), OpenSSL's uses the CPU's SHA extensions (1.44 GB/s, `openssl speed
// -evp sha256`), and a door hashes every byte of a package more than once (chunk on receipt, payload
// and part on install, part again on load); with 100 doors on one box that was a third of all CPU
// (bench_publish, perf). libcrypto is on every machine that has Paho (its async client links it).
// One object per hash; not thread-safe. Throws std::runtime_error when OpenSSL cannot set up a digest.
class Sha256 {
public:
    Sha256();
    void update(std::string_view bytes);
    std::string hex();  // finalises; call once
private:
    struct Free {
        void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
    };
    std::unique_ptr<EVP_MD_CTX, Free> ctx_;
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

// Rate limit for one kind of log line on an error path: up to `burst` lines per `window`,
// then silence until the window ends; the next line allowed reports how many were held back.
// Not thread-safe (each owner uses it from one thread).
class LogThrottle {
public:
    explicit LogThrottle(std::chrono::milliseconds window = std::chrono::seconds(10), int burst = 5)
        : window_(window), burst_(burst) {}
    // true when a line may be written now; then `suppressed` is the number held back since the
    // last line written (0 when none).
    bool allow(std::uint64_t& suppressed) {
        auto now = std::chrono::steady_clock::now();
        if (now - window_start_ >= window_) {
            window_start_ = now;
            used_ = 0;
        }
        if (used_ >= burst_) {
            ++held_;
            return false;
        }
        ++used_;
        suppressed = held_;
        held_ = 0;
        return true;
    }
private:
    std::chrono::milliseconds window_;
    int burst_;
    int used_ = 0;
    std::uint64_t held_ = 0;
    std::chrono::steady_clock::time_point window_start_{};
};

}  // namespace faceadapt::publish::detail
