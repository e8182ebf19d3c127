// Signed model packages: model file + gallery + manifest, Ed25519-signed.
//
// WHAT THIS REPRESENTS
//   A Package is what the daemon ships to door controllers (docs/package-format.md is the
//   normative description; this header is its C++ form):
//     file     = "FAPKG001" | u32 LE envelope length | envelope | payload
//     envelope = JSON {"format":"faceadapt-envelope","manifest":"<manifest JSON text>",
//                      "signature":"<128 hex>","key_id":"<16 hex>"}
//     payload  = the parts, concatenated in manifest order: "model" (opaque model file bytes,
//                faceadapt/learner/model_file.hpp), then "gallery" (encode_gallery()).
//   The signature covers exactly the bytes of the manifest text; everything else is bound to
//   it by SHA-256 (each part, the whole payload, and each MQTT chunk of the payload).
// THREAD SAFETY
//   Plain values; const use from many threads is safe.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "faceadapt/calib/operating_point.hpp"
#include "faceadapt/config/config.hpp"
#include "faceadapt/publish/keys.hpp"

namespace faceadapt::publish {

// Manifests this build writes: format 2 (issues 13 and 16, one step) = 1 + the required top-level
// "site" (a package is bound to its site) + architecture.model_format "onnx" for the ONNX graph of
// faceadapt/onnx/face_graph.hpp (float32 or float16 weights, said by its metadata_props
// "faceadapt.weights"). Format 1 (a libtorch faceadapt-model file, no site) is still read, so an
// installed v1 model keeps working, but never installed. A format-1 door refuses format-2 manifests.
inline constexpr int kFormatVersion = 2;
inline constexpr int kOldestReadableFormatVersion = 1;
// architecture.model_format values.
inline constexpr std::string_view kModelFormatOnnx = "onnx";
inline constexpr std::string_view kModelFormatLibtorch = "faceadapt-model v1";
inline constexpr std::string_view kPackageMagic = "FAPKG001";
inline constexpr std::string_view kGalleryMagic = "FAGAL001";
inline constexpr std::size_t kEmbeddingDim = 128;
inline constexpr std::size_t kDefaultChunkBytes = 256 * 1024;
// A manifest's gallery.threshold must be finite and in (0, kMaxMatchThreshold].
inline constexpr double kMaxMatchThreshold = 10.0;

// Thrown for every malformed, inconsistent or unverifiable package; the message names the
// part, field or chunk at fault.
class PackageError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

using Embedding = std::array<float, kEmbeddingDim>;

struct GalleryEntry {
    std::string name;       // UTF-8, 1..255 bytes; a person may have several entries
    Embedding embedding{};  // produced by THIS package's model
};

struct Gallery {
    std::vector<GalleryEntry> entries;
    // Euclidean distance at or below which a probe matches an entry.
    double threshold = 0.6;
};

// Gallery part bytes: "FAGAL001" | u32 LE count | u32 LE dim(=128) |
// count x (u16 LE name length | name bytes | dim x f32 LE).
std::string encode_gallery(const Gallery& gallery);
// throws PackageError on a bad magic, a truncated record, dim != 128, a count larger than the
// bytes can hold, an empty name, trailing bytes, or an embedding value that is NaN or infinite
// (naming the entry and the component). encode_gallery writes whatever it is given.
// The threshold is not in the part: it comes from the manifest (pass it in).
Gallery decode_gallery(std::string_view bytes, double threshold);
// What a door requires of a gallery before it installs it: every embedding finite, every name
// valid UTF-8 without control characters, the threshold finite in (0, kMaxMatchThreshold].
// throws PackageError naming the entry or the threshold.
void check_gallery(const Gallery& gallery);

// The network the model part holds and what it expects as input.
struct ArchitectureSpec {
    std::string name = "dlib-resnet29";  // must equal the model part's architecture (file metadata)
    // How to read the model part; a door refuses formats it does not know or cannot run. Known:
    // "onnx" (the default; docs/door-integration.md) and "faceadapt-model v1" (docs/model-format.md;
    // "faceadapt-model" is read as v1).
    std::string model_format = std::string(kModelFormatOnnx);
    int input_width = 150;
    int input_height = 150;
    int input_channels = 3;
    std::string color_order = "RGB";
    std::string alignment = "dlib get_face_chip_details(68 landmarks, size 150, padding 0.25)";
    // What the model part expects as input values (for "onnx": raw RGB 0..255 as float, the
    // graph normalises; for the libtorch file the caller does).
    std::string normalization = "float RGB 0..255 in; the graph computes (x - [122.782,117.001,104.298]) / 256";
    int embedding_dim = 128;
    std::string distance = "euclidean";
};

struct PartInfo {
    std::string name;          // "model" | "gallery"
    std::uint64_t offset = 0;  // in the payload
    std::uint64_t size = 0;
    std::string sha256;        // 64 lowercase hex
};

struct Manifest {
    int format_version = kFormatVersion;
    std::int64_t model_version = 0;   // monotonic, >= 1
    std::int64_t parent_version = 0;  // 0: none
    std::string created;              // ISO 8601 UTC
    std::string key_id;               // PublicKey::key_id() of the signer
    std::string site;                 // the site it was signed for (format_version >= 2); "" in v1
    ArchitectureSpec architecture;
    std::vector<PartInfo> parts;
    std::uint64_t payload_size = 0;
    std::string payload_sha256;
    std::uint64_t chunk_size = kDefaultChunkBytes;
    std::vector<std::string> chunk_sha256;  // one per chunk, in order
    std::uint64_t gallery_entries = 0;
    double match_threshold = 0.6;
    // The calibrated operating point (docs/package-format.md 4.2, docs/operating-point.md); absent
    // in packages before issue 12 (a door then applies match_threshold with margin 0). When
    // present, its threshold equals match_threshold (parse() refuses a manifest where it does not).
    std::optional<calib::OperatingPoint> operating_point;
    // The site's [quality] (docs/package-format.md 4.3): the crop store's rule, which a door applies
    // before it decides (a face the store would not keep is asked to retry: the calibration's
    // pairs are faces the store kept). Absent in packages before it: a door then applies the
    // [quality] defaults.
    std::optional<config::QualityConfig> quality;
    std::map<std::string, double> training_metrics;
    std::map<std::string, double> gate_metrics;

    // The threshold and ambiguity margin a door decides with (operating_point's, else
    // match_threshold and 0), and whether they were calibrated.
    double decision_margin() const { return operating_point ? operating_point->margin : 0.0; }
    bool calibrated() const { return operating_point && operating_point->calibrated; }
    // The face-quality rule a door applies before it decides: `quality`, else the [quality]
    // defaults; and which of the two it is ("package" or "defaults").
    config::QualityConfig quality_rule() const { return quality.value_or(config::QualityConfig{}); }
    const char* quality_rule_origin() const { return quality ? "package" : "defaults"; }

    std::size_t chunk_count() const { return chunk_sha256.size(); }
    // throws PackageError when there is no part called `name`.
    const PartInfo& part(std::string_view name) const;
    // Canonical JSON text: keys sorted, no whitespace, UTF-8. This is what gets signed.
    std::string to_json() const;
    // Parses and checks internal consistency (parts tile the payload, chunk count matches
    // payload size / chunk size, hex lengths). throws PackageError naming the field.
    static Manifest parse(std::string_view json_text);
    // What a door requires before it downloads or installs: bound to `site`, a model format it
    // knows, 128-dim euclidean embeddings, a sane threshold. throws PackageError naming the field.
    void check_installable(std::string_view site) const;
};

// The manifest text together with its signature (the MQTT manifest message).
struct SignedManifest {
    std::string manifest_json;
    Signature signature{};
    std::string key_id;

    std::string envelope() const;  // the JSON envelope (see top of file)
    // throws PackageError when the envelope is not one.
    static SignedManifest parse_envelope(std::string_view envelope_json);
    // ensures: the signature verifies against `key` over manifest_json, then the parsed manifest.
    // throws PackageError("... signature ...") or PackageError from Manifest::parse.
    Manifest verify(const PublicKey& key) const;
};

// What the daemon (or `faceadapt package`) supplies to build a package.
struct PackageInput {
    std::string site;            // the site it is for ([A-Za-z0-9_-]+); the door checks it
    std::string model_bytes;     // the model file (architecture.model_format)
    Gallery gallery;             // may be empty
    std::int64_t model_version = 1;
    std::int64_t parent_version = 0;
    ArchitectureSpec architecture;
    std::map<std::string, double> training_metrics;
    std::map<std::string, double> gate_metrics;
    // When set, the manifest carries it and its threshold (gallery.threshold is ignored).
    std::optional<calib::OperatingPoint> operating_point;
    // When set, the manifest carries it (the site's [quality], for the door's retry rule).
    std::optional<config::QualityConfig> quality;
    std::size_t chunk_bytes = kDefaultChunkBytes;  // [1 KiB, 64 MiB]
    std::string created;         // "" -> now
};

struct Package {
    SignedManifest signed_manifest;
    Manifest manifest;           // parsed from signed_manifest (NOT verified: call verify_package)
    std::string payload;

    std::string_view chunk(std::size_t index) const;  // requires index < manifest.chunk_count()
    std::string_view part_bytes(std::string_view name) const;
    Gallery gallery() const;     // decode_gallery(part "gallery", manifest.match_threshold)

    // The package file. throws std::runtime_error/PackageError naming the file.
    void write(const std::filesystem::path& file) const;  // durable (temp + fsync + rename)
    static Package read(const std::filesystem::path& file);
    static Package from_bytes(std::string_view file_bytes, const std::string& name);
    std::string to_bytes() const;
    // Builds from an envelope and a payload, parsing (not verifying) the manifest.
    static Package from_parts(std::string envelope_json, std::string payload);
};

// Builds and signs. throws PackageError on an invalid input (version < 1, chunk size out of
// range, a bad site, a gallery or model a door would refuse: see verify_package).
Package build_package(const PackageInput& input, const SigningKey& key);

// Full verification: signature with `key`, payload size, every chunk, every part and the whole
// payload SHA-256, the gallery decodes to manifest.gallery_entries entries and passes
// check_gallery, the model part is a well-formed file of the manifest's model_format and
// architecture, and Manifest::check_installable(site).
// ensures: the verified manifest. throws PackageError naming what failed.
Manifest verify_package(const Package& package, const PublicKey& key, std::string_view site);
// The same for tools that do not know the site (`faceadapt package`): every check but the site.
Manifest verify_package(const Package& package, const PublicKey& key);

}  // namespace faceadapt::publish
