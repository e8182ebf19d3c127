#include "faceadapt/publish/package.hpp"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <type_traits>

#include <nlohmann/json.hpp>

#include "faceadapt/config/quality_json.hpp"
#include "faceadapt/publish/operating_point_json.hpp"
#include "faceadapt/publish/protocol.hpp"
#include "faceadapt/common/text.hpp"
#include "json_integer.hpp"
#include "model_check.hpp"
#include "util.hpp"

namespace faceadapt::publish {

using nlohmann::json;

namespace {

void put_u16(std::string& out, std::uint16_t v) {
    out.push_back(static_cast<char>(v & 0xff));
    out.push_back(static_cast<char>(v >> 8));
}
void put_u32(std::string& out, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// Reads little-endian integers and raw bytes from a buffer; every read is bounds-checked.
class Reader {
public:
    Reader(std::string_view bytes, std::string what) : bytes_(bytes), what_(std::move(what)) {}
    std::string_view take(std::size_t n) {
        if (n > bytes_.size() - pos_)
            throw PackageError(what_ + ": truncated at byte " + std::to_string(pos_));
        auto out = bytes_.substr(pos_, n);
        pos_ += n;
        return out;
    }
    std::uint64_t uint(int bytes) {
        auto raw = take(static_cast<std::size_t>(bytes));
        std::uint64_t v = 0;
        for (int i = bytes - 1; i >= 0; --i) v = v << 8 | static_cast<std::uint8_t>(raw[static_cast<std::size_t>(i)]);
        return v;
    }
    std::size_t remaining() const { return bytes_.size() - pos_; }
private:
    std::string_view bytes_;
    std::string what_;
    std::size_t pos_ = 0;
};

std::string short_number(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", v);  // 1e+300 reads better than 301 digits
    return buf;
}

bool is_hex(const std::string& s, std::size_t len) {
    if (s.size() != len) return false;
    for (char c : s)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

template <class T>
T field(const json& j, const char* key, const char* where) {
    auto it = j.find(key);
    if (it == j.end()) throw PackageError(std::string("manifest: missing ") + where + key);
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
        // Not get<T>(): it casts a float that does not fit, undefined behaviour (json_integer.hpp).
        if (const auto v = detail::json_integer<T>(*it)) return *v;
        throw PackageError(std::string("manifest: ") + where + key + " is not an integer in range");
    } else {
        try {
            return it->get<T>();
        } catch (const json::exception&) {
            throw PackageError(std::string("manifest: ") + where + key + " has the wrong type");
        }
    }
}

json architecture_json(const ArchitectureSpec& a) {
    return {{"name", a.name},
            {"model_format", a.model_format},
            {"input", {{"width", a.input_width}, {"height", a.input_height}, {"channels", a.input_channels},
                       {"color_order", a.color_order}, {"alignment", a.alignment},
                       {"normalization", a.normalization}}},
            {"embedding_dim", a.embedding_dim},
            {"distance", a.distance}};
}

ArchitectureSpec parse_architecture(const json& j) {
    ArchitectureSpec a;
    a.name = field<std::string>(j, "name", "architecture.");
    a.model_format = field<std::string>(j, "model_format", "architecture.");
    a.embedding_dim = field<int>(j, "embedding_dim", "architecture.");
    a.distance = field<std::string>(j, "distance", "architecture.");
    auto in = field<json>(j, "input", "architecture.");
    a.input_width = field<int>(in, "width", "architecture.input.");
    a.input_height = field<int>(in, "height", "architecture.input.");
    a.input_channels = field<int>(in, "channels", "architecture.input.");
    a.color_order = field<std::string>(in, "color_order", "architecture.input.");
    a.alignment = field<std::string>(in, "alignment", "architecture.input.");
    a.normalization = field<std::string>(in, "normalization", "architecture.input.");
    return a;
}

}  // namespace

std::string encode_gallery(const Gallery& gallery) {
    std::string out(kGalleryMagic);
    put_u32(out, static_cast<std::uint32_t>(gallery.entries.size()));
    put_u32(out, static_cast<std::uint32_t>(kEmbeddingDim));
    for (const auto& e : gallery.entries) {
        if (e.name.empty() || e.name.size() > 255)
            throw PackageError("gallery: name \"" + e.name.substr(0, 40) + "\" must be 1..255 bytes");
        put_u16(out, static_cast<std::uint16_t>(e.name.size()));
        out += e.name;
        for (float f : e.embedding) {
            std::uint32_t bits;
            std::memcpy(&bits, &f, 4);
            put_u32(out, bits);
        }
    }
    return out;
}

Gallery decode_gallery(std::string_view bytes, double threshold) {
    Reader r(bytes, "gallery part");
    if (r.take(kGalleryMagic.size()) != kGalleryMagic) throw PackageError("gallery part: bad magic (expected FAGAL001)");
    auto count = r.uint(4);
    auto dim = r.uint(4);
    if (dim != kEmbeddingDim) throw PackageError("gallery part: dim " + std::to_string(dim) + ", expected 128");
    Gallery g;
    g.threshold = threshold;
    if (count > bytes.size() / (2 + 4 * kEmbeddingDim)) throw PackageError("gallery part: count " + std::to_string(count) + " exceeds its size");
    g.entries.reserve(count);
    for (std::uint64_t i = 0; i < count; ++i) {
        GalleryEntry e;
        auto len = r.uint(2);
        if (len == 0) throw PackageError("gallery part: entry " + std::to_string(i) + " has an empty name");
        e.name = std::string(r.take(len));
        for (std::size_t k = 0; k < e.embedding.size(); ++k) {
            auto bits = static_cast<std::uint32_t>(r.uint(4));
            std::memcpy(&e.embedding[k], &bits, 4);
            // A NaN or an infinity makes every distance to the entry NaN/inf: no gallery holds one.
            if (!std::isfinite(e.embedding[k]))
                throw PackageError("gallery part: entry " + std::to_string(i) + " (" + common::printable(e.name, 60) + "): embedding[" +
                                   std::to_string(k) + "] is not finite");
        }
        g.entries.push_back(std::move(e));
    }
    if (r.remaining() != 0) throw PackageError("gallery part: " + std::to_string(r.remaining()) + " trailing bytes");
    return g;
}

void check_gallery(const Gallery& g) {
    if (!std::isfinite(g.threshold) || g.threshold <= 0 || g.threshold > kMaxMatchThreshold)
        throw PackageError("gallery: threshold " + short_number(g.threshold) + " is not finite in (0, " +
                           short_number(kMaxMatchThreshold) + "]");
    for (std::size_t i = 0; i < g.entries.size(); ++i) {
        const auto& e = g.entries[i];
        if (!common::is_printable_utf8(e.name))
            throw PackageError("gallery: entry " + std::to_string(i) + " has a name that is not printable UTF-8 (\"" +
                               common::printable(e.name, 60) + "\")");
        for (std::size_t k = 0; k < e.embedding.size(); ++k)
            if (!std::isfinite(e.embedding[k]))
                throw PackageError("gallery: entry " + std::to_string(i) + " (" + common::printable(e.name, 60) + "): embedding[" +
                                   std::to_string(k) + "] is not finite");
    }
}

void Manifest::check_installable(std::string_view expected_site) const {
    if (format_version < 2 || site.empty())
        throw PackageError("manifest: format_version " + std::to_string(format_version) +
                           " names no site; re-package it with this version of faceadapt (format_version 2 binds a package to its site)");
    if (site != expected_site)
        throw PackageError("manifest: signed for site \"" + common::printable(site, 60) + "\", not for this site \"" +
                           common::printable(expected_site, 60) + "\"");
    if (!detail::known_model_format(architecture.model_format))
        throw PackageError("manifest: architecture.model_format \"" + common::printable(architecture.model_format, 60) +
                           "\" is not a model format this door knows (faceadapt-model v1)");
    if (architecture.embedding_dim != static_cast<int>(kEmbeddingDim))
        throw PackageError("manifest: architecture.embedding_dim " + std::to_string(architecture.embedding_dim) + ", expected 128");
    if (architecture.distance != "euclidean")
        throw PackageError("manifest: architecture.distance \"" + common::printable(architecture.distance, 60) + "\", expected \"euclidean\"");
    if (architecture.input_channels != 3 || architecture.input_width < 1 || architecture.input_width > 4096 ||
        architecture.input_height < 1 || architecture.input_height > 4096)
        throw PackageError("manifest: architecture.input is not a 3-channel image of 1..4096 pixels a side");
    if (!std::isfinite(match_threshold) || match_threshold <= 0 || match_threshold > kMaxMatchThreshold)
        throw PackageError("manifest: gallery.threshold " + short_number(match_threshold) + " is not finite in (0, " +
                           short_number(kMaxMatchThreshold) + "]");
}

const PartInfo& Manifest::part(std::string_view name) const {
    for (const auto& p : parts)
        if (p.name == name) return p;
    throw PackageError("manifest: no part named \"" + std::string(name) + "\"");
}

std::string Manifest::to_json() const {
    json parts_j = json::array();
    for (const auto& p : parts)
        parts_j.push_back({{"name", p.name}, {"offset", p.offset}, {"size", p.size}, {"sha256", p.sha256}});
    json j = {{"format", "faceadapt-manifest"},
              {"format_version", format_version},
              {"model_version", model_version},
              {"parent_version", parent_version},
              {"created", created},
              {"key_id", key_id},
              {"architecture", architecture_json(architecture)},
              {"parts", parts_j},
              {"payload", {{"size", payload_size}, {"sha256", payload_sha256},
                           {"chunk_size", chunk_size}, {"chunk_count", chunk_sha256.size()},
                           {"chunk_sha256", chunk_sha256}}},
              {"gallery", {{"entries", gallery_entries}, {"dim", kEmbeddingDim},
                           {"distance", architecture.distance}, {"threshold", match_threshold}}},
              {"metrics", {{"training", training_metrics}, {"gate", gate_metrics}}}};
    if (format_version >= 2) j["site"] = site;
    if (operating_point) j["operating_point"] = publish::to_json(*operating_point);
    if (quality) j["quality"] = config::quality_to_json(*quality);
    return j.dump();  // nlohmann objects are key-sorted; dump() is compact
}

Manifest Manifest::parse(std::string_view json_text) {
    json j;
    try {
        j = json::parse(json_text);
    } catch (const json::exception& e) {  // parse_error, and out_of_range for a number like 1e999
        throw PackageError("manifest: not JSON: " + common::printable(e.what()));
    }
    if (!j.is_object()) throw PackageError("manifest: not a JSON object");
    if (field<std::string>(j, "format", "") != "faceadapt-manifest") throw PackageError("manifest: format is not \"faceadapt-manifest\"");
    Manifest m;
    m.format_version = field<int>(j, "format_version", "");
    if (m.format_version < kOldestReadableFormatVersion || m.format_version > kFormatVersion)
        throw PackageError("manifest: format_version " + std::to_string(m.format_version) + " is not supported (this build reads " +
                           std::to_string(kOldestReadableFormatVersion) + ".." + std::to_string(kFormatVersion) + ")");
    if (m.format_version >= 2) {
        m.site = field<std::string>(j, "site", "");
        if (!valid_topic_segment(m.site)) throw PackageError("manifest: site is not a site id ([A-Za-z0-9_-]+)");
    }
    m.model_version = field<std::int64_t>(j, "model_version", "");
    if (m.model_version < 1) throw PackageError("manifest: model_version must be >= 1");
    m.parent_version = field<std::int64_t>(j, "parent_version", "");
    m.created = field<std::string>(j, "created", "");
    m.key_id = field<std::string>(j, "key_id", "");
    m.architecture = parse_architecture(field<json>(j, "architecture", ""));
    for (const auto& p : field<json>(j, "parts", "")) {
        PartInfo part{field<std::string>(p, "name", "parts[]."), field<std::uint64_t>(p, "offset", "parts[]."),
                      field<std::uint64_t>(p, "size", "parts[]."), field<std::string>(p, "sha256", "parts[].")};
        if (!is_hex(part.sha256, 64)) throw PackageError("manifest: parts." + part.name + ".sha256 is not 64 lowercase hex digits");
        m.parts.push_back(std::move(part));
    }
    auto payload = field<json>(j, "payload", "");
    m.payload_size = field<std::uint64_t>(payload, "size", "payload.");
    m.payload_sha256 = field<std::string>(payload, "sha256", "payload.");
    m.chunk_size = field<std::uint64_t>(payload, "chunk_size", "payload.");
    m.chunk_sha256 = field<std::vector<std::string>>(payload, "chunk_sha256", "payload.");
    auto chunk_count = field<std::uint64_t>(payload, "chunk_count", "payload.");
    auto gallery = field<json>(j, "gallery", "");
    m.gallery_entries = field<std::uint64_t>(gallery, "entries", "gallery.");
    m.match_threshold = field<double>(gallery, "threshold", "gallery.");
    auto metrics = field<json>(j, "metrics", "");
    m.training_metrics = field<std::map<std::string, double>>(metrics, "training", "metrics.");
    m.gate_metrics = field<std::map<std::string, double>>(metrics, "gate", "metrics.");
    if (const auto op = j.find("operating_point"); op != j.end()) {
        try {
            m.operating_point = operating_point_from_json(*op);
        } catch (const std::invalid_argument& e) {
            throw PackageError(std::string("manifest: ") + e.what());
        }
        if (m.operating_point->threshold != m.match_threshold)
            throw PackageError("manifest: operating_point.threshold " + short_number(m.operating_point->threshold) +
                               " is not gallery.threshold " + short_number(m.match_threshold));
    }
    if (const auto q = j.find("quality"); q != j.end()) {
        try {
            m.quality = config::quality_from_json(*q, "manifest");
        } catch (const config::ConfigError& e) {
            std::string problems;  // every issue, each a "manifest: quality.<key>: ..." line
            for (const auto& issue : e.issues()) problems += (problems.empty() ? "" : "; ") + issue.to_string();
            throw PackageError(common::printable(problems, 600));
        }
    }

    // Consistency.
    if (!is_hex(m.payload_sha256, 64)) throw PackageError("manifest: payload.sha256 is not 64 lowercase hex digits");
    if (m.chunk_size < 1024 || m.chunk_size > (64u << 20)) throw PackageError("manifest: payload.chunk_size out of [1 KiB, 64 MiB]");
    auto expected_chunks = (m.payload_size + m.chunk_size - 1) / m.chunk_size;
    if (chunk_count != expected_chunks || m.chunk_sha256.size() != expected_chunks)
        throw PackageError("manifest: payload.chunk_count / chunk_sha256 do not match size " + std::to_string(m.payload_size) +
                           " / chunk_size " + std::to_string(m.chunk_size));
    for (std::size_t i = 0; i < m.chunk_sha256.size(); ++i)
        if (!is_hex(m.chunk_sha256[i], 64)) throw PackageError("manifest: payload.chunk_sha256[" + std::to_string(i) + "] is not 64 lowercase hex digits");
    std::uint64_t offset = 0;
    for (const auto& p : m.parts) {
        if (p.offset != offset) throw PackageError("manifest: part " + p.name + " does not start where the previous part ends");
        offset += p.size;
    }
    if (offset != m.payload_size) throw PackageError("manifest: parts do not add up to payload.size");
    m.part("model");
    m.part("gallery");
    return m;
}

std::string SignedManifest::envelope() const {
    json j = {{"format", "faceadapt-envelope"},
              {"manifest", manifest_json},
              {"signature", detail::to_hex(signature)},
              {"key_id", key_id}};
    return j.dump();
}

SignedManifest SignedManifest::parse_envelope(std::string_view envelope_json) {
    json j;
    try {
        j = json::parse(envelope_json);
    } catch (const json::exception& e) {  // parse_error, and out_of_range for a number like 1e999
        throw PackageError("manifest envelope: not JSON: " + common::printable(e.what()));
    }
    if (!j.is_object() || j.value("format", "") != "faceadapt-envelope")
        throw PackageError("manifest envelope: format is not \"faceadapt-envelope\"");
    SignedManifest s;
    try {
        s.manifest_json = j.at("manifest").get<std::string>();
        s.key_id = j.value("key_id", "");
        auto sig = detail::from_hex(j.at("signature").get<std::string>(), "signature");
        if (sig.size() != kSignatureBytes) throw PackageError("manifest envelope: signature is not 64 bytes");
        std::copy(sig.begin(), sig.end(), s.signature.begin());
    } catch (const json::exception& e) {
        throw PackageError("manifest envelope: " + common::printable(e.what()));
    } catch (const std::invalid_argument& e) {
        throw PackageError("manifest envelope: " + common::printable(e.what()));
    }
    return s;
}

Manifest SignedManifest::verify(const PublicKey& key) const {
    if (!verify_signature(key, manifest_json, signature))
        throw PackageError("manifest signature does not verify against the pinned public key " + key.key_id() +
                           " (manifest names key " + (key_id.empty() ? std::string("?") : common::printable(key_id, 40)) + ")");
    return Manifest::parse(manifest_json);
}

std::string_view Package::chunk(std::size_t index) const {
    auto begin = index * manifest.chunk_size;
    return std::string_view(payload).substr(begin, manifest.chunk_size);
}

std::string_view Package::part_bytes(std::string_view name) const {
    const auto& p = manifest.part(name);
    if (p.offset + p.size > payload.size()) throw PackageError("part " + p.name + " lies beyond the payload");
    return std::string_view(payload).substr(p.offset, p.size);
}

Gallery Package::gallery() const { return decode_gallery(part_bytes("gallery"), manifest.match_threshold); }

std::string Package::to_bytes() const {
    auto env = signed_manifest.envelope();
    std::string out(kPackageMagic);
    put_u32(out, static_cast<std::uint32_t>(env.size()));
    out += env;
    out += payload;
    return out;
}

void Package::write(const std::filesystem::path& file) const { detail::write_file_durable(file, to_bytes()); }

Package Package::from_bytes(std::string_view bytes, const std::string& name) {
    Reader r(bytes, name);
    if (r.take(kPackageMagic.size()) != kPackageMagic) throw PackageError(name + ": not a faceadapt package (bad magic)");
    auto env_len = r.uint(4);
    auto env = r.take(env_len);
    auto payload = r.take(r.remaining());
    try {
        return from_parts(std::string(env), std::string(payload));
    } catch (const PackageError& e) {
        throw PackageError(name + ": " + e.what());
    }
}

Package Package::read(const std::filesystem::path& file) { return from_bytes(detail::read_file(file), file.string()); }

Package Package::from_parts(std::string envelope_json, std::string payload) {
    Package p;
    p.signed_manifest = SignedManifest::parse_envelope(envelope_json);
    p.manifest = Manifest::parse(p.signed_manifest.manifest_json);
    p.payload = std::move(payload);
    return p;
}

Package build_package(const PackageInput& input, const SigningKey& key) {
    if (input.model_version < 1) throw PackageError("package: model version must be >= 1");
    if (input.parent_version < 0 || input.parent_version >= input.model_version)
        throw PackageError("package: parent version must be in [0, model version)");
    if (input.chunk_bytes < 1024 || input.chunk_bytes > (64u << 20))
        throw PackageError("package: chunk size " + std::to_string(input.chunk_bytes) + " out of [1 KiB, 64 MiB]");
    if (input.model_bytes.empty()) throw PackageError("package: the model part is empty");
    if (!valid_topic_segment(input.site))
        throw PackageError("package: site \"" + common::printable(input.site, 60) + "\" is not a site id ([A-Za-z0-9_-]+)");
    check_gallery(input.gallery);
    auto gallery_bytes = encode_gallery(input.gallery);

    Package pkg;
    Manifest& m = pkg.manifest;
    m.model_version = input.model_version;
    m.parent_version = input.parent_version;
    m.created = input.created.empty() ? detail::utc_timestamp() : input.created;
    m.key_id = key.public_key().key_id();
    m.site = input.site;
    m.architecture = input.architecture;
    m.training_metrics = input.training_metrics;
    m.gate_metrics = input.gate_metrics;
    m.gallery_entries = input.gallery.entries.size();
    m.match_threshold = input.operating_point ? input.operating_point->threshold : input.gallery.threshold;
    m.operating_point = input.operating_point;
    m.quality = input.quality;
    if (m.operating_point) {
        if (const auto problem = calib::check(*m.operating_point); !problem.empty())
            throw PackageError("package: operating_point." + problem);
        Gallery g = input.gallery;
        g.threshold = m.match_threshold;
        check_gallery(g);
    }
    m.parts.push_back({"model", 0, input.model_bytes.size(), detail::sha256_hex(input.model_bytes)});
    m.parts.push_back({"gallery", input.model_bytes.size(), gallery_bytes.size(), detail::sha256_hex(gallery_bytes)});
    pkg.payload.reserve(input.model_bytes.size() + gallery_bytes.size());
    pkg.payload = input.model_bytes;
    pkg.payload += gallery_bytes;
    m.payload_size = pkg.payload.size();
    m.payload_sha256 = detail::sha256_hex(pkg.payload);
    m.check_installable(m.site);  // what a door of this site would refuse is refused here
    detail::ModelPartCheck model_check(m.architecture);
    model_check.update(input.model_bytes);
    model_check.finish();
    m.chunk_size = input.chunk_bytes;
    for (std::size_t off = 0; off < pkg.payload.size(); off += m.chunk_size)
        m.chunk_sha256.push_back(detail::sha256_hex(std::string_view(pkg.payload).substr(off, m.chunk_size)));

    pkg.signed_manifest.manifest_json = m.to_json();
    pkg.signed_manifest.signature = key.sign(pkg.signed_manifest.manifest_json);
    pkg.signed_manifest.key_id = m.key_id;
    return pkg;
}

Manifest verify_package(const Package& package, const PublicKey& key, std::string_view site) {
    auto m = verify_package(package, key);
    m.check_installable(site);
    return m;
}

Manifest verify_package(const Package& package, const PublicKey& key) {
    Manifest m = package.signed_manifest.verify(key);
    if (package.payload.size() != m.payload_size)
        throw PackageError("payload is " + std::to_string(package.payload.size()) + " bytes, manifest says " + std::to_string(m.payload_size));
    std::string_view payload(package.payload);
    for (std::size_t i = 0; i < m.chunk_count(); ++i)
        if (detail::sha256_hex(payload.substr(i * m.chunk_size, m.chunk_size)) != m.chunk_sha256[i])
            throw PackageError("chunk " + std::to_string(i) + ": sha256 does not match the manifest");
    for (const auto& p : m.parts)
        if (detail::sha256_hex(payload.substr(p.offset, p.size)) != p.sha256)
            throw PackageError("part " + p.name + ": sha256 does not match the manifest");
    if (detail::sha256_hex(payload) != m.payload_sha256) throw PackageError("payload: sha256 does not match the manifest");
    const auto& g = m.part("gallery");
    auto gallery = decode_gallery(payload.substr(g.offset, g.size), m.match_threshold);
    if (gallery.entries.size() != m.gallery_entries)
        throw PackageError("gallery: " + std::to_string(gallery.entries.size()) + " entries, manifest says " + std::to_string(m.gallery_entries));
    check_gallery(gallery);
    detail::ModelPartCheck model_check(m.architecture);
    model_check.update(payload.substr(m.part("model").offset, m.part("model").size));
    model_check.finish();
    return m;
}

}  // namespace faceadapt::publish
