#include "util.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <fstream>
#include <random>
#include <stdexcept>

namespace faceadapt::publish::detail {

namespace {
[[noreturn]] void throw_errno(const std::string& what, const std::filesystem::path& file) {
    throw std::runtime_error(what + " " + file.string() + ": " + std::strerror(errno));
}

// Owns a POSIX file descriptor.
class Fd {
public:
    explicit Fd(int fd) : fd_(fd) {}
    ~Fd() { if (fd_ >= 0) ::close(fd_); }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    int get() const { return fd_; }
    int release() { int fd = fd_; fd_ = -1; return fd; }
private:
    int fd_;
};

void write_all(int fd, std::string_view bytes, const std::filesystem::path& file) {
    while (!bytes.empty()) {
        ssize_t n = ::write(fd, bytes.data(), bytes.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            throw_errno("cannot write", file);
        }
        bytes.remove_prefix(static_cast<size_t>(n));
    }
}
}  // namespace

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

std::string read_file(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open " + file.string() + ": " + std::strerror(errno));
    std::string out;
    in.seekg(0, std::ios::end);
    auto size = in.tellg();
    if (size < 0) throw std::runtime_error("cannot read " + file.string());
    out.resize(static_cast<size_t>(size));
    in.seekg(0);
    in.read(out.data(), static_cast<std::streamsize>(out.size()));
    if (!in) throw std::runtime_error("cannot read " + file.string());
    return out;
}

void write_file(const std::filesystem::path& file, std::string_view bytes) {
    Fd fd(::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (fd.get() < 0) throw_errno("cannot create", file);
    write_all(fd.get(), bytes, file);
    if (::close(fd.release()) != 0) throw_errno("cannot close", file);
}

void fsync_path(const std::filesystem::path& path) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) throw_errno("cannot open", path);
    if (::fsync(fd.get()) != 0) throw_errno("cannot fsync", path);
}

void write_file_durable(const std::filesystem::path& file, std::string_view bytes, unsigned mode) {
    auto dir = file.has_parent_path() ? file.parent_path() : std::filesystem::path(".");
    std::random_device rd;
    std::string name = ".";  // ".<name>.tmp-<random>" (built stepwise: GCC 12 -Wrestrict false positive)
    name += file.filename().string();
    name += ".tmp-";
    name += std::to_string(rd());
    auto tmp = dir / name;
    {
        Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
        if (fd.get() < 0) throw_errno("cannot create", tmp);
        try {
            write_all(fd.get(), bytes, tmp);
            if (::fsync(fd.get()) != 0) throw_errno("cannot fsync", tmp);
            if (::close(fd.release()) != 0) throw_errno("cannot close", tmp);
        } catch (...) {
            ::unlink(tmp.c_str());
            throw;
        }
    }
    if (::rename(tmp.c_str(), file.c_str()) != 0) {
        int saved = errno;
        ::unlink(tmp.c_str());
        errno = saved;
        throw_errno("cannot rename into", file);
    }
    fsync_path(dir);
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
