#include "faceadapt/publish/keys.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <stdexcept>
#include <system_error>

#include "util.hpp"

namespace faceadapt::publish {

namespace {
std::string trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return std::string(s);
}
}  // namespace

std::string PublicKey::hex() const { return detail::to_hex(bytes); }

std::string PublicKey::key_id() const {
    detail::ensure_sodium();
    std::uint8_t digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, bytes.data(), bytes.size());
    return detail::to_hex(std::span(digest, 8));
}

PublicKey PublicKey::from_hex(std::string_view hex) {
    auto raw = detail::from_hex(trim(hex), "public key");
    if (raw.size() != 32)
        throw std::invalid_argument("public key: expected 64 hex digits, got " + std::to_string(raw.size() * 2));
    PublicKey key;
    std::copy(raw.begin(), raw.end(), key.bytes.begin());
    return key;
}

PublicKey load_public_key(const std::filesystem::path& path) {
    auto file = std::filesystem::is_directory(path) ? path / "signing.pub" : path;
    try {
        return PublicKey::from_hex(detail::read_file(file));
    } catch (const std::invalid_argument& e) {
        throw std::runtime_error(file.string() + ": " + e.what());
    }
}

bool verify_signature(const PublicKey& key, std::string_view message, std::span<const std::uint8_t> signature) {
    detail::ensure_sodium();
    if (signature.size() != crypto_sign_BYTES) return false;
    return crypto_sign_verify_detached(signature.data(),
                                       reinterpret_cast<const unsigned char*>(message.data()),
                                       message.size(), key.bytes.data()) == 0;
}

SigningKey SigningKey::generate() {
    detail::ensure_sodium();
    SigningKey key;
    crypto_sign_keypair(key.public_key_.bytes.data(), key.secret_.data());
    return key;
}

SigningKey SigningKey::load(const std::filesystem::path& key_dir) {
    detail::ensure_sodium();
    auto file = key_dir / "signing.key";
    struct stat st {};
    if (::stat(file.c_str(), &st) != 0)
        throw std::runtime_error("signing key " + file.string() + " does not exist (create one with `faceadapt keygen --out " + key_dir.string() + "`)");
    if ((st.st_mode & 077) != 0)
        throw std::runtime_error("signing key " + file.string() + " is readable by group or others; chmod 600 it");
    auto text = detail::read_file(file);
    std::vector<std::uint8_t> seed;
    try {
        seed = detail::from_hex(trim(text), "signing key");
    } catch (const std::invalid_argument& e) {
        throw std::runtime_error(file.string() + ": " + e.what());
    }
    if (seed.size() != crypto_sign_SEEDBYTES)
        throw std::runtime_error(file.string() + ": expected 64 hex digits (an Ed25519 seed)");
    SigningKey key;
    crypto_sign_seed_keypair(key.public_key_.bytes.data(), key.secret_.data(), seed.data());
    sodium_memzero(seed.data(), seed.size());
    sodium_memzero(text.data(), text.size());
    return key;
}

SigningKey::~SigningKey() { sodium_memzero(secret_.data(), secret_.size()); }

void SigningKey::save(const std::filesystem::path& key_dir) const {
    // A key folder this creates is 0700 whatever the umask (mkdir's mode is masked, hence the
    // chmod); an existing folder is used as it is (signing.key itself is always 0600).
    if (key_dir.has_parent_path()) std::filesystem::create_directories(key_dir.parent_path());
    if (::mkdir(key_dir.c_str(), 0700) == 0) {
        if (::chmod(key_dir.c_str(), 0700) != 0)
            throw std::system_error(errno, std::generic_category(), "cannot chmod 0700 the key folder " + key_dir.string());
    } else if (errno != EEXIST) {
        throw std::system_error(errno, std::generic_category(), "cannot create the key folder " + key_dir.string());
    }
    auto key_file = key_dir / "signing.key";
    if (std::filesystem::exists(key_file))
        throw std::runtime_error("refusing to overwrite the existing signing key " + key_file.string());
    auto seed_hex = detail::to_hex(std::span(secret_.data(), crypto_sign_SEEDBYTES)) + "\n";
    detail::write_file_durable(key_file, seed_hex, 0600);
    sodium_memzero(seed_hex.data(), seed_hex.size());
    detail::write_file_durable(key_dir / "signing.pub", public_key_.hex() + "\n", 0644);
}

Signature SigningKey::sign(std::string_view message) const {
    Signature sig{};
    crypto_sign_detached(sig.data(), nullptr, reinterpret_cast<const unsigned char*>(message.data()),
                         message.size(), secret_.data());
    return sig;
}

}  // namespace faceadapt::publish
