#include "util.hpp"

#include <stdexcept>

namespace faceadapt::publish::detail {

void ensure_sodium() {
    static const int rc = sodium_init();
    if (rc < 0) throw std::runtime_error("libsodium failed to initialise");
}

std::string to_hex(std::span<const std::uint8_t> bytes) {
    std::string out(bytes.size() * 2 + 1, '\0');  // sodium_bin2hex writes a terminating NUL
    sodium_bin2hex(out.data(), out.size(), bytes.data(), bytes.size());
    out.pop_back();
    return out;
}

std::vector<std::uint8_t> from_hex(std::string_view hex, const std::string& what) {
    if (hex.size() % 2 != 0) throw std::invalid_argument(what + ": odd number of hex digits");
    std::vector<std::uint8_t> out(hex.size() / 2);
    // sodium_hex2bin's buffers are declared nonnull; an empty vector's data() may be null
    // (found by fuzz_door_messages: an envelope with "signature":"").
    if (hex.empty()) return out;
    std::size_t written = 0;
    const char* end = nullptr;
    // No characters ignored: a non-hex digit stops the parse before the end, which is refused.
    if (sodium_hex2bin(out.data(), out.size(), hex.data(), hex.size(), nullptr, &written, &end) != 0 ||
        written != out.size() || end != hex.data() + hex.size())
        throw std::invalid_argument(what + ": not a hex string");
    return out;
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
    if (!ctx_ || EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) != 1)
        throw std::runtime_error("sha256: OpenSSL cannot set up the digest");
}

void Sha256::update(std::string_view bytes) {
    if (EVP_DigestUpdate(ctx_.get(), bytes.data(), bytes.size()) != 1)
        throw std::runtime_error("sha256: OpenSSL digest update failed");
}

std::string Sha256::hex() {
    std::uint8_t digest[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_DigestFinal_ex(ctx_.get(), digest, &n) != 1 || n != 32)
        throw std::runtime_error("sha256: OpenSSL digest final failed");
    return to_hex(std::span<const std::uint8_t>(digest, n));
}

std::string sha256_hex(std::string_view bytes) {
    Sha256 h;
    h.update(bytes);
    return h.hex();
}

}  // namespace faceadapt::publish::detail
