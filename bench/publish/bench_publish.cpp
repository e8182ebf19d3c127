// bench_publish: deliver a signed 25 MB package to N door agents (threads, each with its own
// MQTT connection and model folder) through a real mosquitto on loopback, N = 10 and 100.
// Prints: time until the broker acked every chunk, time until every door installed it, bytes
// the broker sent and received (its $SYS counters), and the ratios between the two runs.
// Usage: bench_publish [--doors N]... [--mb M | --package FILE]   (defaults: 10 100, 25)
//   --package: the model and gallery parts of a real package file (e.g. `faceadapt package
//   --weights float16`), re-signed with the bench's key; otherwise M MB of filler bytes.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <mqtt/async_client.h>
#include <spdlog/spdlog.h>

#include "faceadapt/publish/door_agent.hpp"
#include "faceadapt/publish/publisher.hpp"
#include "mosquitto_fixture.hpp"
#include "test_helpers.hpp"

namespace fp = faceadapt::publish;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

struct Result {
    int doors = 0;
    double publish_s = 0;    // publish() returned: broker acked every chunk + manifest
    double delivered_s = 0;  // every door reported the version installed
    double broker_sent_mb = 0;
    double broker_received_mb = 0;
    std::size_t acked = 0;
};

// Reads mosquitto's $SYS byte counters (published every second with sys_interval 1).
std::map<std::string, double> broker_counters(const std::string& url) {
    mqtt::async_client c(url, "bench-sys-probe");
    std::mutex m;
    std::map<std::string, double> values;
    c.set_message_callback([&](mqtt::const_message_ptr msg) {
        std::lock_guard lock(m);
        values[msg->get_topic()] = std::atof(msg->get_payload_str().c_str());
    });
    c.connect()->wait_for(5s);
    c.subscribe("$SYS/broker/bytes/#", 0)->wait_for(5s);
    std::this_thread::sleep_for(1500ms);  // a fresh value after the last update
    c.disconnect()->wait_for(5s);
    std::lock_guard lock(m);
    return values;
}

Result run(int doors, std::size_t model_bytes, const std::optional<fp::Package>& real) {
    faceadapt::test::MosquittoOptions options;
    options.extra_config = "sys_interval 1\n";
    faceadapt::test::Mosquitto broker(options);
    faceadapt::test::TempDir tmp;
    auto key = fp::SigningKey::generate();

    fp::PackageInput in;
    in.site = "bench";
    if (real) {
        in.model_bytes = std::string(real->part_bytes("model"));
        in.gallery = real->gallery();
        in.architecture = real->manifest.architecture;
    } else {
        // A structurally valid libtorch model file: doors check the model part against the manifest.
        in.model_bytes = faceadapt::test::fake_model_file(model_bytes, 1);
        in.architecture.model_format = std::string(fp::kModelFormatLibtorch);
    }
    in.model_version = 1;
    auto pkg = fp::build_package(in, key);

    std::vector<std::unique_ptr<fp::DoorAgent>> agents;
    std::vector<std::string> ids;
    for (int i = 0; i < doors; ++i) {
        fp::DoorAgentOptions o;
        o.site = "bench";
        o.door = "door" + std::to_string(i);
        o.mqtt = broker.mqtt_config();
        o.mqtt.keepalive_s = 60;  // 100 clients share one Paho receive thread in this process
        o.public_key = key.public_key();
        o.dir = tmp.path() / o.door;
        o.queue_bytes = 16u << 20;
        agents.push_back(std::make_unique<fp::DoorAgent>(o));
        agents.back()->start();
        ids.push_back(o.door);
    }
    for (auto& a : agents) a->wait_for([](const fp::DoorState& s) { return !s.time.empty(); }, 20s);  // connected

    fp::PublisherOptions po;
    po.site = "bench";
    po.mqtt = broker.mqtt_config();
    po.mqtt.keepalive_s = 60;
    fp::Publisher publisher(po);
    auto before = broker_counters(broker.url());
    auto t0 = Clock::now();
    auto report = publisher.publish(pkg);
    auto t1 = Clock::now();
    auto acks = publisher.wait_for_acks(1, ids, 600s);
    auto t2 = Clock::now();
    auto after = broker_counters(broker.url());

    Result r;
    r.doors = doors;
    r.publish_s = std::chrono::duration<double>(t1 - t0).count();
    r.delivered_s = std::chrono::duration<double>(t2 - t0).count();
    r.acked = acks.acked.size();
    r.broker_sent_mb = (after["$SYS/broker/bytes/sent"] - before["$SYS/broker/bytes/sent"]) / 1e6;
    r.broker_received_mb = (after["$SYS/broker/bytes/received"] - before["$SYS/broker/bytes/received"]) / 1e6;
    std::printf("doors=%-4d package=%.1f MB chunks=%zu  publish (broker acked)=%.2f s  all doors installed=%.2f s  "
                "acked=%zu/%d  broker received=%.1f MB sent=%.1f MB (%.2fx payload per door)  goodput=%.0f MB/s\n",
                doors, report.payload_bytes / 1e6, report.chunks, r.publish_s, r.delivered_s, r.acked, doors,
                r.broker_received_mb, r.broker_sent_mb, r.broker_sent_mb / (doors * report.payload_bytes / 1e6),
                doors * report.payload_bytes / 1e6 / r.delivered_s);
    std::fflush(stdout);
    for (auto& a : agents) a->stop();
    return r;
}

}  // namespace

int main(int argc, char** argv) {
    spdlog::set_level(spdlog::level::warn);
    std::vector<int> door_counts;
    std::size_t mb = 25;
    std::optional<fp::Package> real;
    std::string what;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--doors") && i + 1 < argc) door_counts.push_back(std::atoi(argv[++i]));
        else if (!std::strcmp(argv[i], "--mb") && i + 1 < argc) mb = static_cast<std::size_t>(std::atoi(argv[++i]));
        else if (!std::strcmp(argv[i], "--package") && i + 1 < argc) {
            try {
                real = fp::Package::read(argv[++i]);
            } catch (const std::exception& e) {
                std::fprintf(stderr, "bench_publish: cannot use --package: %s\n", e.what());
                return 2;
            }
            what = std::string(" (") + argv[i] + ": model format " + real->manifest.architecture.model_format + ")";
        } else {
            std::fprintf(stderr, "usage: bench_publish [--doors N]... [--mb M | --package FILE]\n");
            return 2;
        }
    }
    if (door_counts.empty()) door_counts = {10, 100};
    const double model_mb = real ? static_cast<double>(real->part_bytes("model").size()) / 1e6 : static_cast<double>(mb << 20) / 1e6;
    std::printf("bench_publish: a signed package with a %.1f MB model part%s over MQTT (mosquitto, loopback, QoS 1, "
                "256 KiB chunks) to door agents in this process (%u cores)\n", model_mb, what.c_str(),
                std::thread::hardware_concurrency());
    std::vector<Result> results;
    for (int n : door_counts) results.push_back(run(n, mb << 20, real));
    if (results.size() >= 2) {
        const auto& a = results.front();
        const auto& b = results.back();
        std::printf("ratio %d/%d doors: delivery time x%.2f for x%.1f the bytes (%.2f s per door at %d, %.2f s at %d)\n",
                    b.doors, a.doors, b.delivered_s / a.delivered_s, static_cast<double>(b.doors) / a.doors,
                    a.delivered_s / a.doors, a.doors, b.delivered_s / b.doors, b.doors);
    }
    for (const auto& r : results)
        if (r.acked != static_cast<std::size_t>(r.doors)) return 1;
    return 0;
}
