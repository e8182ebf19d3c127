// Package format, keys, offline install and rollback: no broker needed.
#include <sys/stat.h>

#include <cmath>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "faceadapt/publish/door_agent.hpp"
#include "faceadapt/publish/keys.hpp"
#include "faceadapt/publish/mqtt_settings.hpp"
#include "faceadapt/publish/package.hpp"
#include "test_helpers.hpp"
#include "test_support.hpp"

namespace fp = faceadapt::publish;
using faceadapt::test::make_package;
using faceadapt::test::slurp;
using faceadapt::test::TempDir;

namespace {
// Re-signs a modified manifest with `key` (what an attacker with the key could do, or a buggy packer).
fp::Package resign(const fp::Package& pkg, const fp::SigningKey& key, const std::function<void(nlohmann::json&)>& edit) {
    auto j = nlohmann::json::parse(pkg.signed_manifest.manifest_json);
    edit(j);
    fp::SignedManifest sm;
    sm.manifest_json = j.dump();
    sm.signature = key.sign(sm.manifest_json);
    sm.key_id = key.public_key().key_id();
    return fp::Package::from_parts(sm.envelope(), pkg.payload);
}
}  // namespace

TEST(Keys, SaveLoadRoundTripWithPrivateMode) {
    TempDir dir;
    auto key = fp::SigningKey::generate();
    key.save(dir.path() / "keys");
    struct stat st {};
    ASSERT_EQ(::stat((dir.path() / "keys" / "signing.key").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    auto loaded = fp::SigningKey::load(dir.path() / "keys");
    EXPECT_EQ(loaded.public_key(), key.public_key());
    EXPECT_EQ(fp::load_public_key(dir.path() / "keys"), key.public_key());
    EXPECT_EQ(fp::load_public_key(dir.path() / "keys" / "signing.pub"), key.public_key());
    auto sig = loaded.sign("hello");
    EXPECT_TRUE(fp::verify_signature(key.public_key(), "hello", sig));
    EXPECT_FALSE(fp::verify_signature(key.public_key(), "hellO", sig));
    EXPECT_EQ(key.public_key().key_id().size(), 16u);
}

TEST(Keys, RefusesOverwriteLooseModeAndGarbage) {
    TempDir dir;
    auto key = fp::SigningKey::generate();
    key.save(dir.path());
    EXPECT_THROW(fp::SigningKey::generate().save(dir.path()), std::runtime_error);
    ::chmod((dir.path() / "signing.key").c_str(), 0644);
    try {
        fp::SigningKey::load(dir.path());
        FAIL() << "a group-readable key was accepted";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("chmod 600"), std::string::npos) << e.what();
    }
    TempDir other;
    EXPECT_THROW(fp::SigningKey::load(other.path()), std::runtime_error);  // missing
    std::ofstream(other.path() / "signing.pub") << "not hex\n";
    EXPECT_THROW(fp::load_public_key(other.path()), std::runtime_error);
}

TEST(Package, BuildVerifyAndFileRoundTrip) {
    TempDir dir;
    auto key = fp::SigningKey::generate();
    auto pkg = make_package(key, 3, 100'000, 4096);
    EXPECT_EQ(pkg.manifest.chunk_count(), (pkg.payload.size() + 4095) / 4096);
    auto m = fp::verify_package(pkg, key.public_key());
    EXPECT_EQ(m.model_version, 3);
    EXPECT_EQ(m.parent_version, 2);
    EXPECT_EQ(m.gallery_entries, 3u);
    EXPECT_EQ(m.training_metrics.at("cycles"), 6);
    EXPECT_EQ(m.key_id, key.public_key().key_id());

    pkg.write(dir.path() / "p.fapkg");
    auto back = fp::Package::read(dir.path() / "p.fapkg");
    EXPECT_EQ(back.payload, pkg.payload);
    EXPECT_EQ(back.signed_manifest.manifest_json, pkg.signed_manifest.manifest_json);
    EXPECT_NO_THROW(fp::verify_package(back, key.public_key()));
    auto g = back.gallery();
    ASSERT_EQ(g.entries.size(), 3u);
    EXPECT_EQ(g.entries[1].name, "bob");
    EXPECT_EQ(g.entries[1].embedding, faceadapt::test::small_gallery(3).entries[1].embedding);
    EXPECT_DOUBLE_EQ(g.threshold, 0.6);
}

TEST(Package, ManifestIsCanonicalJsonWithDocumentedFields) {
    auto key = fp::SigningKey::generate();
    auto pkg = make_package(key, 1, 5000, 1024);
    auto j = nlohmann::json::parse(pkg.signed_manifest.manifest_json);
    EXPECT_EQ(j.dump(), pkg.signed_manifest.manifest_json);  // sorted keys, no whitespace
    EXPECT_EQ(j["format"], "faceadapt-manifest");
    EXPECT_EQ(j["format_version"], 2);
    EXPECT_EQ(j["site"], "lab");  // bound to its site (format_version 2)
    EXPECT_EQ(j["architecture"]["model_format"], "onnx");  // the default model part
    EXPECT_EQ(j["architecture"]["input"]["width"], 150);
    EXPECT_EQ(j["payload"]["chunk_count"], pkg.manifest.chunk_count());
    EXPECT_EQ(j["parts"][0]["name"], "model");
    EXPECT_EQ(j["parts"][1]["name"], "gallery");
    EXPECT_EQ(j["gallery"]["threshold"], 0.6);
    auto env = nlohmann::json::parse(pkg.signed_manifest.envelope());
    EXPECT_EQ(env["format"], "faceadapt-envelope");
    EXPECT_EQ(env["signature"].get<std::string>().size(), 128u);
}

TEST(Package, VerifyRejectsWrongKeyTamperingAndBadHashes) {
    auto key = fp::SigningKey::generate();
    auto other = fp::SigningKey::generate();
    auto pkg = make_package(key, 2, 50'000, 4096);
    auto expect_error = [](const fp::Package& p, const fp::PublicKey& k, const std::string& needle) {
        try {
            fp::verify_package(p, k);
            ADD_FAILURE() << "accepted; expected an error about " << needle;
        } catch (const fp::PackageError& e) {
            EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
        }
    };
    expect_error(pkg, other.public_key(), "signature");

    auto tampered = pkg;
    tampered.payload[5000] ^= 1;  // inside chunk 1
    expect_error(tampered, key.public_key(), "chunk 1");

    auto edited = pkg;  // manifest changed after signing
    edited.signed_manifest.manifest_json = resign(pkg, key, [](auto& j) { j["model_version"] = 99; }).signed_manifest.manifest_json;
    expect_error(edited, key.public_key(), "signature");

    auto bad_part = resign(pkg, key, [](auto& j) { j["parts"][0]["sha256"] = std::string(64, 'a'); });
    expect_error(bad_part, key.public_key(), "part model");

    auto bad_payload = resign(pkg, key, [](auto& j) { j["payload"]["sha256"] = std::string(64, 'b'); });
    expect_error(bad_payload, key.public_key(), "payload");

    auto short_payload = pkg;
    short_payload.payload.pop_back();
    expect_error(short_payload, key.public_key(), "bytes");
}

TEST(Package, MalformedInputGivesClearErrors) {
    auto key = fp::SigningKey::generate();
    auto pkg = make_package(key, 1, 3000, 1024);
    auto bytes = pkg.to_bytes();
    EXPECT_THROW(fp::Package::from_bytes(bytes.substr(0, 10), "cut.fapkg"), fp::PackageError);
    EXPECT_THROW(fp::Package::from_bytes("NOTAPKG0" + bytes.substr(8), "magic.fapkg"), fp::PackageError);
    EXPECT_THROW(fp::Package::read("/nonexistent/x.fapkg"), std::runtime_error);
    try {
        fp::Manifest::parse(R"({"format":"faceadapt-manifest","format_version":1})");
        FAIL();
    } catch (const fp::PackageError& e) {
        EXPECT_NE(std::string(e.what()).find("model_version"), std::string::npos) << e.what();
    }
    EXPECT_THROW(fp::Manifest::parse("[1,2"), fp::PackageError);
    // A number JSON accepts but a double cannot hold is a clear error, not an escaped
    // nlohmann::out_of_range (found by fuzz_door_messages: it would have ended the door).
    EXPECT_THROW(fp::Manifest::parse("143e348a7ea0od\\"), fp::PackageError);
    EXPECT_THROW(fp::Manifest::parse(R"({"format":"faceadapt-manifest","format_version":1e999})"), fp::PackageError);
    EXPECT_THROW(fp::SignedManifest::parse_envelope("1e999"), fp::PackageError);
    EXPECT_THROW(fp::SignedManifest::parse_envelope(R"({"format":"faceadapt-envelope","key_id":1e999})"), fp::PackageError);
    EXPECT_THROW(fp::SignedManifest::parse_envelope(R"({"format":"x"})"), fp::PackageError);
    // An empty signature is "not 64 bytes", not an empty buffer handed to libsodium (found by
    // fuzz_door_messages under UBSan: corpus finding-empty-signature-hex).
    try {
        (void)fp::SignedManifest::parse_envelope(R"({"format":"faceadapt-envelope","manifest":"{}","signature":""})");
        ADD_FAILURE() << "an empty signature was accepted";
    } catch (const fp::PackageError& e) {
        EXPECT_NE(std::string(e.what()).find("signature is not 64 bytes"), std::string::npos) << e.what();
    }
    EXPECT_THROW(fp::decode_gallery("FAGAL001\x01", 0.6), fp::PackageError);
    fp::PackageInput bad;
    bad.model_bytes = "x";
    bad.model_version = 0;
    EXPECT_THROW(fp::build_package(bad, key), fp::PackageError);
    bad.model_version = 1;
    bad.chunk_bytes = 10;
    EXPECT_THROW(fp::build_package(bad, key), fp::PackageError);
}

// Issue 13 class 6 (found by fuzz_gallery: corpus finding-nan-embedding): the decoder itself
// refuses a non-finite embedding value and a wrong dimension, naming the entry and component.
TEST(Package, GalleryDecoderRefusesNonFiniteValuesAndWrongDimensions) {
    const auto good = faceadapt::test::small_gallery(3);
    const std::string bytes = fp::encode_gallery(good);
    EXPECT_EQ(fp::decode_gallery(bytes, 0.6).entries.size(), 3u);
    auto error_of = [](const std::string& b) {
        try {
            (void)fp::decode_gallery(b, 0.6);
        } catch (const fp::PackageError& e) {
            return std::string(e.what());
        }
        return std::string("(decoded)");
    };
    for (float bad : {NAN, INFINITY, -INFINITY}) {
        auto g = good;
        g.entries[2].embedding[5] = bad;
        const std::string msg = error_of(fp::encode_gallery(g));
        EXPECT_NE(msg.find("entry 2 (" + g.entries[2].name + "): embedding[5] is not finite"), std::string::npos) << msg;
    }
    std::string dim = bytes;
    dim[12] = 64;  // the u32 dim after the magic and the count
    EXPECT_NE(error_of(dim).find("dim 64, expected 128"), std::string::npos) << error_of(dim);
    const std::string seed = slurp(faceadapt::test::source_dir() / "fuzz/corpus/fuzz_gallery/finding-nan-embedding");
    ASSERT_FALSE(seed.empty());
    EXPECT_NE(error_of(seed).find("is not finite"), std::string::npos) << error_of(seed);
}

TEST(DoorStore, InstallKeepsPreviousRefusesDowngradeAndRollsBack) {
    TempDir dir;
    auto key = fp::SigningKey::generate();
    auto v1 = make_package(key, 1, 20'000, 4096);
    auto v2 = make_package(key, 2, 30'000, 4096);
    auto v3 = make_package(key, 3, 10'000, 4096);
    EXPECT_FALSE(fp::read_installed(dir.path()));
    fp::install_package(dir.path(), v1, key.public_key(), "lab");
    auto inst = fp::install_package(dir.path(), v2, key.public_key(), "lab");
    EXPECT_EQ(inst.version, 2);
    EXPECT_EQ(inst.previous_version, 1);
    EXPECT_EQ(slurp(inst.model_file), std::string(v2.part_bytes("model")));
    EXPECT_TRUE(std::filesystem::exists(dir.path() / "versions" / "1" / "model.bin"));
    EXPECT_EQ(fp::load_installed_gallery(inst).entries.size(), 3u);

    try {
        fp::install_package(dir.path(), v1, key.public_key(), "lab");
        FAIL() << "downgrade accepted";
    } catch (const fp::PackageError& e) {
        EXPECT_NE(std::string(e.what()).find("not newer"), std::string::npos) << e.what();
    }
    EXPECT_EQ(fp::read_installed(dir.path())->version, 2);

    fp::install_package(dir.path(), v3, key.public_key(), "lab");
    EXPECT_FALSE(std::filesystem::exists(dir.path() / "versions" / "1"));  // only current + previous kept
    auto back = fp::rollback_installed(dir.path());
    EXPECT_EQ(back.version, 2);
    EXPECT_EQ(back.refuse_up_to, 3);
    EXPECT_THROW(fp::install_package(dir.path(), v3, key.public_key(), "lab"), fp::PackageError);  // rolled back from
    EXPECT_THROW(fp::rollback_installed(dir.path()), std::runtime_error);  // nothing before 2 kept
    // Explicit operator rollback to an older package is allowed with allow_rollback.
    EXPECT_EQ(fp::install_package(dir.path(), v1, key.public_key(), "lab", true).version, 1);

    // A damaged model file on disk is detected before use.
    auto now = *fp::read_installed(dir.path());
    std::ofstream(now.model_file, std::ios::app) << "x";
    EXPECT_THROW(fp::load_installed_gallery(now), fp::PackageError);
}

TEST(DoorStore, InstallRejectsUnsignedAndLeavesInstalledUntouched) {
    TempDir dir;
    auto key = fp::SigningKey::generate();
    auto mallory = fp::SigningKey::generate();
    fp::install_package(dir.path(), make_package(key, 1, 10'000, 4096), key.public_key(), "lab");
    auto before = slurp(fp::read_installed(dir.path())->model_file);
    EXPECT_THROW(fp::install_package(dir.path(), make_package(mallory, 5, 10'000, 4096), key.public_key(), "lab"), fp::PackageError);
    EXPECT_EQ(fp::read_installed(dir.path())->version, 1);
    EXPECT_EQ(slurp(fp::read_installed(dir.path())->model_file), before);
}

TEST(Match, NearestEntryWithinThreshold) {
    fp::Gallery g;
    g.threshold = 0.5;
    fp::GalleryEntry a{"alice", {}}, b{"bob", {}};
    a.embedding[0] = 1.0f;
    b.embedding[1] = 1.0f;
    g.entries = {a, b};
    fp::Embedding probe{};
    probe[0] = 0.9f;
    auto r = fp::match_gallery(g, probe);
    EXPECT_TRUE(r.matched);
    EXPECT_EQ(r.name, "alice");
    EXPECT_NEAR(r.distance, 0.1, 1e-6);
    probe[0] = 0.0f;
    probe[2] = 3.0f;
    r = fp::match_gallery(g, probe);
    EXPECT_FALSE(r.matched);
    EXPECT_FALSE(fp::match_gallery(fp::Gallery{}, probe).matched);
}

TEST(MqttOverrides, FlagsReplaceConfigAndReadPasswordFile) {
    TempDir dir;
    std::ofstream(dir.path() / "pw") << "s3cret\nignored second line\n";
    faceadapt::config::MqttConfig base;
    base.username = "from-config";
    base.ca_file = "/etc/ca.pem";
    fp::MqttOverrides o;
    o.broker = "mqtts://127.0.0.1:8883";
    o.username = "door1";
    o.password_file = dir.path() / "pw";
    auto c = fp::apply_overrides(base, o);
    EXPECT_EQ(c.broker, "mqtts://127.0.0.1:8883");
    EXPECT_EQ(c.username, "door1");
    EXPECT_EQ(c.password.str(), "s3cret");
    EXPECT_EQ(c.ca_file, "/etc/ca.pem");  // not overridden
    o.broker = "http://127.0.0.1";
    EXPECT_THROW(fp::apply_overrides(base, o), std::invalid_argument);
    o.broker.clear();
    o.password_file = dir.path() / "missing";
    EXPECT_THROW(fp::apply_overrides(base, o), std::runtime_error);
}
