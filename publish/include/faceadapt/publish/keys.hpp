// Ed25519 signing keys for model packages (libsodium).
//
// WHAT THIS REPRESENTS
//   SigningKey: the site's private key (the daemon or an operator signs manifests with it).
//   PublicKey: the 32-byte key a door controller pins to accept only this site's packages.
//   On disk (docs/package-format.md, "Keys"), a key folder holds
//     signing.key  64 lowercase hex digits (the 32-byte Ed25519 seed) + "\n", mode 0600
//     signing.pub  64 lowercase hex digits (the 32-byte public key) + "\n", mode 0644
// THREAD SAFETY
//   Both are immutable after construction; const members may be called from many threads.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>

namespace faceadapt::publish {

inline constexpr std::size_t kSignatureBytes = 64;
using Signature = std::array<std::uint8_t, kSignatureBytes>;

struct PublicKey {
    std::array<std::uint8_t, 32> bytes{};

    std::string hex() const;
    // First 8 bytes of SHA-256(public key), hex: names the key in manifests and logs.
    std::string key_id() const;
    // requires: 64 hex digits (surrounding whitespace ignored). throws std::invalid_argument.
    static PublicKey from_hex(std::string_view hex);
    bool operator==(const PublicKey&) const = default;
};

// Reads a public key: `path` is a signing.pub file or a key folder holding one.
// throws std::runtime_error naming the file when it is missing or malformed.
PublicKey load_public_key(const std::filesystem::path& path);

// true when `signature` is a valid Ed25519 signature of exactly `message` by `key`.
bool verify_signature(const PublicKey& key, std::string_view message, std::span<const std::uint8_t> signature);

class SigningKey {
public:
    // A fresh random key pair.
    static SigningKey generate();
    // Reads <key_dir>/signing.key. throws std::runtime_error naming the file when it is
    // missing, malformed, or readable by group/others (it must be 0600 or stricter).
    static SigningKey load(const std::filesystem::path& key_dir);

    SigningKey(const SigningKey&) = default;
    SigningKey& operator=(const SigningKey&) = default;
    ~SigningKey();  // wipes the secret bytes

    // Writes signing.key (0600, durable) and signing.pub into `key_dir`, created 0700 if needed
    // whatever the umask. throws std::runtime_error when signing.key already exists there
    // (never overwrites a key).
    void save(const std::filesystem::path& key_dir) const;

    const PublicKey& public_key() const { return public_key_; }
    Signature sign(std::string_view message) const;

private:
    SigningKey() = default;
    std::array<std::uint8_t, 64> secret_{};  // libsodium form: seed || public key
    PublicKey public_key_;
};

}  // namespace faceadapt::publish
