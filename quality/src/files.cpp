#include "files.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <random>
#include <stdexcept>
#include <vector>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <spdlog/fmt/fmt.h>

namespace faceadapt::quality::files {
namespace fs = std::filesystem;

namespace {
// RAII over a POSIX file descriptor.
class Fd {
public:
    explicit Fd(int fd) : fd_(fd) {}
    ~Fd() { if (fd_ >= 0) ::close(fd_); }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    int get() const { return fd_; }
    int release() { int f = fd_; fd_ = -1; return f; }
private:
    int fd_;
};

std::runtime_error io_error(const std::string& what, const fs::path& file) {
    return std::runtime_error(fmt::format("{}: {}: {}", file.string(), what, std::strerror(errno)));
}
}  // namespace

void sync_directory(const fs::path& dir) {
    Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fd.get() >= 0) ::fsync(fd.get());
}

std::int64_t write_png_atomic(const cv::Mat& rgb, const fs::path& target, bool do_fsync) {
    if (rgb.empty()) throw std::invalid_argument(target.string() + ": empty image");
    cv::Mat bgr;
    if (rgb.channels() == 3) cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
    else bgr = rgb;
    std::vector<unsigned char> png;
    if (!cv::imencode(".png", bgr, png, {cv::IMWRITE_PNG_COMPRESSION, 1}))
        throw std::runtime_error(target.string() + ": PNG encoding failed");
    const fs::path temp = fs::path(target.string() + kTempSuffix);
    {
        Fd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
        if (fd.get() < 0) throw io_error("cannot create", temp);
        std::size_t done = 0;
        while (done < png.size()) {
            const ssize_t n = ::write(fd.get(), png.data() + done, png.size() - done);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                auto err = io_error("write failed", temp);
                ::unlink(temp.c_str());
                throw err;
            }
            done += static_cast<std::size_t>(n);
        }
        if (do_fsync && ::fsync(fd.get()) != 0) {
            auto err = io_error("fsync failed", temp);
            ::unlink(temp.c_str());
            throw err;
        }
        if (::close(fd.release()) != 0) {
            auto err = io_error("close failed", temp);
            ::unlink(temp.c_str());
            throw err;
        }
    }
    if (::rename(temp.c_str(), target.c_str()) != 0) {
        auto err = io_error("rename failed", target);
        ::unlink(temp.c_str());
        throw err;
    }
    if (do_fsync) sync_directory(target.parent_path());
    return static_cast<std::int64_t>(png.size());
}

std::optional<cv::Mat> read_rgb(const fs::path& file) {
    std::error_code ec;
    if (!fs::is_regular_file(file, ec)) return std::nullopt;
    cv::Mat bgr;
    try {
        bgr = cv::imread(file.string(), cv::IMREAD_COLOR);
    } catch (const cv::Exception&) {
        return std::nullopt;
    }
    if (bgr.empty()) return std::nullopt;
    cv::Mat rgb;
    cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
    return rgb;
}

fs::path quarantine(const fs::path& file, const fs::path& quarantine_dir) {
    std::error_code ec;
    fs::create_directories(quarantine_dir, ec);
    const fs::path target = quarantine_dir / (unique_token() + "-" + file.filename().string());
    fs::rename(file, target, ec);
    if (ec) return {};
    sync_directory(quarantine_dir);
    return target;
}

std::string unique_token() {
    static std::atomic<std::uint64_t> counter{0};
    static const std::uint64_t nonce = std::random_device{}();
    return fmt::format("{:x}{:x}{:x}", static_cast<unsigned>(::getpid()), counter.fetch_add(1),
                       nonce & 0xffffff);
}

}  // namespace faceadapt::quality::files
