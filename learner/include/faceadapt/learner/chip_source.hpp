// Chip sources: where the co-trainer reads its training chips from, in memory or streamed from a
// file, and a content fingerprint of a set that copies nothing.
//
// WHAT THIS REPRESENTS
//   A ChipSource is a read-only, indexed set of N same-sized uint8 RGB chips [H,W,3].
//   - TensorChips holds them in a CPU tensor (what tests and small runs use).
//   - ChipFile reads them from a FACHIPS1 file (see training_data.hpp) with pread(), so a set of
//     any size costs only the chips being read at a time: the co-trainer's embedding passes read
//     `extract_batch` chips at a time and the batch workers P*K chips per batch. The file's bytes
//     stay in the kernel's page cache (reclaimable, not the process's resident set).
//   - ChipFileWriter appends chips to a new FACHIPS1 file (scratch data: no fsync) and patches
//     the count at finish().
//   content_fingerprint() hashes the chips' bytes in order, 64 chips at a time, so it never
//   holds more than that (the previous fingerprint made an int64 copy of the whole set, 8x its
//   size).
// THREAD SAFETY
//   ChipSource::read()/read_range() may be called from any number of threads at once.
//   ChipFileWriter is used from one thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>

#include <ATen/core/Tensor.h>

#include "faceadapt/common/durable_file.hpp"

namespace faceadapt::learner {

class ChipSource {
public:
    virtual ~ChipSource() = default;
    virtual int64_t size() const = 0;
    virtual int height() const = 0;
    virtual int width() const = 0;
    int64_t chip_bytes() const { return int64_t{height()} * width() * 3; }
    // requires: 0 <= i < size(); dst holds chip_bytes().
    // throws:   std::runtime_error naming the file on an I/O error or a short read.
    virtual void read(int64_t i, uint8_t* dst) const = 0;
    // Chips [begin, end) as a uint8 CPU tensor [end-begin, H, W, 3] (a view where the source is
    // a tensor, a fresh tensor otherwise). requires: 0 <= begin <= end <= size().
    virtual at::Tensor read_range(int64_t begin, int64_t end) const = 0;
};

class TensorChips final : public ChipSource {
public:
    // requires: chips uint8 [N,H,W,3] on CPU. throws std::invalid_argument otherwise.
    explicit TensorChips(const at::Tensor& chips);
    int64_t size() const override;
    int height() const override;
    int width() const override;
    void read(int64_t i, uint8_t* dst) const override;
    at::Tensor read_range(int64_t begin, int64_t end) const override;
    const at::Tensor& tensor() const { return chips_; }

private:
    at::Tensor chips_;
};

class ChipFile final : public ChipSource {
public:
    // Opens a FACHIPS1 file read-only. throws std::runtime_error naming the file when it cannot
    // be opened, has a bad header, or is shorter than its header says.
    explicit ChipFile(const std::filesystem::path& path);
    int64_t size() const override { return n_; }
    int height() const override { return h_; }
    int width() const override { return w_; }
    void read(int64_t i, uint8_t* dst) const override;
    at::Tensor read_range(int64_t begin, int64_t end) const override;
    const std::filesystem::path& path() const { return path_; }

private:
    void pread_all(uint8_t* dst, int64_t bytes, int64_t offset) const;
    std::filesystem::path path_;
    common::UniqueFd fd_;
    int64_t n_ = 0;
    int h_ = 0, w_ = 0;
};

class ChipFileWriter {
public:
    // Creates (truncates) `path` for chips of height x width. throws std::runtime_error naming it.
    ChipFileWriter(const std::filesystem::path& path, int height, int width);
    // Appends `count` chips (count * height * width * 3 bytes). throws std::runtime_error on a write error.
    void append(const uint8_t* chips, int64_t count);
    // Writes the final count into the header and closes. ensures: ChipFile(path) reads what was appended.
    void finish();
    int64_t count() const { return n_; }

private:
    std::filesystem::path path_;
    common::UniqueFd fd_;
    int h_, w_;
    int64_t n_ = 0;
};

// A 64-bit hash of every chip's bytes in order, and of N, H and W. Reads 64 chips at a time.
uint64_t content_fingerprint(const ChipSource& chips);

}  // namespace faceadapt::learner
