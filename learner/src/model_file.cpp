// Model file format (docs/model-format.md), version 1, all integers little-endian:
//   [0,8)        magic "FADAPTMD"
//   [8,12)       uint32 format version (1)
//   [12,16)      uint32 M = metadata length
//   [16,16+M)    metadata JSON (UTF-8)
//   [16+M,24+M)  uint64 W = weights length
//   [24+M,24+M+W) torch archive (torch::serialize::OutputArchive, zip) of the parameters, CPU
//   last 4       uint32 CRC-32 (IEEE) of every byte before it
#include "faceadapt/learner/model_file.hpp"

#include "faceadapt/common/crc32.hpp"
#include "faceadapt/common/durable_file.hpp"
#include "faceadapt/common/time.hpp"
#include "torch_archive_check.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace faceadapt::learner {

namespace fs = std::filesystem;

namespace {

constexpr char kMagic[8] = {'F', 'A', 'D', 'A', 'P', 'T', 'M', 'D'};
constexpr std::size_t kHeaderSize = 16;
constexpr uint32_t kMaxMetadataBytes = 16u << 20;
// A ResNet-29 archive is about 22 MB; the bound only keeps a hostile length from being allocated.
constexpr uint64_t kMaxWeightsBytes = uint64_t{1} << 30;

template <typename T>
void put_le(std::string& out, T v) {
    for (std::size_t i = 0; i < sizeof(T); ++i) out += static_cast<char>((static_cast<uint64_t>(v) >> (8 * i)) & 0xFF);
}
template <typename T>
T get_le(const char* p) {
    uint64_t v = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
    return static_cast<T>(v);
}

// The metadata block, written and read with nlohmann::json. Files written before the switch
// (hand-assembled text with the same keys) parse the same way.
std::string metadata_to_json(const ModelMetadata& m) {
    const nlohmann::ordered_json j = {
        {"format", "faceadapt-model"},
        {"format_version", kModelFormatVersion},
        {"architecture", m.architecture},
        {"input", {{"size", m.input_size}, {"channels", "RGB"}, {"mean", {122.782, 117.001, 104.298}}, {"divisor", 256}}},
        {"embedding_dim", kEmbeddingDim},
        {"version", m.version},
        {"parent_version", m.parent_version},
        {"created", m.created},
        {"network",
         {{"num_classes", m.num_classes}, {"embedding_dropout", m.embedding_dropout}, {"classifier_scale", m.classifier_scale}}},
        {"provenance", m.provenance.is_null() ? nlohmann::json::object() : m.provenance},
    };
    return j.dump(2) + "\n";
}

ModelMetadata metadata_from_json(const std::string& text, const fs::path& path) {
    auto bad = [&](const std::string& what) { return std::runtime_error("model file " + path.string() + ": " + what); };
    nlohmann::json v;
    try {
        v = nlohmann::json::parse(text);
    } catch (const nlohmann::json::parse_error& e) {  // its what() quotes the text: not repeated
        throw bad("metadata: JSON error at byte " + std::to_string(e.byte));
    } catch (const nlohmann::json::exception&) {  // out_of_range: a number like 1e999
        throw bad("metadata: a JSON number out of range");
    }
    if (!v.is_object()) throw bad("metadata is not a JSON object");
    auto number = [&](const nlohmann::json& obj, const char* key) {
        const auto x = obj.find(key);
        if (x == obj.end() || !x->is_number()) throw bad(std::string("metadata key '") + key + "' missing or not a number");
        return x->get<double>();
    };
    auto string = [&](const char* key) {
        const auto x = v.find(key);
        if (x == v.end() || !x->is_string()) throw bad(std::string("metadata key '") + key + "' missing or not a string");
        return x->get<std::string>();
    };
    auto object = [&](const char* key) -> const nlohmann::json& {
        const auto x = v.find(key);
        if (x == v.end() || !x->is_object()) throw bad(std::string("metadata key '") + key + "' missing");
        return *x;
    };
    if (const auto fv = number(v, "format_version"); fv != kModelFormatVersion)
        throw bad("metadata format_version " + nlohmann::json(fv).dump() + " is not supported (this build reads " +
                  std::to_string(kModelFormatVersion) + ")");
    ModelMetadata m;
    m.architecture = string("architecture");
    if (m.architecture != kArchitectureResNet29)
        throw bad("unknown architecture '" + m.architecture + "' (this build knows " + kArchitectureResNet29 + ")");
    m.input_size = static_cast<int>(number(object("input"), "size"));
    if (m.input_size != kChipSize) throw bad("input size " + std::to_string(m.input_size) + " is not 150");
    m.version = static_cast<int64_t>(number(v, "version"));
    m.parent_version = static_cast<int64_t>(number(v, "parent_version"));
    m.created = string("created");
    const nlohmann::json& net = object("network");
    m.num_classes = static_cast<int64_t>(number(net, "num_classes"));
    m.embedding_dropout = number(net, "embedding_dropout");
    m.classifier_scale = number(net, "classifier_scale");
    if (m.num_classes < 0) throw bad("network.num_classes < 0");
    m.provenance = v.value("provenance", nlohmann::json::object());
    return m;
}

std::string read_exact(std::ifstream& in, std::size_t n, const fs::path& path, const char* what) {
    std::string buf(n, '\0');
    in.read(buf.data(), static_cast<std::streamsize>(n));
    if (static_cast<std::size_t>(in.gcount()) != n)
        throw std::runtime_error("model file " + path.string() + ": truncated (" + what + ")");
    return buf;
}

// Reads and checks the header, returns the metadata length.
uint32_t read_header(std::ifstream& in, const fs::path& path) {
    const std::string h = read_exact(in, kHeaderSize, path, "header");
    if (std::memcmp(h.data(), kMagic, 8) != 0)
        throw std::runtime_error("model file " + path.string() + ": not a faceadapt model file (bad magic)");
    const auto version = get_le<uint32_t>(h.data() + 8);
    if (version != kModelFormatVersion)
        throw std::runtime_error("model file " + path.string() + ": unknown format version " + std::to_string(version) +
                                 " (this build reads " + std::to_string(kModelFormatVersion) + ")");
    const auto m = get_le<uint32_t>(h.data() + 12);
    if (m > kMaxMetadataBytes) throw std::runtime_error("model file " + path.string() + ": corrupt metadata length");
    return m;
}

std::ifstream open_model(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("model file " + path.string() + ": cannot open (missing or unreadable)");
    return in;
}

}  // namespace

ModelMetadata read_model_metadata(const fs::path& path) {
    auto in = open_model(path);
    const uint32_t m = read_header(in, path);
    return metadata_from_json(read_exact(in, m, path, "metadata"), path);
}

void save_model(FaceResNet& net, const ModelMetadata& meta_in, const fs::path& path) {
    ModelMetadata meta = meta_in;
    if (meta.architecture != kArchitectureResNet29)
        throw std::invalid_argument("save_model: unknown architecture '" + meta.architecture + "'");
    if (meta.input_size != kChipSize) throw std::invalid_argument("save_model: input_size must be 150");
    if (meta.created.empty()) meta.created = common::utc_timestamp();
    meta.num_classes = net->options().num_classes;
    meta.embedding_dropout = net->options().embedding_dropout;
    meta.classifier_scale = net->options().classifier_scale;

    const std::string metadata = metadata_to_json(meta);
    std::ostringstream weights;
    {
        torch::NoGradGuard no_grad;
        torch::serialize::OutputArchive archive;
        for (const auto& p : net->named_parameters(true))
            archive.write(p.key(), p.value().detach().to(torch::kCPU).contiguous());
        archive.save_to(weights);
    }
    const std::string w = weights.str();

    std::string bytes;
    bytes.reserve(kHeaderSize + metadata.size() + 8 + w.size() + 4);
    bytes.append(kMagic, 8);
    put_le<uint32_t>(bytes, kModelFormatVersion);
    put_le<uint32_t>(bytes, static_cast<uint32_t>(metadata.size()));
    bytes += metadata;
    put_le<uint64_t>(bytes, w.size());
    bytes += w;
    put_le<uint32_t>(bytes, common::crc32(bytes));

    try {
        common::write_file_atomic(path, bytes);
    } catch (const std::exception& e) {
        throw std::runtime_error("model file " + path.string() + ": cannot save: " + e.what());
    }
}

LoadedModel load_model(const fs::path& path, torch::Device device) {
    auto in = open_model(path);
    const uint32_t m = read_header(in, path);
    const std::string metadata = read_exact(in, m, path, "metadata");
    const std::string wlen = read_exact(in, 8, path, "weights length");
    const auto w = get_le<uint64_t>(wlen.data());
    const auto file_size = fs::file_size(path);
    if (w > file_size || file_size != kHeaderSize + m + 8 + w + 4)
        throw std::runtime_error("model file " + path.string() + ": truncated or corrupt (size " +
                                 std::to_string(file_size) + " does not match its lengths)");
    if (w > kMaxWeightsBytes)
        throw std::runtime_error("model file " + path.string() + ": weights of " + std::to_string(w) +
                                 " bytes (at most " + std::to_string(kMaxWeightsBytes) + ")");
    const std::string weights = read_exact(in, static_cast<std::size_t>(w), path, "weights");
    const std::string crc_bytes = read_exact(in, 4, path, "checksum");

    std::string header(kMagic, 8);
    put_le<uint32_t>(header, kModelFormatVersion);
    put_le<uint32_t>(header, m);
    uint32_t crc = common::crc32(header);
    crc = common::crc32(metadata, crc);
    crc = common::crc32(wlen, crc);
    crc = common::crc32(weights, crc);
    if (crc != get_le<uint32_t>(crc_bytes.data()))
        throw std::runtime_error("model file " + path.string() + ": checksum mismatch (corrupt file)");

    LoadedModel out;
    out.meta = metadata_from_json(metadata, path);
    FaceResNetOptions options;
    options.num_classes = out.meta.num_classes;
    options.embedding_dropout = out.meta.embedding_dropout;
    options.classifier_scale = out.meta.classifier_scale;
    out.net = FaceResNet(options);
    try {
        // libtorch trusts the archive's lengths and counts: checked first (torch_archive_check.hpp).
        detail::check_torch_archive(weights);
        torch::serialize::InputArchive archive;
        std::istringstream ws(weights);
        archive.load_from(ws, torch::Device(torch::kCPU));
        torch::NoGradGuard no_grad;
        for (auto& p : out.net->named_parameters(true)) {
            torch::Tensor t;
            archive.read(p.key(), t);
            if (t.sizes() != p.value().sizes())
                throw std::runtime_error("tensor '" + p.key() + "' has shape " + c10::str(t.sizes()) + ", expected " +
                                         c10::str(p.value().sizes()));
            p.value().copy_(t);
        }
    } catch (const std::exception& e) {
        throw std::runtime_error("model file " + path.string() + ": weights do not load: " + e.what());
    }
    out.net->to(device);
    out.net->eval();
    return out;
}

}  // namespace faceadapt::learner
