#include "model_check.hpp"

#include <zlib.h>

#include <cstring>
#include <map>

#include <nlohmann/json.hpp>

#include "faceadapt/onnx/face_graph.hpp"
#include "faceadapt/onnx/proto.hpp"
#include "faceadapt/common/text.hpp"
#include "json_integer.hpp"

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

bool is_onnx(std::string_view f) { return f == kModelFormatOnnx; }

// The "onnx" case of ModelPartCheck::finish (see model_check.hpp).
void check_onnx(std::string_view head, std::uint64_t size, const ArchitectureSpec& arch) {
    namespace proto = onnx::proto;
    std::size_t pos = 0;
    auto varint = [&]() -> std::uint64_t {
        std::uint64_t v = 0;
        for (int shift = 0; shift < 64; shift += 7) {
            if (pos >= head.size()) throw bad("ONNX: truncated before its graph");
            const auto b = static_cast<std::uint8_t>(head[pos++]);
            v |= std::uint64_t(b & 0x7f) << shift;
            if (!(b & 0x80)) return v;
        }
        throw bad("ONNX: a varint over 10 bytes");
    };
    std::uint64_t ir_version = 0;
    std::int64_t opset = -1;
    std::map<std::string, std::string> meta;
    bool graph = false;
    try {
        while (pos < head.size() && !graph) {
            const std::uint64_t tag = varint();
            const auto field = tag >> 3;
            switch (tag & 7) {
                case proto::kVarint: {
                    const auto v = varint();
                    if (field == 1) ir_version = v;
                    break;
                }
                case proto::kFixed64: pos += 8; break;
                case proto::kFixed32: pos += 4; break;
                case proto::kLengthDelimited: {
                    const std::uint64_t len = varint();
                    if (field == 7) {  // ModelProto.graph: the last field, to the end of the part
                        if (pos + len != size)
                            throw bad("ONNX: the graph does not end at the end of the model part (" + std::to_string(pos + len) +
                                      " of " + std::to_string(size) + " bytes)");
                        graph = true;
                        break;
                    }
                    if (len > head.size() - pos) throw bad("ONNX: field " + std::to_string(field) + " is truncated");
                    const std::string_view body = head.substr(pos, len);
                    pos += len;
                    proto::Field f;
                    if (field == 8) {  // OperatorSetIdProto {domain = 1, version = 2}
                        std::string_view domain;
                        std::int64_t version = -1;
                        for (proto::Reader r(body); r.next(f);) {
                            if (f.number == 1 && f.type == proto::kLengthDelimited) domain = f.bytes;
                            if (f.number == 2 && f.type == proto::kVarint) version = static_cast<std::int64_t>(f.value);
                        }
                        if (domain.empty() || domain == "ai.onnx") opset = version;
                    } else if (field == 14) {  // StringStringEntryProto {key = 1, value = 2}
                        std::string key, value;
                        for (proto::Reader r(body); r.next(f);) {
                            if (f.number == 1 && f.type == proto::kLengthDelimited) key = f.bytes;
                            if (f.number == 2 && f.type == proto::kLengthDelimited) value = f.bytes;
                        }
                        if (meta.size() < 64) meta[key] = value;
                    }
                    break;
                }
                default: throw bad("ONNX: wire type " + std::to_string(tag & 7) + " is not a ModelProto's");
            }
        }
    } catch (const proto::ProtoError& e) {
        throw bad(std::string("ONNX: ") + e.what());
    }
    if (!graph) throw bad("ONNX: no graph in the model part's first " + std::to_string(head.size()) + " bytes (not a faceadapt export)");
    if (ir_version < 3) throw bad("ONNX: ir_version " + std::to_string(ir_version) + " (not a faceadapt export)");
    if (opset != onnx::kOpset)
        throw bad("ONNX: default-domain opset " + std::to_string(opset) + ", doors run opset " + std::to_string(onnx::kOpset));
    auto need = [&](const std::string& key, const std::string& expected) {
        auto it = meta.find(key);
        if (it == meta.end()) throw bad("ONNX: metadata " + key + " is missing (not a faceadapt export)");
        if (it->second != expected)
            throw bad("ONNX: metadata " + key + " \"" + common::printable(it->second, 60) + "\" is not the manifest's \"" +
                      common::printable(expected, 60) + "\"");
    };
    need("faceadapt.architecture", arch.name);
    if (arch.input_width != arch.input_height) throw bad("ONNX: the manifest's input is not square");
    need("faceadapt.input_size", std::to_string(arch.input_width));
    need("faceadapt.embedding_dim", std::to_string(arch.embedding_dim));
    auto w = meta.find("faceadapt.weights");
    if (w == meta.end() || (w->second != "float32" && w->second != "float16"))
        throw bad("ONNX: metadata faceadapt.weights is not float32 or float16");
}

bool known_model_format(std::string_view f) { return is_onnx(f) || f == "faceadapt-model v1" || f == "faceadapt-model"; }

ModelPartCheck::ModelPartCheck(const ArchitectureSpec& architecture) : arch_(architecture) {
    if (!known_model_format(arch_.model_format))
        throw PackageError("manifest: architecture.model_format \"" + common::printable(arch_.model_format, 60) +
                           "\" is not a model format this door knows (onnx, faceadapt-model v1)");
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
    if (is_onnx(arch_.model_format)) return check_onnx(head_, size_, arch_);
    if (head_.size() < kHeader || std::string_view(head_).substr(0, 8) != kModelMagic)
        throw bad("not a faceadapt model file (bad magic), but the manifest says " + common::printable(arch_.model_format, 60));
    auto version = le(head_, 8, 4);
    if (version != 1) throw bad("model file format version " + std::to_string(version) + ", the manifest says " + common::printable(arch_.model_format, 60));
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
            throw bad("the model file's architecture \"" + common::printable(architecture, 60) + "\" is not the manifest's \"" +
                      common::printable(arch_.name, 60) + "\"");
        const auto size_value = detail::json_integer<int>(meta.at("input").at("size"));
        if (!size_value) throw bad("the model file's input size is not an integer");
        const int size = *size_value;
        if (size != arch_.input_width || size != arch_.input_height)
            throw bad("the model file's input size " + std::to_string(size) + " is not the manifest's " +
                      std::to_string(arch_.input_width) + "x" + std::to_string(arch_.input_height));
        if (meta.contains("embedding_dim") && detail::json_integer<int>(meta["embedding_dim"]) != arch_.embedding_dim)
            throw bad("the model file's embedding_dim is not the manifest's " + std::to_string(arch_.embedding_dim));
    } catch (const nlohmann::json::exception& e) {
        throw bad(std::string("metadata: ") + common::printable(e.what()));
    }
}

}  // namespace faceadapt::publish::detail
