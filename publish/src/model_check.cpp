#include "model_check.hpp"

#include <zlib.h>

#include <cstring>

#include <nlohmann/json.hpp>

#include "faceadapt/publish/text.hpp"

namespace faceadapt::publish::detail {

namespace {
constexpr std::string_view kModelMagic = "FADAPTMD";
constexpr std::size_t kHeader = 16;
constexpr std::size_t kMaxMetadata = 1u << 20;  // a model file's metadata is a few KB
constexpr std::size_t kMaxHead = kHeader + kMaxMetadata + 8;

std::uint64_t le(std::string_view b, std::size_t at, int n) {
    std::uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = v << 8 | static_cast<std::uint8_t>(b[at + static_cast<std::size_t>(i)]);
    return v;
}

PackageError bad(const std::string& what) { return PackageError("model part: " + what); }
}  // namespace

bool known_model_format(std::string_view f) { return f == "faceadapt-model v1" || f == "faceadapt-model"; }

ModelPartCheck::ModelPartCheck(const ArchitectureSpec& architecture) : arch_(architecture) {
    if (!known_model_format(arch_.model_format))
        throw PackageError("manifest: architecture.model_format \"" + printable(arch_.model_format, 60) +
                           "\" is not a model format this door knows (faceadapt-model v1)");
}

void ModelPartCheck::update(std::string_view bytes) {
    size_ += bytes.size();
    if (head_.size() < kMaxHead) head_.append(bytes.substr(0, kMaxHead - head_.size()));
    // Everything but the last 4 bytes goes into the CRC; the last 4 are kept in tail_.
    std::string joined = tail_;
    if (bytes.size() >= 4) {
        crc_ = static_cast<std::uint32_t>(::crc32(crc_, reinterpret_cast<const Bytef*>(tail_.data()), static_cast<uInt>(tail_.size())));
        auto body = bytes.substr(0, bytes.size() - 4);
        for (std::size_t off = 0; off < body.size(); off += 1u << 30) {
            auto part = body.substr(off, 1u << 30);
            crc_ = static_cast<std::uint32_t>(::crc32(crc_, reinterpret_cast<const Bytef*>(part.data()), static_cast<uInt>(part.size())));
        }
        tail_ = std::string(bytes.substr(bytes.size() - 4));
        return;
    }
    joined.append(bytes);
    auto spill = joined.size() > 4 ? joined.size() - 4 : 0;
    crc_ = static_cast<std::uint32_t>(::crc32(crc_, reinterpret_cast<const Bytef*>(joined.data()), static_cast<uInt>(spill)));
    tail_ = joined.substr(spill);
}

void ModelPartCheck::finish() {
    if (head_.size() < kHeader || std::string_view(head_).substr(0, 8) != kModelMagic)
        throw bad("not a faceadapt model file (bad magic), but the manifest says " + printable(arch_.model_format, 60));
    auto version = le(head_, 8, 4);
    if (version != 1) throw bad("model file format version " + std::to_string(version) + ", the manifest says " + printable(arch_.model_format, 60));
    auto m = le(head_, 12, 4);
    if (m > kMaxMetadata || head_.size() < kHeader + m + 8) throw bad("truncated or corrupt (metadata length " + std::to_string(m) + ")");
    auto w = le(head_, kHeader + m, 8);
    if (size_ != kHeader + m + 8 + w + 4)
        throw bad("truncated or corrupt (" + std::to_string(size_) + " bytes, its lengths say " + std::to_string(kHeader + m + 8 + w + 4) + ")");
    if (static_cast<std::uint32_t>(le(tail_, 0, 4)) != crc_) throw bad("CRC-32 mismatch (corrupt model file)");
    nlohmann::json meta;
    try {
        meta = nlohmann::json::parse(std::string_view(head_).substr(kHeader, m));
        if (meta.value("format", "") != "faceadapt-model") throw bad("metadata format is not \"faceadapt-model\"");
        auto architecture = meta.at("architecture").get<std::string>();
        if (architecture != arch_.name)
            throw bad("the model file's architecture \"" + printable(architecture, 60) + "\" is not the manifest's \"" +
                      printable(arch_.name, 60) + "\"");
        auto size = meta.at("input").at("size").get<int>();
        if (size != arch_.input_width || size != arch_.input_height)
            throw bad("the model file's input size " + std::to_string(size) + " is not the manifest's " +
                      std::to_string(arch_.input_width) + "x" + std::to_string(arch_.input_height));
        if (meta.contains("embedding_dim") && meta["embedding_dim"].get<int>() != arch_.embedding_dim)
            throw bad("the model file's embedding_dim is not the manifest's " + std::to_string(arch_.embedding_dim));
    } catch (const nlohmann::json::exception& e) {
        throw bad(std::string("metadata: ") + printable(e.what()));
    }
}

}  // namespace faceadapt::publish::detail
