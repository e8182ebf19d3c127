// Chip sources and the content fingerprint; see chip_source.hpp.
#include "faceadapt/learner/chip_source.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include <ATen/ops/empty.h>

namespace faceadapt::learner {
namespace {

constexpr int64_t kHeaderBytes = 8 + 4 * 8;  // "FACHIPS1", N, H, W, C

std::runtime_error io_error(const std::string& what, const std::filesystem::path& path) {
    return std::runtime_error(what + " " + path.string() + ": " + std::strerror(errno));
}

}  // namespace

TensorChips::TensorChips(const at::Tensor& chips) {
    if (!chips.defined() || chips.dim() != 4 || chips.size(3) != 3 || chips.scalar_type() != at::kByte ||
        !chips.device().is_cpu())
        throw std::invalid_argument("TensorChips: chips must be a CPU uint8 tensor [N,H,W,3]");
    chips_ = chips.contiguous();
}

int64_t TensorChips::size() const { return chips_.size(0); }
int TensorChips::height() const { return static_cast<int>(chips_.size(1)); }
int TensorChips::width() const { return static_cast<int>(chips_.size(2)); }

void TensorChips::read(int64_t i, uint8_t* dst) const {
    std::memcpy(dst, chips_.data_ptr<uint8_t>() + i * chip_bytes(), static_cast<size_t>(chip_bytes()));
}

at::Tensor TensorChips::read_range(int64_t begin, int64_t end) const { return chips_.slice(0, begin, end); }

ChipFile::ChipFile(const std::filesystem::path& path) : path_(path), fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
    if (!fd_.valid()) throw io_error("cannot open chips file", path);
    char header[kHeaderBytes];
    pread_all(reinterpret_cast<uint8_t*>(header), kHeaderBytes, 0);
    if (std::memcmp(header, "FACHIPS1", 8) != 0)
        throw std::runtime_error("chips file " + path.string() + ": bad magic (not a FACHIPS1 file)");
    int64_t dims[4];
    std::memcpy(dims, header + 8, sizeof dims);
    if (dims[0] < 0 || dims[1] < 1 || dims[2] < 1 || dims[3] != 3 || dims[1] > 4096 || dims[2] > 4096)
        throw std::runtime_error("chips file " + path.string() + ": bad header");
    n_ = dims[0];
    h_ = static_cast<int>(dims[1]);
    w_ = static_cast<int>(dims[2]);
    const off_t end = ::lseek(fd_.get(), 0, SEEK_END);
    if (end < 0) throw io_error("cannot seek in chips file", path);
    if (n_ > (end - kHeaderBytes) / std::max<int64_t>(1, chip_bytes()))
        throw std::runtime_error("chips file " + path.string() + ": truncated (header says " + std::to_string(n_) +
                                 " chips)");
}

void ChipFile::pread_all(uint8_t* dst, int64_t bytes, int64_t offset) const {
    while (bytes > 0) {
        const ssize_t got = ::pread(fd_.get(), dst, static_cast<size_t>(bytes), offset);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) throw io_error("cannot read chips file", path_);
        if (got == 0) throw std::runtime_error("chips file " + path_.string() + ": short read (truncated?)");
        dst += got;
        bytes -= got;
        offset += got;
    }
}

void ChipFile::read(int64_t i, uint8_t* dst) const {
    if (i < 0 || i >= n_) throw std::out_of_range("chips file " + path_.string() + ": chip index out of range");
    pread_all(dst, chip_bytes(), kHeaderBytes + i * chip_bytes());
}

at::Tensor ChipFile::read_range(int64_t begin, int64_t end) const {
    if (begin < 0 || end < begin || end > n_)
        throw std::out_of_range("chips file " + path_.string() + ": chip range out of range");
    auto t = at::empty({end - begin, h_, w_, 3}, at::kByte);
    pread_all(t.data_ptr<uint8_t>(), (end - begin) * chip_bytes(), kHeaderBytes + begin * chip_bytes());
    return t;
}

ChipFileWriter::ChipFileWriter(const std::filesystem::path& path, int height, int width)
    : path_(path), fd_(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)), h_(height), w_(width) {
    if (!fd_.valid()) throw io_error("cannot create chips file", path);
    if (height < 1 || width < 1 || height > 4096 || width > 4096)
        throw std::invalid_argument("ChipFileWriter: bad chip size for " + path.string());
    char header[kHeaderBytes];
    std::memcpy(header, "FACHIPS1", 8);
    const int64_t dims[4] = {0, height, width, 3};
    std::memcpy(header + 8, dims, sizeof dims);
    if (::pwrite(fd_.get(), header, kHeaderBytes, 0) != kHeaderBytes) throw io_error("cannot write chips file", path);
}

void ChipFileWriter::append(const uint8_t* chips, int64_t count) {
    if (!fd_.valid()) throw std::logic_error("ChipFileWriter: append after finish for " + path_.string());
    const int64_t chip = int64_t{h_} * w_ * 3;
    int64_t bytes = count * chip, offset = kHeaderBytes + n_ * chip;
    while (bytes > 0) {
        const ssize_t put = ::pwrite(fd_.get(), chips, static_cast<size_t>(bytes), offset);
        if (put < 0 && errno == EINTR) continue;
        if (put <= 0) throw io_error("cannot write chips file", path_);
        chips += put;
        bytes -= put;
        offset += put;
    }
    n_ += count;
}

void ChipFileWriter::finish() {
    if (!fd_.valid()) return;
    if (::pwrite(fd_.get(), &n_, 8, 8) != 8) throw io_error("cannot write chips file", path_);
    fd_.reset();
}

uint64_t content_fingerprint(const ChipSource& chips) {
    // Not a cryptographic hash: it tells a checkpoint's data set from another one. Each 8-byte
    // word goes through a multiply-rotate-multiply mix (as in xxHash's round), so any changed
    // byte changes the result; tails shorter than 8 bytes are zero-padded.
    constexpr uint64_t k1 = 0x9E3779B185EBCA87ull, k2 = 0xC2B2AE3D27D4EB4Full;
    auto round = [&](uint64_t h, uint64_t w) {
        h ^= w * k2;
        h = (h << 31) | (h >> 33);
        return h * k1;
    };
    uint64_t h = round(round(round(0x27D4EB2F165667C5ull, static_cast<uint64_t>(chips.size())),
                             static_cast<uint64_t>(chips.height())),
                       static_cast<uint64_t>(chips.width()));
    constexpr int64_t kBlock = 64;
    for (int64_t b = 0; b < chips.size(); b += kBlock) {
        const auto block = chips.read_range(b, std::min(chips.size(), b + kBlock)).contiguous();
        const auto* p = block.data_ptr<uint8_t>();
        const auto bytes = static_cast<size_t>(block.numel());
        size_t i = 0;
        for (; i + 8 <= bytes; i += 8) {
            uint64_t w;
            std::memcpy(&w, p + i, 8);
            h = round(h, w);
        }
        if (i < bytes) {
            uint64_t w = 0;
            std::memcpy(&w, p + i, bytes - i);
            h = round(h, w);
        }
    }
    h ^= h >> 33;
    h *= k2;
    return h ^ (h >> 29);
}

}  // namespace faceadapt::learner
