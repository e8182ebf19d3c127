// The door's update channel under attack and faults (issue 13), on a real mosquitto and real
// filesystems: stale and unverified messages, signed nonsense, damaged install folders, a full
// disk, untrusted strings, log floods, key folder permissions. After every attack the
// installed model is byte-identical and the next good package installs without a restart.
#include <sys/mount.h>
#include <sys/stat.h>

#include <atomic>
#include <cmath>
#include <deque>
#include <fstream>
#include <functional>
#include <limits>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>
#include <sodium.h>

#include "faceadapt/publish/door_agent.hpp"
#include "faceadapt/publish/package.hpp"
#include "faceadapt/publish/protocol.hpp"
#include "faceadapt/publish/publisher.hpp"
#include "mosquitto_fixture.hpp"
#include "test_helpers.hpp"

namespace fs = std::filesystem;
namespace fp = faceadapt::publish;
using namespace std::chrono_literals;
using faceadapt::test::make_package;
using faceadapt::test::slurp;
using faceadapt::test::Mosquitto;
using faceadapt::test::MosquittoOptions;
using faceadapt::test::RawClient;
using faceadapt::test::TempDir;

namespace {

constexpr const char* kAttackedSite = "lab";

MosquittoOptions broker_options() {
    MosquittoOptions o;
    o.users = {{"daemon", "daemon-secret"}, {"door0", "pw0"}};
    o.acl = "user daemon\ntopic readwrite faceadapt/#\n\npattern read faceadapt/+/model/#\npattern readwrite faceadapt/+/door/%u/#\n";
    return o;
}

// Every door-state message door0 publishes, as seen by a subscriber on the broker.
class StateLog {
public:
    explicit StateLog(const faceadapt::config::MqttConfig& cfg) : client_(cfg.broker, "state-log") {
        auto o = mqtt::connect_options_builder().clean_session(true).user_name(cfg.username).password(cfg.password.str()).finalize();
        client_.set_message_callback([this](mqtt::const_message_ptr m) {
            std::lock_guard lock(mutex_);
            raw_.push_back(m->get_payload_str());
        });
        client_.connect(o)->wait_for(5s);
        client_.subscribe("faceadapt/lab/door/door0/state", 1)->wait_for(5s);
    }
    ~StateLog() {
        try {
            client_.disconnect()->wait_for(2s);
        } catch (...) {
        }
    }
    std::vector<std::string> raw() {
        std::lock_guard lock(mutex_);
        return raw_;
    }
    std::size_t count() { return raw().size(); }
private:
    mqtt::async_client client_;
    std::mutex mutex_;
    std::vector<std::string> raw_;
};

// Counts the log lines spdlog's default logger writes (the door agent logs through it).
class LineCounter : public spdlog::sinks::base_sink<std::mutex> {
public:
    std::atomic<std::size_t> lines{0};
    std::atomic<std::size_t> warnings{0};
protected:
    void sink_it_(const spdlog::details::log_msg& msg) override {
        ++lines;
        if (msg.level >= spdlog::level::warn) ++warnings;
    }
    void flush_() override {}
};

std::string sha256_hex(std::string_view bytes) {
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    for (auto b : digest) {
        out += hex[b >> 4];
        out += hex[b & 15];
    }
    return out;
}

// A package as an attacker holding the signing key would make it: any model bytes, any
// gallery, any manifest field (our builder refuses these; a forger does not use it).
fp::Package forge(const fp::SigningKey& key, std::int64_t version, const std::string& model, const fp::Gallery& gallery,
                  const std::function<void(fp::Manifest&)>& edit) {
    fp::Manifest m;
    m.model_version = version;
    m.parent_version = version - 1;
    m.created = "2026-11-27T01:02:03Z";
    m.key_id = key.public_key().key_id();
    m.site = kAttackedSite;
    m.architecture.model_format = std::string(fp::kModelFormatLibtorch);  // fake_model_file's format
    m.gallery_entries = gallery.entries.size();
    m.match_threshold = gallery.threshold;
    m.chunk_size = 8 * 1024;
    if (edit) edit(m);
    auto g = fp::encode_gallery(gallery);
    m.parts = {{"model", 0, model.size(), sha256_hex(model)}, {"gallery", model.size(), g.size(), sha256_hex(g)}};
    auto payload = model + g;
    m.payload_size = payload.size();
    m.payload_sha256 = sha256_hex(payload);
    m.chunk_sha256.clear();
    for (std::size_t off = 0; off < payload.size(); off += m.chunk_size)
        m.chunk_sha256.push_back(sha256_hex(std::string_view(payload).substr(off, m.chunk_size)));
    fp::SignedManifest sm{m.to_json(), {}, m.key_id};
    sm.signature = key.sign(sm.manifest_json);
    return fp::Package::from_parts(sm.envelope(), payload);
}

class DoorAttack : public ::testing::Test {
protected:
    DoorAttack() : broker_(broker_options()), key_(fp::SigningKey::generate()) {}

    fp::PublisherOptions publisher_options() {
        fp::PublisherOptions o;
        o.site = kAttackedSite;
        o.mqtt = broker_.mqtt_config("daemon", "daemon-secret");
        o.connect_timeout = 5s;
        o.publish_timeout = 60s;
        o.republish_on_reconnect = false;
        return o;
    }
    fp::DoorAgentOptions door_options() {
        fp::DoorAgentOptions o;
        o.site = kAttackedSite;
        o.door = "door0";
        o.mqtt = broker_.mqtt_config("door0", "pw0");
        o.public_key = key_.public_key();
        o.dir = dir();
        o.stall_resubscribe = 1s;
        return o;
    }
    fs::path dir() const { return tmp_.path() / "door0"; }
    std::unique_ptr<fp::DoorAgent> start_door() {
        auto a = std::make_unique<fp::DoorAgent>(door_options());
        a->start();
        return a;
    }
    static bool installed(const fp::DoorAgent& a, std::int64_t v, std::chrono::milliseconds t = 30s) {
        return a.wait_for([v](const fp::DoorState& s) { return s.installed_version == v; }, t);
    }
    fp::Publisher& publisher() {
        if (!publisher_) publisher_ = std::make_unique<fp::Publisher>(publisher_options());
        return *publisher_;
    }
    // Installs version 1 over the air and remembers its model bytes.
    void install_v1() {
        door_ = start_door();
        publisher().publish(make_package(key_, 1, 60'000, 8 * 1024));
        ASSERT_TRUE(installed(*door_, 1)) << door_->state().to_json();
        model_before_ = slurp(fp::read_installed(dir())->model_file);
    }
    void expect_model_untouched(std::int64_t version = 1) {
        auto inst = fp::read_installed(dir());
        ASSERT_TRUE(inst);
        EXPECT_EQ(inst->version, version);
        EXPECT_EQ(slurp(inst->model_file), model_before_);
    }
    // Publishes `pkg`'s chunks except `skip` and then its manifest, retained, like a publisher
    // that has not finished: the door stages it and waits for chunk `skip`.
    void publish_all_but(const fp::Package& pkg, std::size_t skip) {
        auto& raw = daemon_raw();
        for (std::size_t i = 0; i < pkg.manifest.chunk_count(); ++i)
            if (i != skip) raw.publish(publisher().topics().chunk(pkg.manifest.model_version, i), std::string(pkg.chunk(i)));
        raw.publish(publisher().topics().manifest(), pkg.signed_manifest.envelope());
    }
    RawClient& daemon_raw() {
        if (!raw_) {
            raw_ = std::make_unique<RawClient>(broker_.mqtt_config("daemon", "daemon-secret"), "attacker");
            raw_->connect();
        }
        return *raw_;
    }
    Mosquitto broker_;
    fp::SigningKey key_;
    TempDir tmp_;
    std::unique_ptr<fp::Publisher> publisher_;
    std::unique_ptr<RawClient> raw_;
    std::unique_ptr<fp::DoorAgent> door_;
    std::string model_before_;
};

// ---- class 1: unsigned or stale messages never change the transfer, the state or the ack ---

TEST_F(DoorAttack, ReplayedAndBadlySignedManifestsDuringATransferChangeNothing) {
    install_v1();
    StateLog states(broker_.mqtt_config("daemon", "daemon-secret"));
    auto v1_envelope = slurp(dir() / "versions" / "1" / "manifest.json");
    auto v3 = make_package(key_, 3, 80'000, 8 * 1024);
    auto last = v3.manifest.chunk_count() - 1;
    publish_all_but(v3, last);
    ASSERT_TRUE(door_->wait_for([&](const fp::DoorState& s) { return s.status == "receiving" && s.offered_version == 3 &&
                                                                     s.chunks_received == last; }, 30s))
        << door_->state().to_json();
    auto ignored_before = door_->state().ignored;

    // A replay of the installed, validly signed v1 manifest; v3's text with a bad signature;
    // a v2 signed manifest (newer than installed, older than the one being received); junk.
    auto& raw = daemon_raw();
    raw.publish(publisher().topics().manifest(), v1_envelope, false);
    auto forged = nlohmann::json::parse(v3.signed_manifest.envelope());
    forged["signature"] = std::string(128, 'a');
    raw.publish(publisher().topics().manifest(), forged.dump(), false);
    raw.publish(publisher().topics().manifest(), make_package(key_, 2, 10'000, 8 * 1024).signed_manifest.envelope(), false);
    raw.publish(publisher().topics().manifest(), "{not json", false);
    ASSERT_TRUE(door_->wait_for([&](const fp::DoorState& s) { return s.ignored >= ignored_before + 4; }, 20s))
        << door_->state().to_json();
    auto s = door_->state();
    EXPECT_EQ(s.status, "receiving");
    EXPECT_EQ(s.offered_version, 3);
    EXPECT_EQ(s.chunks_received, last);
    EXPECT_EQ(s.error, "");
    EXPECT_FALSE(s.last_ignored.empty());

    // The transfer goes on: the last chunk installs v3, and no state ever claimed a refusal.
    raw.publish(publisher().topics().chunk(3, last), std::string(v3.chunk(last)));
    ASSERT_TRUE(installed(*door_, 3)) << door_->state().to_json();
    EXPECT_EQ(slurp(fp::read_installed(dir())->model_file), std::string(v3.part_bytes("model")));
    auto acks = publisher().wait_for_acks(3, {"door0"}, 10s);
    EXPECT_EQ(acks.acked, std::vector<std::string>{"door0"});
    for (const auto& text : states.raw()) {
        auto st = fp::DoorState::parse(text);
        EXPECT_NE(st.status, "rejected") << text;
        EXPECT_NE(st.status, "error") << text;
    }
}

TEST_F(DoorAttack, ARebuiltPackageOfTheVersionBeingReceivedIsFollowedOnlyWhenItsChunksArrive) {
    install_v1();
    auto model = faceadapt::test::fake_model_file(40'000, 2);
    auto first = forge(key_, 2, model, faceadapt::test::small_gallery(2), {});
    auto rebuilt = forge(key_, 2, model, faceadapt::test::small_gallery(3), {});  // other gallery, same version
    ASSERT_NE(first.signed_manifest.envelope(), rebuilt.signed_manifest.envelope());
    auto last = first.manifest.chunk_count() - 1;
    ASSERT_NE(first.chunk(last), rebuilt.chunk(last));
    publish_all_but(first, last);
    ASSERT_TRUE(door_->wait_for([&](const fp::DoorState& s) { return s.chunks_received == last && s.offered_version == 2; }, 30s))
        << door_->state().to_json();
    // The rebuilt manifest alone changes nothing; once its chunks are on the broker the door
    // follows it and installs it. No state ever claims a refusal of version 2.
    daemon_raw().publish(publisher().topics().manifest(), rebuilt.signed_manifest.envelope(), false);
    ASSERT_TRUE(door_->wait_for([](const fp::DoorState& s) { return s.ignored >= 1; }, 10s)) << door_->state().to_json();
    EXPECT_EQ(door_->state().refused_version, 0);
    EXPECT_EQ(door_->state().chunks_received, last);
    publisher().publish(rebuilt);
    ASSERT_TRUE(installed(*door_, 2)) << door_->state().to_json();
    EXPECT_EQ(slurp(fp::read_installed(dir())->gallery_file), std::string(rebuilt.part_bytes("gallery")));
    EXPECT_EQ(publisher().wait_for_acks(2, {"door0"}, 5s).acked, std::vector<std::string>{"door0"});
    EXPECT_EQ(door_->state().refused_version, 0);
}

TEST_F(DoorAttack, StaleSignedManifestIsCountedAndTheAckStaysTrue) {
    install_v1();
    publisher().publish(make_package(key_, 3, 20'000, 8 * 1024));
    ASSERT_TRUE(installed(*door_, 3));
    model_before_ = slurp(fp::read_installed(dir())->model_file);
    auto ignored_before = door_->state().ignored;
    // An operator (or a replay) publishes v2, older than the installed v3: the door's status
    // stays "installed", the refusal is reported as refused_version, the ack says REJECTED.
    publisher().publish(make_package(key_, 2, 20'000, 8 * 1024));
    auto acks = publisher().wait_for_acks(2, {"door0"}, 20s);
    EXPECT_EQ(acks.rejected, std::vector<std::string>{"door0"});
    auto s = door_->state();
    EXPECT_EQ(s.status, "installed");
    EXPECT_EQ(s.offered_version, 3);
    EXPECT_EQ(s.refused_version, 2);
    EXPECT_NE(s.refused_reason.find("not newer"), std::string::npos) << s.refused_reason;
    EXPECT_GT(s.ignored, ignored_before);
    expect_model_untouched(3);
    // The next good package installs.
    publisher().publish(make_package(key_, 4, 20'000, 8 * 1024));
    EXPECT_TRUE(installed(*door_, 4)) << door_->state().to_json();
}

TEST_F(DoorAttack, WrongKeyIsNeverReportedAsARefusalOfTheVersion) {
    install_v1();
    auto mallory = fp::SigningKey::generate();
    publisher().publish(make_package(mallory, 5, 20'000, 8 * 1024));
    ASSERT_TRUE(door_->wait_for([](const fp::DoorState& s) { return s.ignored >= 1; }, 20s)) << door_->state().to_json();
    auto s = door_->state();
    EXPECT_EQ(s.status, "installed");
    EXPECT_EQ(s.refused_version, 0);
    EXPECT_NE(s.last_ignored.find("signature"), std::string::npos) << s.last_ignored;
    auto acks = publisher().wait_for_acks(5, {"door0"}, 2s);
    EXPECT_EQ(acks.missing, std::vector<std::string>{"door0"});  // it did not install and did not refuse v5
    expect_model_untouched();
    publisher().publish(make_package(key_, 6, 20'000, 8 * 1024));
    EXPECT_TRUE(installed(*door_, 6)) << door_->state().to_json();
}

// ---- class 5: a damaged install folder does not brick the door -----------------------------

class DamagedFolder : public DoorAttack, public ::testing::WithParamInterface<const char*> {};

TEST_P(DamagedFolder, DoorStartsReportsTheDamageAndInstallsTheRetainedPackage) {
    auto pkg = make_package(key_, 1, 40'000, 8 * 1024);
    fp::install_package(dir(), pkg, key_.public_key(), kAttackedSite);
    std::string damage = GetParam();
    if (damage == "truncated installed.json") {
        auto text = slurp(dir() / "installed.json");
        std::ofstream(dir() / "installed.json", std::ios::trunc) << text.substr(0, text.size() / 2);
    } else if (damage == "missing manifest.json") {
        fs::remove(dir() / "versions" / "1" / "manifest.json");
    } else if (damage == "junk manifest.json") {
        std::ofstream(dir() / "versions" / "1" / "manifest.json", std::ios::trunc) << "\x01junk\xff";
    } else if (damage == "damaged model.bin") {
        std::ofstream(dir() / "versions" / "1" / "model.bin", std::ios::trunc) << "xx";
    }
    std::unique_ptr<fp::DoorAgent> door;
    ASSERT_NO_THROW(door = std::make_unique<fp::DoorAgent>(door_options()));
    EXPECT_FALSE(door->state().damage.empty()) << door->state().to_json();
    door->start();
    publisher().publish(pkg);  // the current package, retained, repairs it
    ASSERT_TRUE(door->wait_for([](const fp::DoorState& s) { return s.installed_version == 1 && s.damage.empty() &&
                                                                   s.status == "installed"; }, 30s))
        << door->state().to_json();
    EXPECT_EQ(slurp(fp::read_installed(dir())->model_file), std::string(pkg.part_bytes("model")));
    EXPECT_NO_THROW(fp::load_installed_gallery(*fp::read_installed(dir())));
    publisher().publish(make_package(key_, 2, 40'000, 8 * 1024));
    EXPECT_TRUE(installed(*door, 2)) << door->state().to_json();
}

INSTANTIATE_TEST_SUITE_P(Damage, DamagedFolder,
                         ::testing::Values("truncated installed.json", "missing manifest.json", "junk manifest.json",
                                           "damaged model.bin"));

// ---- class 3: a full disk is a transient fault, not a rejection -----------------------------

class Tmpfs {
public:
    Tmpfs(const fs::path& where, const std::string& size) : where_(where) {
        fs::create_directories(where_);
        mounted_ = ::mount("tmpfs", where_.c_str(), "tmpfs", 0, ("size=" + size).c_str()) == 0;
        if (!mounted_) error_ = std::strerror(errno);
    }
    ~Tmpfs() {
        if (mounted_) ::umount2(where_.c_str(), MNT_DETACH);
    }
    bool mounted() const { return mounted_; }
    const std::string& error() const { return error_; }
    bool resize(const std::string& size) {
        return ::mount("tmpfs", where_.c_str(), "tmpfs", MS_REMOUNT, ("size=" + size).c_str()) == 0;
    }
private:
    fs::path where_;
    bool mounted_ = false;
    std::string error_;
};

// The door's folder on a 2 MiB tmpfs; a package that is staged but cannot be installed there
// (1.2 MB staged + 1.2 MB being installed do not fit). Skips when it cannot mount.
class FullDisk : public DoorAttack {
protected:
    void SetUp() override {
        disk_ = std::make_unique<Tmpfs>(dir(), "2m");
        if (!disk_->mounted()) GTEST_SKIP() << "cannot mount a 2 MiB tmpfs on " << dir() << ": " << disk_->error() << " (needs root)";
        door_ = start_door();
        pkg_ = make_package(key_, 1, 1'200'000, 64 * 1024);
        publisher().publish(pkg_);
        ASSERT_TRUE(door_->wait_for([](const fp::DoorState& s) { return s.status == "error"; }, 30s)) << door_->state().to_json();
    }
    void TearDown() override {
        if (door_) door_->stop();  // before the tmpfs goes
        door_.reset();
        disk_.reset();
    }
    std::unique_ptr<Tmpfs> disk_;
    fp::Package pkg_;
};

TEST_F(FullDisk, IsRetriedNotRememberedAsRejected) {
    auto& pkg = pkg_;
    auto& disk = *disk_;
    auto s = door_->state();
    EXPECT_NE(s.error.find("No space left on device"), std::string::npos) << s.error;
    EXPECT_EQ(s.installed_version, 0);
    EXPECT_NE(s.status, "rejected");
    auto acks = publisher().wait_for_acks(1, {"door0"}, 1s);
    EXPECT_TRUE(acks.rejected.empty()) << "a full disk is not a refusal of the package";
    // No staging debris is left in versions/ (only the staged chunks are kept for the retry).
    for (const auto& e : fs::directory_iterator(dir() / "versions"))
        EXPECT_FALSE(e.path().filename().string().starts_with(".tmp")) << e.path();
    // Space comes back; a re-publish (and the door's own retry) installs it.
    ASSERT_TRUE(disk.resize("16m"));
    publisher().publish(pkg);
    ASSERT_TRUE(installed(*door_, 1)) << door_->state().to_json();
    EXPECT_EQ(slurp(fp::read_installed(dir())->model_file), std::string(pkg.part_bytes("model")));
}

TEST_F(FullDisk, IsRetriedByTheDoorWithoutARepublish) {
    ASSERT_TRUE(disk_->resize("16m"));
    ASSERT_TRUE(installed(*door_, 1, 60s)) << door_->state().to_json();
    EXPECT_EQ(slurp(fp::read_installed(dir())->model_file), std::string(pkg_.part_bytes("model")));
}

// ---- class 6: signed nonsense is refused before install --------------------------------------

class SignedNonsense : public DoorAttack, public ::testing::WithParamInterface<const char*> {};

TEST_P(SignedNonsense, IsRefusedAndTheModelStaysByteIdentical) {
    install_v1();
    std::string what = GetParam();
    auto model = faceadapt::test::fake_model_file(30'000, 2);
    auto gallery = faceadapt::test::small_gallery(2);
    std::function<void(fp::Manifest&)> edit;
    if (what == "random model") {
        model = faceadapt::test::random_bytes(30'000, 9);
    } else if (what == "other architecture in the model") {
        model = faceadapt::test::fake_model_file(30'000, 2, "other-net");
    } else if (what == "model CRC") {
        model[model.size() / 2] ^= 1;
    } else if (what == "truncated model") {
        model.resize(model.size() - 100);
    } else if (what == "NaN embedding") {
        gallery.entries[1].embedding[7] = NAN;
    } else if (what == "infinite embedding") {
        gallery.entries[0].embedding[0] = INFINITY;
    } else if (what == "name with a newline and ANSI") {
        gallery.entries[0].name = "alice\n\x1b[31mroot";
    } else if (what == "name of invalid UTF-8") {
        gallery.entries[0].name = "al\xffice";
    } else if (what == "threshold 1e300") {
        edit = [](fp::Manifest& m) { m.match_threshold = 1e300; };
    } else if (what == "negative threshold") {
        edit = [](fp::Manifest& m) { m.match_threshold = -0.5; };
    } else if (what == "unknown model format") {
        edit = [](fp::Manifest& m) { m.architecture.model_format = "tensorflow-saved-model"; };
    } else if (what == "embedding dim 512") {
        edit = [](fp::Manifest& m) { m.architecture.embedding_dim = 512; };
    } else if (what == "manifest architecture differs from the model's") {
        edit = [](fp::Manifest& m) { m.architecture.name = "other-net"; };
    } else if (what == "random ONNX model") {
        model = faceadapt::test::random_bytes(30'000, 9);
        edit = [](fp::Manifest& m) { m.architecture.model_format = "onnx"; };
    } else if (what == "ONNX of another architecture") {
        model = faceadapt::test::fake_onnx_model_file(30'000, 2);
        edit = [](fp::Manifest& m) {
            m.architecture.model_format = "onnx";
            m.architecture.name = "other-net";
        };
    } else if (what == "truncated ONNX model") {
        model = faceadapt::test::fake_onnx_model_file(30'000, 2);
        model.resize(model.size() - 100);
        edit = [](fp::Manifest& m) { m.architecture.model_format = "onnx"; };
    } else if (what == "signed for another site") {
        edit = [](fp::Manifest& m) { m.site = "other-site"; };
    } else if (what == "no site (format_version 1)") {
        edit = [](fp::Manifest& m) {
            m.site.clear();
            m.format_version = 1;
        };
    }
    auto pkg = forge(key_, 2, model, gallery, edit);
    publisher().publish(pkg);
    if (what == "signed for another site" || what == "no site (format_version 1)") {
        // Not bound to this site: not an offer to this door at all, so ignored and counted.
        ASSERT_TRUE(door_->wait_for([](const fp::DoorState& s) { return s.ignored >= 1; }, 30s)) << door_->state().to_json();
        EXPECT_NE(door_->state().last_ignored.find("site"), std::string::npos) << door_->state().last_ignored;
        EXPECT_EQ(publisher().wait_for_acks(2, {"door0"}, 1s).missing, std::vector<std::string>{"door0"});
    } else {
        auto acks = publisher().wait_for_acks(2, {"door0"}, 30s);
        EXPECT_EQ(acks.rejected, std::vector<std::string>{"door0"}) << door_->state().to_json();
        EXPECT_EQ(door_->state().status, "rejected");
    }
    expect_model_untouched();
    EXPECT_TRUE(fs::is_empty(dir() / "staging"));
    EXPECT_FALSE(fs::exists(dir() / "versions" / "2"));
    // The offline path refuses it too.
    TempDir other;
    EXPECT_THROW(fp::install_package(other.path(), pkg, key_.public_key(), kAttackedSite), fp::PackageError);
    // The next good package installs.
    publisher().publish(make_package(key_, 3, 20'000, 8 * 1024));
    EXPECT_TRUE(installed(*door_, 3)) << door_->state().to_json();
}

INSTANTIATE_TEST_SUITE_P(Nonsense, SignedNonsense,
                         ::testing::Values("random model", "other architecture in the model", "model CRC", "truncated model",
                                           "NaN embedding", "infinite embedding", "name with a newline and ANSI",
                                           "name of invalid UTF-8",
                                           "threshold 1e300", "negative threshold", "unknown model format",
                                           "embedding dim 512", "manifest architecture differs from the model's",
                                           "signed for another site", "no site (format_version 1)",
                                           "random ONNX model", "ONNX of another architecture", "truncated ONNX model"));

// ---- class 7: untrusted strings are sanitised before logs, state and JSON -------------------

bool printable_ascii_or_utf8(const std::string& s) {
    for (unsigned char c : s)
        if (c < 0x20 || c == 0x7f) return false;
    return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::strict).size() > 0;
}

TEST_F(DoorAttack, HostileKeyIdAndInvalidUtf8NeverReachTheStateRaw) {
    install_v1();
    StateLog states(broker_.mqtt_config("daemon", "daemon-secret"));
    auto mallory = fp::SigningKey::generate();
    auto pkg = make_package(mallory, 2, 10'000, 8 * 1024);
    auto env = nlohmann::json::parse(pkg.signed_manifest.envelope());
    env["key_id"] = "\x1b[2J\x1b[31mKEY\nFAKE-LOG-LINE";
    auto& raw = daemon_raw();
    raw.publish(publisher().topics().manifest(), env.dump(), false);
    std::string bad_utf8 = "{\"format\":\"faceadapt-envelope\",\"manifest\":\"\xff\xfe\x80\",\"signature\":\"00\"}";
    raw.publish(publisher().topics().manifest(), bad_utf8, false);
    raw.publish(publisher().topics().manifest(), std::string("\xc3\x28\x1b[0m\n", 6), false);
    ASSERT_TRUE(door_->wait_for([](const fp::DoorState& s) { return s.ignored >= 3; }, 20s)) << door_->state().to_json();
    auto s = door_->state();
    EXPECT_NO_THROW((void)s.to_json());
    EXPECT_TRUE(printable_ascii_or_utf8(s.last_ignored)) << s.last_ignored;
    // The state on the broker is valid JSON without control characters, whatever came in.
    publisher().publish(make_package(key_, 3, 10'000, 8 * 1024));
    ASSERT_TRUE(installed(*door_, 3)) << door_->state().to_json();
    for (const auto& text : states.raw()) {
        nlohmann::json j;
        ASSERT_NO_THROW(j = nlohmann::json::parse(text)) << text;
        for (const auto& [k, v] : j.items())
            if (v.is_string()) {
                EXPECT_TRUE(printable_ascii_or_utf8(v.get<std::string>())) << k << ": " << v;
            }
    }
}

// ---- class 8: the error path is throttled with counts -----------------------------------------

TEST_F(DoorAttack, FiftyThousandBadChunksGiveAFewLinesAndStatesWithCounts) {
    install_v1();
    auto v2 = make_package(key_, 2, 30'000, 8 * 1024);
    auto last = v2.manifest.chunk_count() - 1;
    publish_all_but(v2, last);
    ASSERT_TRUE(door_->wait_for([&](const fp::DoorState& s) { return s.chunks_received == last && s.offered_version == 2; }, 30s))
        << door_->state().to_json();
    StateLog states(broker_.mqtt_config("daemon", "daemon-secret"));
    auto counter = std::make_shared<LineCounter>();
    spdlog::default_logger()->sinks().push_back(counter);
    auto& cli = daemon_raw().client();
    const std::size_t kBad = 50'000;
    auto topic = publisher().topics().chunk(2, last);
    std::string junk(v2.chunk(last).size(), 'x');
    std::deque<mqtt::delivery_token_ptr> in_flight;
    for (std::size_t i = 0; i < kBad; ++i) {
        junk[i % junk.size()] = static_cast<char>('a' + i % 26);
        in_flight.push_back(cli.publish(topic, junk.data(), junk.size(), 1, false));
        if (in_flight.size() >= 64) {
            in_flight.front()->wait_for(30s);
            in_flight.pop_front();
        }
    }
    for (auto& t : in_flight) t->wait_for(30s);
    ASSERT_TRUE(door_->wait_for([&](const fp::DoorState& s) { return s.ignored >= kBad / 2; }, 60s)) << door_->state().to_json();
    std::this_thread::sleep_for(1500ms);  // let the last throttled report out, then count
    auto lines = counter->lines.load();
    auto state_messages = states.count();
    spdlog::default_logger()->sinks().pop_back();
    std::cerr << "bad chunks ignored " << door_->state().ignored << ", log lines " << lines << ", state messages "
              << state_messages << "\n";
    EXPECT_LT(lines, 100u);
    EXPECT_LT(state_messages, 100u);
    EXPECT_EQ(door_->state().status, "receiving");
    daemon_raw().publish(topic, std::string(v2.chunk(last)));
    EXPECT_TRUE(installed(*door_, 2)) << door_->state().to_json();
}

// ---- class 2 on the daemon's side: invented doors and huge door states are bounded -----------

TEST_F(DoorAttack, PublisherKeepsAtMostMaxDoorsAndIgnoresHugeStates) {
    auto o = publisher_options();
    o.max_doors = 50;
    fp::Publisher pub(o);
    auto& cli = daemon_raw().client();
    std::deque<mqtt::delivery_token_ptr> in_flight;
    for (int i = 0; i < 500; ++i) {
        auto state = "{\"door\":\"x\",\"status\":\"installed\",\"installed_version\":1}";
        in_flight.push_back(cli.publish("faceadapt/lab/door/fake" + std::to_string(i) + "/state", state, std::strlen(state), 1, false));
        if (in_flight.size() >= 64) {
            in_flight.front()->wait_for(10s);
            in_flight.pop_front();
        }
    }
    std::string huge(1u << 20, ' ');
    daemon_raw().publish("faceadapt/lab/door/fake0/state", "{\"door\":\"x\",\"status\":\"rejected\",\"installed_version\":9}" + huge, false);
    for (auto& t : in_flight) t->wait_for(10s);
    // A real door still reports after the flood and is seen (its state comes once it installs).
    install_v1();
    EXPECT_EQ(publisher().wait_for_acks(1, {"door0"}, 10s).acked.size(), 1u);
    auto states = pub.door_states();
    EXPECT_EQ(states.size(), 50u);
    ASSERT_TRUE(states.contains("fake0"));
    EXPECT_EQ(states["fake0"].installed_version, 1);  // the 1 MB state was ignored
}

// ---- class 12: the key folder is 0700 whatever the umask --------------------------------------

TEST(Keygen, KeyFolderIs0700UnderUmask000) {
    TempDir tmp;
    auto old = ::umask(0);
    auto key = fp::SigningKey::generate();
    key.save(tmp.path() / "site" / "keys");
    ::umask(old);
    struct stat st {};
    ASSERT_EQ(::stat((tmp.path() / "site" / "keys").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    ASSERT_EQ(::stat((tmp.path() / "site" / "keys" / "signing.key").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
}

}  // namespace

// Numbers from the broker are read as JSON integers in range, never cast: nlohmann's get<T>()
// casts a float that does not fit T (undefined behaviour; libFuzzer's fuzz_door_messages found a
// door state with offered_version 8.9e64) and wraps a negative count.
TEST(HostileNumbers, FloatsAndOutOfRangeIntegersInDoorStatesAndManifestsAreRefusedNotCast) {
    fp::DoorState st;
    st.door = "front";
    st.status = "receiving";
    st.installed_version = 2;
    st.offered_version = 3;
    const auto state = nlohmann::json::parse(st.to_json());
    EXPECT_EQ(fp::DoorState::parse(state.dump()).offered_version, 3);
    auto state_refused = [&](const char* key, const nlohmann::json& value) -> std::string {
        auto j = state;
        j[key] = value;
        try {
            fp::DoorState::parse(j.dump());
            return "accepted";
        } catch (const std::invalid_argument& e) {
            return e.what();
        }
    };
    EXPECT_EQ(state_refused("offered_version", 8.88889e64), "door state: offered_version is not an integer in range");
    EXPECT_EQ(state_refused("installed_version", 2.5), "door state: installed_version is not an integer in range");
    EXPECT_EQ(state_refused("installed_version", std::numeric_limits<std::uint64_t>::max()),
              "door state: installed_version is not an integer in range");
    EXPECT_EQ(state_refused("chunks_received", -1), "door state: chunks_received is not an integer in range");
    EXPECT_EQ(state_refused("ignored", "7"), "door state: ignored is not an integer in range");
    EXPECT_THROW(fp::DoorState::parse("[1, 2]"), std::invalid_argument);

    fp::PackageInput in;
    in.site = "lab";
    in.model_bytes = faceadapt::test::fake_onnx_model_file(4096, 1);
    in.gallery = faceadapt::test::small_gallery(1);
    const auto manifest = nlohmann::json::parse(fp::build_package(in, fp::SigningKey::generate()).signed_manifest.manifest_json);
    EXPECT_NO_THROW(fp::Manifest::parse(manifest.dump()));
    auto manifest_refused = [&](const std::function<void(nlohmann::json&)>& edit) -> std::string {
        auto j = manifest;
        edit(j);
        try {
            fp::Manifest::parse(j.dump());
            return "accepted";
        } catch (const fp::PackageError& e) {
            return e.what();
        }
    };
    EXPECT_EQ(manifest_refused([](auto& j) { j["payload"]["size"] = 1e30; }),
              "manifest: payload.size is not an integer in range");
    EXPECT_EQ(manifest_refused([](auto& j) { j["model_version"] = 3e20; }), "manifest: model_version is not an integer in range");
    EXPECT_EQ(manifest_refused([](auto& j) { j["parts"][0]["offset"] = -1; }),
              "manifest: parts[].offset is not an integer in range");
    EXPECT_EQ(manifest_refused([](auto& j) { j["format_version"] = 2.0; }), "manifest: format_version is not an integer in range");
}
