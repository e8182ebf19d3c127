#include "util.hpp"

#include <chrono>
#include <ctime>
#include <stdexcept>

namespace faceadapt::publish::detail {

void ensure_sodium() {
    static const int rc = sodium_init();
    if (rc < 0) throw std::runtime_error("libsodium failed to initialise");
}

std::string to_hex(std::span<const std::uint8_t> bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (auto b : bytes) {
        out.push_back(digits[b >> 4]);
        out.push_back(digits[b & 15]);
    }
    return out;
}

std::vector<std::uint8_t> from_hex(std::string_view hex, const std::string& what) {
    auto nibble = [&](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        throw std::invalid_argument(what + ": not a hex string");
    };
    if (hex.size() % 2 != 0) throw std::invalid_argument(what + ": odd number of hex digits");
    std::vector<std::uint8_t> out(hex.size() / 2);
    for (size_t i = 0; i < out.size(); ++i)
        out[i] = static_cast<std::uint8_t>(nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]));
    return out;
}

Sha256::Sha256() {
    ensure_sodium();
    crypto_hash_sha256_init(&state_);
}

void Sha256::update(std::string_view bytes) {
    crypto_hash_sha256_update(&state_, reinterpret_cast<const unsigned char*>(bytes.data()),
                              bytes.size());
}

std::string Sha256::hex() {
    std::uint8_t digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final(&state_, digest);
    return to_hex(digest);
}

std::string sha256_hex(std::string_view bytes) {
    Sha256 h;
    h.update(bytes);
    return h.hex();
}

std::string utc_now_iso8601() {
    auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    std::tm tm{};
    ::gmtime_r(&now, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

}  // namespace faceadapt::publish::detail
