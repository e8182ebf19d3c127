// End to end over a real mosquitto: publisher -> broker -> door agents.
#include <atomic>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "faceadapt/publish/door_agent.hpp"
#include "faceadapt/publish/publisher.hpp"
#include "mosquitto_fixture.hpp"
#include "test_helpers.hpp"

namespace fp = faceadapt::publish;
using namespace std::chrono_literals;
using faceadapt::test::make_package;
using faceadapt::test::slurp;
using faceadapt::test::Mosquitto;
using faceadapt::test::MosquittoOptions;
using faceadapt::test::RawClient;
using faceadapt::test::TempDir;

namespace {

constexpr const char* kSite = "lab";

std::string acl_text() {
    // The daemon owns the site; each door may only read the model and write its own state.
    return "user daemon\n"
           "topic readwrite faceadapt/#\n"
           "\n"
           "pattern read faceadapt/+/model/#\n"
           "pattern readwrite faceadapt/+/door/%u/#\n";
}

MosquittoOptions broker_options(int doors) {
    MosquittoOptions o;
    o.users.push_back({"daemon", "daemon-secret"});
    for (int i = 0; i < doors; ++i) o.users.push_back({"door" + std::to_string(i), "pw" + std::to_string(i)});
    o.acl = acl_text();
    return o;
}

class Transfer : public ::testing::Test {
protected:
    static constexpr int kDoors = 20;
    Transfer() : broker_(broker_options(kDoors)), key_(fp::SigningKey::generate()) {}

    fp::PublisherOptions publisher_options() {
        fp::PublisherOptions o;
        o.site = kSite;
        o.mqtt = broker_.mqtt_config("daemon", "daemon-secret");
        o.connect_timeout = 5s;
        o.publish_timeout = 120s;
        return o;
    }
    fp::DoorAgentOptions door_options(int i, const std::filesystem::path& dir) {
        fp::DoorAgentOptions o;
        o.site = kSite;
        o.door = "door" + std::to_string(i);
        o.mqtt = broker_.mqtt_config(o.door, "pw" + std::to_string(i));
        o.public_key = key_.public_key();
        o.dir = dir;
        o.stall_resubscribe = 2s;
        return o;
    }
    std::unique_ptr<fp::DoorAgent> start_door(int i, const std::filesystem::path& dir) {
        auto agent = std::make_unique<fp::DoorAgent>(door_options(i, dir));
        agent->start();
        return agent;
    }
    static bool installed(const fp::DoorAgent& a, std::int64_t v, std::chrono::milliseconds t = 30s) {
        return a.wait_for([v](const fp::DoorState& s) { return s.installed_version == v; }, t);
    }

    Mosquitto broker_;
    fp::SigningKey key_;
    TempDir tmp_;
    std::ostringstream log_;  // outlives the sink a test adds
};

TEST_F(Transfer, TwentyDoorsReceiveA25MBPackageAndAck) {
    std::vector<std::unique_ptr<fp::DoorAgent>> doors;
    std::vector<std::string> ids;
    for (int i = 0; i < kDoors; ++i) {
        doors.push_back(start_door(i, tmp_.path() / ("door" + std::to_string(i))));
        ids.push_back("door" + std::to_string(i));
    }
    auto pkg = make_package(key_, 1, 25u << 20);
    fp::Publisher publisher(publisher_options());
    auto report = publisher.publish(pkg);
    EXPECT_EQ(report.chunks, pkg.manifest.chunk_count());
    EXPECT_EQ(report.chunks, 101u);  // 25 MiB model + gallery in 256 KiB chunks
    auto acks = publisher.wait_for_acks(1, ids, 120s);
    EXPECT_TRUE(acks.all_acked()) << acks.missing.size() << " missing, " << acks.rejected.size() << " rejected";
    EXPECT_EQ(acks.acked.size(), static_cast<std::size_t>(kDoors));
    auto expected_model = std::string(pkg.part_bytes("model"));
    for (int i = 0; i < kDoors; ++i) {
        auto inst = fp::read_installed(tmp_.path() / ("door" + std::to_string(i)));
        ASSERT_TRUE(inst) << "door" << i;
        EXPECT_EQ(inst->version, 1);
        if (i % 5 == 0) {
            EXPECT_EQ(slurp(inst->model_file), expected_model) << "door" << i;
        }
    }
}

TEST_F(Transfer, LateDoorGetsCurrentModelFromRetainedAndOldChunksAreCleared) {
    fp::Publisher publisher(publisher_options());
    publisher.publish(make_package(key_, 1, 300'000, 16 * 1024));
    auto report = publisher.publish(make_package(key_, 2, 200'000, 16 * 1024));
    EXPECT_EQ(report.cleared_version, 1);
    auto late = start_door(0, tmp_.path() / "late");  // started after both publishes
    ASSERT_TRUE(installed(*late, 2));
    EXPECT_EQ(fp::read_installed(tmp_.path() / "late")->version, 2);
    EXPECT_EQ(publisher.wait_for_acks(2, {"door0"}, 10s).acked.size(), 1u);

    // Version 1's retained chunks are gone; version 2's are all there.
    RawClient probe(broker_.mqtt_config("daemon", "daemon-secret"), "probe");
    probe.connect();
    probe.subscribe("faceadapt/lab/model/+/chunk/+");
    ASSERT_TRUE(probe.drain()) << "the broker never returned the probe's marker";
    auto seen = probe.messages();
    std::size_t v1 = 0, v2 = 0;
    for (const auto& [topic, payload] : seen) {
        if (topic.starts_with("faceadapt/lab/model/1/")) ++v1;
        if (topic.starts_with("faceadapt/lab/model/2/")) ++v2;
    }
    EXPECT_EQ(v1, 0u);
    EXPECT_EQ(v2, report.chunks);
}

TEST_F(Transfer, BrokerKilledAndRestartedMidTransfer) {
    std::vector<std::unique_ptr<fp::DoorAgent>> doors;
    for (int i = 0; i < 4; ++i) doors.push_back(start_door(i, tmp_.path() / ("d" + std::to_string(i))));
    auto pkg = make_package(key_, 7, 12u << 20, 64 * 1024);
    auto options = publisher_options();
    options.window = 4;  // slow it down enough to be caught mid-way
    fp::Publisher publisher(options);
    std::atomic<bool> killed{false};
    std::thread restarter;
    auto report = publisher.publish(pkg, [&](std::size_t done, std::size_t total) {
        if (!killed && done > total / 3) {
            killed = true;
            broker_.kill();
            restarter = std::thread([this] {
                std::this_thread::sleep_for(700ms);
                broker_.start();
            });
        }
    });
    if (restarter.joinable()) restarter.join();
    EXPECT_TRUE(killed);
    EXPECT_GE(report.restarts, 1);
    for (auto& d : doors) EXPECT_TRUE(installed(*d, 7, 60s)) << d->state().to_json();
    EXPECT_EQ(publisher.wait_for_acks(7, {"door0", "door1", "door2", "door3"}, 20s).acked.size(), 4u);
}

TEST_F(Transfer, BrokerRestartAfterPublishIsHealedByRepublishing) {
    fp::Publisher publisher(publisher_options());
    publisher.publish(make_package(key_, 1, 200'000, 16 * 1024));
    broker_.kill();  // retained messages are lost (no persistence)
    broker_.start();  // returns once the new broker accepts connections
    auto late = start_door(1, tmp_.path() / "after-restart");
    EXPECT_TRUE(installed(*late, 1, 40s)) << late->state().to_json();
}

// ---- refusals: the installed model stays untouched -------------------------------------

class Refusal : public Transfer {
protected:
    void SetUp() override {
        publisher_ = std::make_unique<fp::Publisher>(publisher_options());
        publisher_->publish(make_package(key_, 1, 100'000, 8 * 1024));
        door_ = start_door(0, dir());
        ASSERT_TRUE(installed(*door_, 1));
        model_before_ = slurp(fp::read_installed(dir())->model_file);
    }
    std::filesystem::path dir() const { return tmp_.path() / "door0"; }
    fp::DoorState wait_rejected(std::int64_t version) {
        EXPECT_TRUE(door_->wait_for([&](const fp::DoorState& s) { return s.status == "rejected" && s.offered_version == version; }, 30s))
            << door_->state().to_json();
        return door_->state();
    }
    void expect_untouched() {
        auto inst = fp::read_installed(dir());
        ASSERT_TRUE(inst);
        EXPECT_EQ(inst->version, 1);
        EXPECT_EQ(slurp(inst->model_file), model_before_);
        EXPECT_EQ(door_->state().installed_version, 1);
    }
    fp::Package resign(const fp::Package& pkg, const std::function<void(nlohmann::json&)>& edit) {
        auto j = nlohmann::json::parse(pkg.signed_manifest.manifest_json);
        edit(j);
        fp::SignedManifest sm{j.dump(), {}, key_.public_key().key_id()};
        sm.signature = key_.sign(sm.manifest_json);
        return fp::Package::from_parts(sm.envelope(), pkg.payload);
    }

    std::unique_ptr<fp::Publisher> publisher_;
    std::unique_ptr<fp::DoorAgent> door_;
    std::string model_before_;
};

TEST_F(Refusal, WrongSignatureIsIgnoredAndCounted) {
    auto mallory = fp::SigningKey::generate();
    publisher_->publish(make_package(mallory, 5, 50'000, 8 * 1024));
    ASSERT_TRUE(door_->wait_for([](const fp::DoorState& s) { return s.ignored >= 1; }, 30s)) << door_->state().to_json();
    auto s = door_->state();
    EXPECT_NE(s.last_ignored.find("signature"), std::string::npos) << s.last_ignored;
    EXPECT_EQ(s.status, "installed");  // nothing unverified changes the state or the ack
    expect_untouched();
    // The daemon sees no answer for version 5: the door neither installed nor refused it.
    auto acks = publisher_->wait_for_acks(5, {"door0"}, 2s);
    EXPECT_EQ(acks.missing, std::vector<std::string>{"door0"});
}

TEST_F(Refusal, ManifestShaMismatchIsRejectedAfterReassembly) {
    auto good = make_package(key_, 2, 60'000, 8 * 1024);
    publisher_->publish(resign(good, [](nlohmann::json& j) { j["parts"][0]["sha256"] = std::string(64, 'c'); }));
    auto s = wait_rejected(2);
    EXPECT_NE(s.error.find("part model: sha256"), std::string::npos) << s.error;
    expect_untouched();
    EXPECT_TRUE(std::filesystem::is_empty(dir() / "staging"));
}

TEST_F(Refusal, OlderVersionIsRefused) {
    publisher_->publish(make_package(key_, 3, 40'000, 8 * 1024));
    ASSERT_TRUE(installed(*door_, 3));
    model_before_ = slurp(fp::read_installed(dir())->model_file);
    publisher_->publish(make_package(key_, 2, 40'000, 8 * 1024));
    EXPECT_TRUE(door_->wait_for([](const fp::DoorState& s) { return s.refused_version == 2; }, 30s)) << door_->state().to_json();
    auto s = door_->state();
    EXPECT_NE(s.refused_reason.find("not newer"), std::string::npos) << s.refused_reason;
    EXPECT_EQ(s.status, "installed");
    EXPECT_EQ(publisher_->wait_for_acks(2, {"door0"}, 5s).rejected, std::vector<std::string>{"door0"});
    EXPECT_EQ(fp::read_installed(dir())->version, 3);
    EXPECT_EQ(slurp(fp::read_installed(dir())->model_file), model_before_);
}

TEST_F(Refusal, TamperedChunkIsRefusedHalfPackageSurvivesRestartAndResumes) {
    auto good = make_package(key_, 2, 100'000, 8 * 1024);
    auto tampered = good;
    tampered.payload[3 * 8 * 1024 + 17] ^= 0x40;
    publisher_->publish(tampered);
    auto all_but_one = good.manifest.chunk_count() - 1;
    ASSERT_TRUE(door_->wait_for([&](const fp::DoorState& s) { return s.ignored >= 1 && s.chunks_received == all_but_one; }, 30s))
        << door_->state().to_json();
    EXPECT_NE(door_->state().last_ignored.find("chunk 3 of version 2"), std::string::npos) << door_->state().last_ignored;
    EXPECT_EQ(door_->state().status, "receiving");  // an unverified chunk changes nothing but the count
    expect_untouched();

    // Restart the agent: the half-received package is resumed from disk, never installed.
    door_->stop();
    door_.reset();
    EXPECT_TRUE(std::filesystem::exists(dir() / "staging" / "2" / "chunk-0"));
    EXPECT_FALSE(std::filesystem::exists(dir() / "staging" / "2" / "chunk-3"));
    door_ = std::make_unique<fp::DoorAgent>(door_options(0, dir()));
    auto resumed = door_->state();
    EXPECT_EQ(resumed.status, "receiving");
    EXPECT_EQ(resumed.chunks_received, good.manifest.chunk_count() - 1);
    EXPECT_EQ(fp::read_installed(dir())->version, 1);
    door_->start();
    publisher_->publish(good);  // the genuine chunk 3 arrives
    ASSERT_TRUE(installed(*door_, 2)) << door_->state().to_json();
    EXPECT_EQ(slurp(fp::read_installed(dir())->model_file), std::string(good.part_bytes("model")));
}

TEST_F(Refusal, DamagedStagingIsDiscardedNotInstalled) {
    door_->stop();
    door_.reset();
    // A half package whose manifest was altered on disk (no longer verifies).
    auto pkg = make_package(key_, 4, 30'000, 8 * 1024);
    std::filesystem::create_directories(dir() / "staging" / "4");
    auto env = pkg.signed_manifest.envelope();
    env[env.find("model_version") + 15] = '9';
    std::ofstream(dir() / "staging" / "4" / "manifest.json") << env;
    door_ = std::make_unique<fp::DoorAgent>(door_options(0, dir()));
    EXPECT_FALSE(std::filesystem::exists(dir() / "staging" / "4"));
    EXPECT_EQ(door_->state().installed_version, 1);
}

// ---- broker access control and TLS -----------------------------------------------------

TEST_F(Transfer, AclDoorCannotPublishModelAndAnonymousIsRefused) {
    fp::Publisher publisher(publisher_options());
    auto pkg = make_package(key_, 1, 20'000, 4096);
    publisher.publish(pkg);

    RawClient door(broker_.mqtt_config("door3", "pw3"), "door3-raw");
    door.connect();
    door.publish("faceadapt/lab/model/manifest", "{\"evil\":true}");
    door.publish("faceadapt/lab/model/1/chunk/0", "evil bytes");
    door.publish("faceadapt/lab/door/door4/state", "{\"door\":\"door4\"}");  // someone else's state
    door.publish("faceadapt/lab/door/door3/online", "online");               // its own: allowed

    RawClient probe(broker_.mqtt_config("daemon", "daemon-secret"), "probe");
    probe.connect();
    probe.subscribe("faceadapt/lab/model/manifest");
    probe.subscribe("faceadapt/lab/model/1/chunk/0");
    probe.subscribe("faceadapt/lab/door/#");
    ASSERT_TRUE(probe.drain()) << "the broker never returned the probe's marker";
    auto seen = probe.messages();
    EXPECT_EQ(seen["faceadapt/lab/model/manifest"], pkg.signed_manifest.envelope());
    EXPECT_EQ(seen["faceadapt/lab/model/1/chunk/0"], std::string(pkg.chunk(0)));
    EXPECT_FALSE(seen.contains("faceadapt/lab/door/door4/state"));
    EXPECT_EQ(seen["faceadapt/lab/door/door3/online"], "online");

    RawClient anonymous(broker_.mqtt_config(), "anon");
    EXPECT_THROW(anonymous.connect(), mqtt::exception);
    auto wrong = publisher_options();
    wrong.mqtt.password = faceadapt::config::Secret("wrong");
    wrong.mqtt.client_id = "wrong-password";
    wrong.connect_timeout = 1500ms;
    EXPECT_THROW(fp::Publisher{wrong}, std::runtime_error);
}

// Issue 13 class 10: a broker URL carrying user:password@ or a secret query parameter never
// reaches a log line or an error raw (MqttSession names the broker masked and scrubs Paho's
// messages). Every log line of the publisher, connected, refused or unreachable, is captured.
TEST_F(Transfer, BrokerUrlSecretsNeverReachLogsOrErrors) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log_);
    auto logger = spdlog::default_logger();
    const auto level = logger->level();
    logger->sinks().push_back(sink);
    logger->set_level(spdlog::level::debug);
    struct Restore {
        std::shared_ptr<spdlog::logger> logger;
        spdlog::level::level_enum level;
        ~Restore() {
            logger->sinks().pop_back();
            logger->set_level(level);
        }
    } restore{logger, level};
    const std::string port = std::to_string(broker_.port());
    auto attempt = [&](const std::string& url, std::chrono::milliseconds timeout) {
        auto o = publisher_options();
        o.mqtt.broker = url;
        o.mqtt.client_id = "secret-url";
        o.connect_timeout = timeout;
        try {
            fp::Publisher p(o);
            return std::string("(connected)");
        } catch (const std::exception& e) {
            return std::string(e.what());
        }
    };
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"tcp://daemon:hunter2pw@127.0.0.1:" + port, "hunter2pw"},
        {"tcp://127.0.0.1:" + port + "?password=qpass77", "qpass77"},
        {"tcp://fa:unreach3pw@127.0.0.1:1", "unreach3pw"},  // nothing listens: "cannot connect" names it
        {"tcp://127.0.0.1:1/?user=x&password=unreach4pw", "unreach4pw"},
    };
    std::string errors;
    for (const auto& [url, secret] : cases) {
        const std::string outcome = attempt(url, 1500ms);
        errors += outcome + "\n";
        EXPECT_EQ(outcome.find(secret), std::string::npos) << outcome;
        EXPECT_EQ(log_.str().find(secret), std::string::npos) << log_.str();
    }
    // The broker was named (masked) in what came out: the check above was not vacuous.
    const std::string all = errors + log_.str();
    EXPECT_NE(all.find("fa:***@127.0.0.1:1"), std::string::npos) << all;
    EXPECT_NE(all.find("password=***"), std::string::npos) << all;
}

TEST(Tls, VerifiedBrokerWithClientCertificates) {
    MosquittoOptions o;
    o.tls = true;
    o.require_client_cert = true;
    Mosquitto broker(o);
    auto key = fp::SigningKey::generate();
    TempDir tmp;
    auto [daemon_crt, daemon_key] = broker.make_client_cert("daemon");
    auto [door_crt, door_key] = broker.make_client_cert("door0");

    fp::DoorAgentOptions d;
    d.site = kSite;
    d.door = "door0";
    d.mqtt = broker.mqtt_config();
    d.mqtt.cert_file = door_crt;
    d.mqtt.key_file = door_key;
    d.public_key = key.public_key();
    d.dir = tmp.path() / "door0";
    fp::DoorAgent door(d);
    door.start();

    fp::PublisherOptions p;
    p.site = kSite;
    p.mqtt = broker.mqtt_config();
    p.mqtt.cert_file = daemon_crt;
    p.mqtt.key_file = daemon_key;
    p.connect_timeout = 5s;
    ASSERT_TRUE(p.mqtt.broker.starts_with("ssl://"));
    fp::Publisher publisher(p);
    publisher.publish(make_package(key, 1, 50'000, 8 * 1024));
    EXPECT_TRUE(door.wait_for([](const fp::DoorState& s) { return s.installed_version == 1; }, 30s)) << door.state().to_json();

    // A client that trusts another CA refuses this broker; one without a certificate is refused.
    auto other = p;
    other.mqtt.client_id = "other-ca";
    other.mqtt.ca_file = broker.make_other_ca();
    other.connect_timeout = 1500ms;
    EXPECT_THROW(fp::Publisher{other}, std::runtime_error);
    auto nocert = p;
    nocert.mqtt.client_id = "no-cert";
    nocert.mqtt.cert_file.clear();
    nocert.mqtt.key_file.clear();
    nocert.connect_timeout = 1500ms;
    EXPECT_THROW(fp::Publisher{nocert}, std::runtime_error);
}

}  // namespace
