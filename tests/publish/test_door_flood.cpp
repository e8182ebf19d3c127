// A running `faceadapt-door` flooded with each inbound message type on a real mosquitto: its
// peak RSS stays under the documented bound (docs/mqtt.md, "Memory bound"), the installed model
// stays byte-identical, and the package being received installs afterwards without a restart.
// Skips when the faceadapt-door executable was not built.
#include <fstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "faceadapt/publish/door_agent.hpp"
#include "faceadapt/publish/publisher.hpp"
#include "mosquitto_fixture.hpp"
#include "test_helpers.hpp"

namespace fs = std::filesystem;
namespace fp = faceadapt::publish;
using namespace std::chrono_literals;
using faceadapt::test::Child;
using faceadapt::test::door_bin;
using faceadapt::test::make_package;
using faceadapt::test::slurp;
using faceadapt::test::Mosquitto;
using faceadapt::test::RawClient;
using faceadapt::test::TempDir;

namespace {


// VmRSS or VmHWM (peak) of a process, in MiB.
double memory_mib(pid_t pid, const std::string& field) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind(field + ":", 0) == 0) return std::stod(line.substr(field.size() + 1)) / 1024.0;
    return -1;
}

// The documented bound on the door's inbound buffers (docs/mqtt.md): 64 MiB of queued chunks,
// 2 pending manifests of 4 MiB, and the one message being read (1 MiB here). The process also
// parses one manifest at a time and keeps malloc arenas: allowed for by kAllocatorSlackMiB.
constexpr double kInboundBoundMiB = 64 + 2 * 4 + 1;
constexpr double kAllocatorSlackMiB = 48;

class DoorFlood : public ::testing::Test {
protected:
    void SetUp() override {
        if (!fs::exists(door_bin())) GTEST_SKIP() << "needs the faceadapt-door executable in " << door_bin();
        faceadapt::test::MosquittoOptions o;
        o.users = {{"daemon", "dpw"}, {"door0", "pw0"}};
        o.acl = "user daemon\ntopic readwrite faceadapt/#\n\npattern read faceadapt/+/model/#\npattern readwrite faceadapt/+/door/%u/#\n";
        broker_ = std::make_unique<Mosquitto>(o);
        key_.save(tmp_.path() / "keys");
        std::ofstream(tmp_.path() / "door0.pw") << "pw0\n";
        fp::PublisherOptions po;
        po.site = "lab";
        po.mqtt = broker_->mqtt_config("daemon", "dpw");
        po.republish_on_reconnect = false;
        publisher_ = std::make_unique<fp::Publisher>(po);
        door_ = std::make_unique<Child>(door_bin() + " run --broker " + broker_->url() +
                                        " --site lab --door door0 --username door0 --password-file " +
                                        (tmp_.path() / "door0.pw").string() + " --pubkey " +
                                        (tmp_.path() / "keys" / "signing.pub").string() + " --dir " + dir().string() +
                                        " > " + (tmp_.path() / "door.log").string() + " 2>&1");
        publisher_->publish(make_package(key_, 1, 200'000, 8 * 1024));
        ASSERT_EQ(publisher_->wait_for_acks(1, {"door0"}, 60s).acked.size(), 1u) << slurp(tmp_.path() / "door.log");
        model_before_ = slurp(dir() / "versions" / "1" / "model.bin");
        // A transfer in progress: version 2 staged but for its last chunk.
        v2_ = make_package(key_, 2, 100'000, 8 * 1024);
        raw_ = std::make_unique<RawClient>(broker_->mqtt_config("daemon", "dpw"), "flooder");
        raw_->connect();
        last_ = v2_.manifest.chunk_count() - 1;
        for (std::size_t i = 0; i < last_; ++i) raw_->publish(publisher_->topics().chunk(2, i), std::string(v2_.chunk(i)));
        raw_->publish(publisher_->topics().manifest(), v2_.signed_manifest.envelope());
        ASSERT_TRUE(wait_state([&](const fp::DoorState& s) { return s.offered_version == 2 && s.chunks_received == last_; }, 30s))
            << slurp(tmp_.path() / "door.log");
        std::this_thread::sleep_for(300ms);  // let the startup allocations settle before the baseline
        baseline_ = memory_mib(door_->pid(), "VmRSS");
        std::cerr << "door baseline RSS " << baseline_ << " MiB\n";
    }
    fs::path dir() const { return tmp_.path() / "door0"; }
    bool wait_state(const std::function<bool(const fp::DoorState&)>& pred, std::chrono::milliseconds timeout) {
        auto end = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < end) {
            auto states = publisher_->door_states();
            if (states.contains("door0") && pred(states["door0"])) return true;
            std::this_thread::sleep_for(50ms);
        }
        return false;
    }
    std::uint64_t ignored() {
        auto states = publisher_->door_states();
        return states.contains("door0") ? states["door0"].ignored : 0;
    }
    // Publishes `count` messages made by `make(i)` to `topic`, QoS 1 with 64 in flight.
    void flood(const std::string& topic, std::size_t count, const std::function<std::string(std::size_t)>& make) {
        std::deque<mqtt::delivery_token_ptr> in_flight;
        for (std::size_t i = 0; i < count; ++i) {
            auto payload = make(i);
            in_flight.push_back(raw_->client().publish(topic, payload.data(), payload.size(), 1, false));
            if (in_flight.size() >= 64) {
                in_flight.front()->wait_for(30s);
                in_flight.pop_front();
            }
        }
        for (auto& t : in_flight) t->wait_for(30s);
    }
    // Waits until the door's ignored count has not moved for a second (it has drained its queue).
    void wait_drained(std::uint64_t at_least) {
        auto last = ignored();
        auto still_since = std::chrono::steady_clock::now();
        auto end = still_since + 120s;
        while (std::chrono::steady_clock::now() < end) {
            std::this_thread::sleep_for(100ms);
            auto now = ignored();
            if (now != last) {
                last = now;
                still_since = std::chrono::steady_clock::now();
            } else if (now >= at_least && std::chrono::steady_clock::now() - still_since > 1s) {
                return;
            }
        }
        ADD_FAILURE() << "the door did not drain: ignored " << last << " of at least " << at_least;
    }
    void expect_bounded(const char* what) {
        auto peak = memory_mib(door_->pid(), "VmHWM");
        auto now = memory_mib(door_->pid(), "VmRSS");
        std::cerr << what << ": door peak RSS " << peak << " MiB (+" << peak - baseline_ << "), now " << now << " MiB\n";
        EXPECT_LT(peak - baseline_, kInboundBoundMiB + kAllocatorSlackMiB) << what;
        EXPECT_EQ(slurp(dir() / "versions" / "1" / "model.bin"), model_before_) << what;
    }
    void finish_v2() {
        raw_->publish(publisher_->topics().chunk(2, last_), std::string(v2_.chunk(last_)));
        auto acks = publisher_->wait_for_acks(2, {"door0"}, 60s);
        EXPECT_EQ(acks.acked, std::vector<std::string>{"door0"}) << slurp(tmp_.path() / "door.log");
        EXPECT_EQ(slurp(dir() / "versions" / "2" / "model.bin"), std::string(v2_.part_bytes("model")));
    }

    TempDir tmp_;
    fp::SigningKey key_ = fp::SigningKey::generate();
    std::unique_ptr<Mosquitto> broker_;
    std::unique_ptr<fp::Publisher> publisher_;
    std::unique_ptr<Child> door_;
    std::unique_ptr<RawClient> raw_;
    fp::Package v2_;
    std::size_t last_ = 0;
    std::string model_before_;
    double baseline_ = 0;
};

std::string junk_envelope(std::size_t bytes, std::size_t i) {
    nlohmann::json j = {{"format", "faceadapt-envelope"},
                        {"manifest", std::to_string(i) + std::string(bytes, 'm')},
                        {"signature", std::string(128, '0')},
                        {"key_id", "0000000000000000"}};
    return j.dump();
}

TEST_F(DoorFlood, FifteenHundredDistinctOneMegabyteManifests) {
    auto before = ignored();
    flood(publisher_->topics().manifest(), 1500, [](std::size_t i) { return junk_envelope(1u << 20, i); });
    wait_drained(before + 1500);
    expect_bounded("1,500 x 1 MB manifests");
    EXPECT_EQ(publisher_->door_states()["door0"].status, "receiving");
    finish_v2();
}

TEST_F(DoorFlood, OversizedManifestsAndTinyJunkManifests) {
    auto before = ignored();
    flood(publisher_->topics().manifest(), 60, [](std::size_t i) { return junk_envelope(6u << 20, i); });  // over 4 MiB
    flood(publisher_->topics().manifest(), 100'000, [](std::size_t i) { return "{" + std::to_string(i); });
    wait_drained(before + 100'060);
    expect_bounded("60 x 6 MB + 100,000 tiny manifests");
    finish_v2();
}

TEST_F(DoorFlood, OneMegabyteChunksAndEmptyChunksOnTheTopicBeingReceived) {
    auto topic = publisher_->topics().chunk(2, last_);
    auto before = ignored();
    flood(topic, 1500, [](std::size_t i) { return std::to_string(i) + std::string(1u << 20, 'c'); });
    flood(publisher_->topics().chunk(2, 100'000), 100'000, [](std::size_t i) { return std::to_string(i); });  // beyond the count
    flood(topic, 100'000, [](std::size_t) { return std::string(); });  // empty: a clear
    wait_drained(before + 1);
    expect_bounded("1,500 x 1 MB chunks + 200,000 small chunks");
    finish_v2();
}

}  // namespace
