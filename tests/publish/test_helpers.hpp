// Helpers shared by the publish tests: packages of a given size, a raw MQTT client.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <string>

#include <mqtt/async_client.h>
#include <zlib.h>

#include "faceadapt/config/config.hpp"
#include "faceadapt/publish/package.hpp"

namespace faceadapt::test {

// A whole file's bytes ("" when it cannot be read).
inline std::string slurp(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}

// Deterministic pseudo-random bytes.
inline std::string random_bytes(std::size_t n, unsigned seed) {
    std::mt19937_64 rng(seed);
    std::string out(n, '\0');
    for (std::size_t i = 0; i + 8 <= n; i += 8) {
        auto v = rng();
        std::memcpy(out.data() + i, &v, 8);
    }
    return out;
}

// A structurally valid faceadapt model file (docs/model-format.md: magic, format version,
// metadata JSON, weights length, weights, CRC-32) whose weights are `weight_bytes` random bytes.
// The door checks this structure against the manifest; it never loads the weights.
inline std::string fake_model_file(std::size_t weight_bytes, unsigned seed,
                                   const std::string& architecture = "dlib-resnet29") {
    auto le = [](std::string& out, std::uint64_t v, int n) {
        for (int i = 0; i < n; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    };
    std::string meta = "{\"format\":\"faceadapt-model\",\"format_version\":1,\"architecture\":\"" + architecture +
                       "\",\"input\":{\"size\":150,\"channels\":\"RGB\"},\"embedding_dim\":128,\"version\":" +
                       std::to_string(seed) + ",\"parent_version\":-1,\"created\":\"2026-11-27T01:02:03Z\","
                       "\"network\":{\"num_classes\":0,\"embedding_dropout\":0,\"classifier_scale\":20},\"provenance\":{}}";
    std::string out = "FADAPTMD";
    le(out, 1, 4);
    le(out, meta.size(), 4);
    out += meta;
    le(out, weight_bytes, 8);
    out += random_bytes(weight_bytes, seed);
    auto crc = ::crc32(0L, reinterpret_cast<const Bytef*>(out.data()), static_cast<uInt>(out.size()));
    le(out, crc, 4);
    return out;
}

inline publish::Gallery small_gallery(unsigned seed) {
    publish::Gallery g;
    g.threshold = 0.6;
    std::mt19937 rng(seed);
    std::normal_distribution<float> n(0.f, 0.1f);
    for (const char* name : {"alice", "bob", "carol"}) {
        publish::GalleryEntry e{name, {}};
        for (auto& f : e.embedding) f = n(rng);
        g.entries.push_back(e);
    }
    return g;
}

// Bytes that pass the door's structural check of an "onnx" model part (publish/src/model_check.hpp:
// IR version, opset 11, the faceadapt metadata, a graph field to the end) around a graph of
// `graph_bytes` random bytes. Doors install it without running it (only `match` loads it).
inline std::string fake_onnx_model_file(std::size_t graph_bytes, unsigned seed) {
    auto varint = [](std::string& out, std::uint64_t v) {
        do {
            out.push_back(static_cast<char>((v & 0x7f) | (v >= 0x80 ? 0x80 : 0)));
            v >>= 7;
        } while (v);
    };
    auto field = [&](std::string& out, unsigned number, const std::string& bytes) {
        varint(out, number << 3 | 2);
        varint(out, bytes.size());
        out += bytes;
    };
    std::string out, opset, entry;
    varint(out, 1 << 3);  // ir_version 6
    varint(out, 6);
    field(opset, 1, "");
    varint(opset, 2 << 3);  // opset version 11
    varint(opset, 11);
    field(out, 8, opset);
    for (auto [k, v] : std::map<std::string, std::string>{{"faceadapt.architecture", "dlib-resnet29"},
                                                          {"faceadapt.input_size", "150"},
                                                          {"faceadapt.embedding_dim", "128"},
                                                          {"faceadapt.weights", "float32"}}) {
        entry.clear();
        field(entry, 1, k);
        field(entry, 2, v);
        field(out, 14, entry);
    }
    field(out, 7, random_bytes(graph_bytes, seed));
    return out;
}

inline publish::Package make_package(const publish::SigningKey& key, std::int64_t version, std::size_t model_bytes,
                                     std::size_t chunk_bytes = publish::kDefaultChunkBytes) {
    publish::PackageInput in;
    in.site = "lab";
    in.model_bytes = fake_onnx_model_file(model_bytes, static_cast<unsigned>(version));  // the default "onnx"
    in.gallery = small_gallery(static_cast<unsigned>(version));
    in.model_version = version;
    in.parent_version = version - 1;
    in.chunk_bytes = chunk_bytes;
    in.training_metrics = {{"cycles", 6}, {"loss", 0.42}};
    in.gate_metrics = {{"tar_at_far", 0.97}};
    return publish::build_package(in, key);
}

// A child process running a command line (for the long-running agent); killed on destruction.
class Child {
public:
    explicit Child(const std::string& command) {
        pid_ = ::fork();
        if (pid_ == 0) {
            ::execl("/bin/sh", "sh", "-c", ("exec " + command).c_str(), static_cast<char*>(nullptr));
            ::_exit(127);
        }
    }
    ~Child() { stop(SIGKILL); }
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;
    pid_t pid() const { return pid_; }
    int stop(int sig = SIGTERM) {
        if (pid_ <= 0) return -1;
        ::kill(pid_, sig);
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
private:
    pid_t pid_ = -1;
};

// A plain Paho client for poking at the broker from a test (synchronous waits).
class RawClient {
public:
    RawClient(const config::MqttConfig& cfg, const std::string& id) : client_(cfg.broker, id) {
        auto b = mqtt::connect_options_builder().clean_session(true).connect_timeout(std::chrono::seconds(3));
        if (!cfg.username.empty()) b.user_name(cfg.username).password(cfg.password.str());
        options_ = b.finalize();
        barrier_topic_ = "faceadapt/test-barrier/" + id;
        client_.set_message_callback([this](mqtt::const_message_ptr m) {
            std::lock_guard lock(mutex_);
            if (m->get_topic() == barrier_topic_)
                ++barriers_seen_;
            else
                messages_[m->get_topic()] = m->get_payload_str();
            arrived_.notify_all();
        });
    }
    ~RawClient() {
        try {
            if (client_.is_connected()) client_.disconnect()->wait_for(std::chrono::seconds(2));
        } catch (...) {
        }
    }
    void connect() { client_.connect(options_)->wait_for(std::chrono::seconds(5)); }
    void publish(const std::string& topic, const std::string& payload, bool retained = true) {
        client_.publish(topic, payload.data(), payload.size(), 1, retained)->wait_for(std::chrono::seconds(5));
    }
    void subscribe(const std::string& filter) { client_.subscribe(filter, 1)->wait_for(std::chrono::seconds(5)); }
    std::map<std::string, std::string> messages() {
        std::lock_guard lock(mutex_);
        return messages_;
    }
    // Returns once every message the broker had queued for this client before the call has
    // arrived (the retained messages of earlier subscriptions included), or false after
    // `timeout`: publishes a marker on a topic of this client's own and waits for it to come
    // back. The broker sends one client's messages in the order it queued them, so the marker
    // arriving is the observable event "nothing older is still on its way". The client must be
    // allowed to publish and read faceadapt/test-barrier/<id>.
    bool drain(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
        std::unique_lock lock(mutex_);
        if (!barrier_subscribed_) {
            lock.unlock();
            subscribe(barrier_topic_);
            lock.lock();
            barrier_subscribed_ = true;
        }
        const int want = barriers_seen_ + 1;
        lock.unlock();
        publish(barrier_topic_, "drain", false);
        lock.lock();
        return arrived_.wait_for(lock, timeout, [&] { return barriers_seen_ >= want; });
    }
    mqtt::async_client& client() { return client_; }
private:
    mqtt::async_client client_;
    mqtt::connect_options options_;
    std::string barrier_topic_;
    std::mutex mutex_;
    std::condition_variable arrived_;
    int barriers_seen_ = 0;
    bool barrier_subscribed_ = false;
    std::map<std::string, std::string> messages_;
};

}  // namespace faceadapt::test
