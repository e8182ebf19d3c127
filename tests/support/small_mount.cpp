#include "small_mount.hpp"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>
#include <stdexcept>
#include <vector>

namespace faceadapt::test {
namespace fs = std::filesystem;

SmallMount::SmallMount(std::uint64_t size_kib) {
    std::random_device rd;
    path_ = fs::temp_directory_path() / ("faceadapt-mount-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    fs::create_directories(path_);
    const std::string options = "size=" + std::to_string(size_kib) + "k,mode=0755";
    options_ = options;
    if (::mount("tmpfs", path_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, options.c_str()) == 0) {
        mounted_ = true;
    } else {
        reason_ = "mount -t tmpfs -o " + options + " " + path_.string() + ": " + std::strerror(errno);
    }
}

SmallMount::~SmallMount() {
    std::error_code ec;
    if (mounted_ && ::umount2(path_.c_str(), MNT_DETACH) != 0) return;  // never remove_all a live mount
    fs::remove_all(path_, ec);
}

std::uint64_t SmallMount::fill() {
    const fs::path filler = path_ / "filler";
    const int fd = ::open(filler.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) throw std::runtime_error(filler.string() + ": cannot create: " + std::strerror(errno));
    std::vector<char> block(4096, 'x');
    std::uint64_t written = 0;
    std::size_t size = block.size();
    // Whole blocks first, then smaller writes down to one byte: 100% full, not "almost".
    while (size > 0) {
        const ssize_t n = ::write(fd, block.data(), size);
        if (n > 0) {
            written += static_cast<std::uint64_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno != ENOSPC) {
            const int err = errno;
            ::close(fd);
            throw std::runtime_error(filler.string() + ": write failed: " + std::strerror(err));
        }
        size /= 2;
    }
    ::fsync(fd);
    ::close(fd);
    return written;
}

void SmallMount::free() {
    std::error_code ec;
    fs::remove(path_ / "filler", ec);
}

void SmallMount::set_read_only(bool read_only) {
    const unsigned long flags = MS_REMOUNT | MS_NOSUID | MS_NODEV | (read_only ? MS_RDONLY : 0);
    if (::mount("tmpfs", path_.c_str(), "tmpfs", flags, options_.c_str()) != 0)
        throw std::runtime_error("remount " + path_.string() + (read_only ? " ro: " : " rw: ") + std::strerror(errno));
}

std::uint64_t SmallMount::available() const {
    struct statvfs st {};
    if (::statvfs(path_.c_str(), &st) != 0) return 0;
    return static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize;
}

}  // namespace faceadapt::test
