// Writes the seed corpora of fuzz_config, fuzz_door_messages, fuzz_package and fuzz_gallery
// under OUT_DIR/<target>/ (committed as fuzz/corpus; regenerate with `scripts/run-fuzz --seeds`).
// Everything comes from the project's own writers, so the seeds are valid inputs the fuzzers
// then mutate: a signed package with a 2-entry gallery and 1 KiB chunks, its envelope and
// manifest, a door state, topics, gallery parts, site files.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "faceadapt/publish/package.hpp"
#include "faceadapt/publish/protocol.hpp"
#include "seed_util.hpp"

namespace fs = std::filesystem;
namespace fp = faceadapt::publish;
using faceadapt::fuzz::put_seed;

int main(int argc, char** argv) {
    if (argc != 3) {
        std::cerr << "usage: fuzz_make_seeds OUT_DIR SOURCE_DIR\n";
        return 2;
    }
    const fs::path out = argv[1];
    const fs::path source = argv[2];

    fp::Gallery gallery;
    for (const char* name : {"alice", "bob"}) {
        fp::GalleryEntry e;
        e.name = name;
        for (std::size_t i = 0; i < fp::kEmbeddingDim; ++i)
            e.embedding[i] = static_cast<float>((i % 7) * 0.01 + name[0] * 0.001);
        gallery.entries.push_back(e);
    }
    put_seed(out, "fuzz_gallery", "two-entries", fp::encode_gallery(gallery));
    put_seed(out, "fuzz_gallery", "empty", fp::encode_gallery(fp::Gallery{}));

    const auto key = fp::SigningKey::generate();
    fp::PackageInput in;
    in.site = "site1";
    in.architecture.model_format = std::string(fp::kModelFormatLibtorch);  // a faceadapt model file
    in.model_bytes = faceadapt::fuzz::model_file(faceadapt::fuzz::kSeedMetadata, std::string(300, 'w'));
    in.gallery = gallery;
    in.model_version = 3;
    in.parent_version = 2;
    in.chunk_bytes = 1024;
    in.created = "2026-12-01T00:00:00Z";
    in.training_metrics = {{"cycles", 2}};
    in.gate_metrics = {{"tar_at_far", 0.97}};
    const fp::Package pkg = fp::build_package(in, key);
    put_seed(out, "fuzz_package", "signed-2-chunks", pkg.to_bytes());
    put_seed(out, "fuzz_door_messages", "envelope", pkg.signed_manifest.envelope());
    put_seed(out, "fuzz_door_messages", "manifest", pkg.signed_manifest.manifest_json);
    // A manifest with the site's [quality] (docs/package-format.md 4.3): its parser is the site
    // file's schema, walked from JSON.
    fp::PackageInput with_quality = in;
    with_quality.quality = faceadapt::config::QualityConfig{};
    put_seed(out, "fuzz_door_messages", "manifest-quality",
             fp::build_package(with_quality, key).signed_manifest.manifest_json);
    const fp::Topics topics("site1");
    put_seed(out, "fuzz_door_messages", "topic-chunk", topics.chunk(3, 1));
    put_seed(out, "fuzz_door_messages", "topic-state", "faceadapt/site1/door/front/state");
    fp::DoorState st;
    st.door = "front";
    st.status = "receiving";
    st.installed_version = 2;
    st.offered_version = 3;
    st.chunks_received = 1;
    st.chunks_total = 2;
    st.time = "2026-12-01T00:00:00Z";
    put_seed(out, "fuzz_door_messages", "door-state", st.to_json());

    for (const char* f : {"config/demo.toml", "config/faceadapt.example.toml"}) {
        std::ifstream t(source / f, std::ios::binary);
        std::ostringstream s;
        s << t.rdbuf();
        put_seed(out, "fuzz_config", fs::path(f).filename().string(), s.str());
    }
    put_seed(out, "fuzz_config", "camera-secrets",
             "[site]\nid = \"s\"\n[[camera]]\nid = \"a\"\nurl = \"rtsp://u:p@127.0.0.1:8554/live?user=x&password=y\"\n"
             "[mqtt]\nbroker = \"tcp://127.0.0.1:1883\"\n");
    std::cout << "seeds written under " << out << "\n";
    return 0;
}
