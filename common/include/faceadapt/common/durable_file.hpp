// Durable file writes shared by every module that keeps state on disk (crop store, gallery,
// model files, model registry, door agent). Standard library and POSIX only, so that the
// learner-only build can use it too.
//
// WHAT THIS REPRESENTS
//   The one crash-safe write the project uses: a temp file in the target's folder, written,
//   fsync'ed, renamed over the target, then the folder fsync'ed. After a crash at any point the
//   target holds either its old bytes or the new ones, never a mix; the only debris is a temp
//   file whose name ends in kTempSuffix, which owners remove when they open their folder.
// THREAD SAFETY
//   Free functions; concurrent writes to different targets are safe. Concurrent writes to the
//   same target leave one of them in place (each uses its own unique temp file).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace faceadapt::common {

// Every temp file written by write_file_atomic ends with this.
inline constexpr std::string_view kTempSuffix = ".tmp";

// Owns a POSIX file descriptor; closes it on destruction.
class UniqueFd {
public:
    UniqueFd() = default;
    explicit UniqueFd(int fd) : fd_(fd) {}
    ~UniqueFd() { reset(); }
    UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
    UniqueFd& operator=(UniqueFd&& other) noexcept {
        if (this != &other) { reset(); fd_ = other.release(); }
        return *this;
    }
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    int get() const { return fd_; }
    bool valid() const { return fd_ >= 0; }
    int release() { int fd = fd_; fd_ = -1; return fd; }
    void reset();
private:
    int fd_ = -1;
};

struct AtomicWriteOptions {
    bool fsync = true;      // false: still atomic (rename), not durable; for scratch data
    unsigned mode = 0644;   // applied when the temp file is created, before any byte is written
};

// Writes `bytes` to `target` as described above.
// requires: target's folder exists.
// ensures:  target holds exactly `bytes`; no temp file is left behind, even on failure.
// throws:   std::system_error (errno in code()) naming the file and the errno text.
void write_file_atomic(const std::filesystem::path& target, std::string_view bytes,
                       const AtomicWriteOptions& options = {});

// Reads a whole file. throws std::runtime_error naming the file when it cannot be read.
std::string read_file(const std::filesystem::path& file);

// fsync of a file or a folder. throws std::runtime_error naming it on failure.
void fsync_path(const std::filesystem::path& path);

// fsync of a folder, ignoring errors (best effort after an unlink or a rename).
void sync_directory(const std::filesystem::path& dir) noexcept;

// A name fragment unique for this process and call: <pid hex>-<counter hex>-<random hex>.
std::string unique_token();

}  // namespace faceadapt::common
