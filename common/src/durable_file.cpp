#include "faceadapt/common/durable_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <system_error>

namespace faceadapt::common {
namespace fs = std::filesystem;

namespace {
// A std::system_error (a std::runtime_error) so that callers can tell a full disk (ENOSPC)
// or another transient fault from bad data by code(); what() reads "<file>: <what>: <errno text>".
[[noreturn]] void throw_errno(const std::string& what, const fs::path& file) {
    throw std::system_error(errno, std::generic_category(), file.string() + ": " + what);
}

void write_all(int fd, std::string_view bytes, const fs::path& file) {
    while (!bytes.empty()) {
        const ssize_t n = ::write(fd, bytes.data(), bytes.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            throw_errno("write failed", file);
        }
        bytes.remove_prefix(static_cast<std::size_t>(n));
    }
}
}  // namespace

void UniqueFd::reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
}

std::string unique_token() {
    static std::atomic<std::uint64_t> counter{0};
    static const std::uint64_t nonce = std::random_device{}();
    std::ostringstream out;
    out << std::hex << ::getpid() << '-' << counter.fetch_add(1) << '-' << (nonce & 0xffffff);
    return out.str();
}

void write_file_atomic(const fs::path& target, std::string_view bytes,
                       const AtomicWriteOptions& options) {
    const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
    std::string name = ".";
    name += target.filename().string();
    name += '.';
    name += unique_token();
    name += kTempSuffix;
    const fs::path temp = dir / name;
    try {
        UniqueFd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, options.mode));
        if (!fd.valid()) throw_errno("cannot create", temp);
        write_all(fd.get(), bytes, temp);
        if (options.fsync && ::fsync(fd.get()) != 0) throw_errno("fsync failed", temp);
        if (::close(fd.release()) != 0) throw_errno("close failed", temp);
        if (::rename(temp.c_str(), target.c_str()) != 0) throw_errno("cannot rename into place", target);
    } catch (...) {
        ::unlink(temp.c_str());
        throw;
    }
    if (options.fsync) fsync_path(dir);
}

std::string read_file(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw_errno("cannot open", file);
    std::ostringstream out;
    out << in.rdbuf();
    if (in.bad()) throw std::runtime_error(file.string() + ": read failed");
    return std::move(out).str();
}

void fsync_path(const fs::path& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) throw_errno("cannot open", path);
    if (::fsync(fd.get()) != 0) throw_errno("fsync failed", path);
}

void sync_directory(const fs::path& dir) noexcept {
    UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fd.valid()) ::fsync(fd.get());
}

}  // namespace faceadapt::common
