// The torch-free door: `faceadapt-door` links no libtorch, installs an ONNX package from a real
// mosquitto and its `match` gives the same decision and distance (within 1e-4) as the libtorch
// door (faceadapt-door-libtorch, the door before issue 16) on the demo photos; an agent refuses a
// model format it cannot run.
#include <signal.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "faceadapt/publish/door_agent.hpp"
#include "faceadapt/publish/package.hpp"
#include "faceadapt/publish/publisher.hpp"
#include "faceadapt/common/durable_file.hpp"
#include "mosquitto_fixture.hpp"
#include "test_helpers.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using faceadapt::test::binary_dir;
using faceadapt::test::run_command;

namespace {

std::string tool(const char* name) { return (binary_dir() / "tools" / name).string(); }

int run(const std::string& command, std::string* out) {
    const int rc = run_command(command, out);
    std::cerr << "$ " << command << "\n" << *out;
    return rc;
}

// `faceadapt-door run` in the background (its pid read from a file); SIGTERM on destruction.
class BackgroundDoor {
public:
    BackgroundDoor(const std::string& args, const fs::path& dir) : pid_file_(dir / "door.pid") {
        std::string out;
        run_command("sh -c '" + tool("faceadapt-door") + " run " + args + " > " + (dir / "door.log").string() +
                        " 2>&1 & echo $! > " + pid_file_.string() + "'", &out);
        std::ifstream(pid_file_) >> pid_;
    }
    ~BackgroundDoor() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGTERM);
        for (int i = 0; i < 200 && ::kill(pid_, 0) == 0; ++i) std::this_thread::sleep_for(25ms);  // poll its exit
    }
    pid_t pid() const { return pid_; }
private:
    fs::path pid_file_;
    pid_t pid_ = -1;
};

class DoorOnnx : public ::testing::Test {
protected:
    void SetUp() override {
        for (const char* t : {"faceadapt", "faceadapt-door", "faceadapt-door-libtorch"})
            if (!fs::exists(tool(t))) GTEST_SKIP() << "needs " << tool(t);
    }
    faceadapt::test::TempDir tmp_;
};

}  // namespace

TEST_F(DoorOnnx, LinksNoTorchAndNoGstreamer) {
    std::string out;
    ASSERT_EQ(run_command("ldd " + tool("faceadapt-door"), &out), 0) << out;
    EXPECT_EQ(out.find("torch"), std::string::npos) << out;
    EXPECT_EQ(out.find("libc10"), std::string::npos) << out;
    EXPECT_EQ(out.find("gstreamer"), std::string::npos) << out;
    EXPECT_NE(out.find("libopencv_dnn"), std::string::npos) << out;
    ASSERT_EQ(run_command("ldd " + tool("faceadapt-door-libtorch"), &out), 0) << out;
    EXPECT_NE(out.find("torch"), std::string::npos) << "the comparison door is the libtorch one:\n" << out;
}

TEST_F(DoorOnnx, InstallsFromMosquittoAndMatchesLikeTheLibtorchDoor) {
    const auto demo = faceadapt::test::weights_dir() / "demo";
    FACEADAPT_REQUIRE_PATH(demo / "sample1.jpg");
    FACEADAPT_REQUIRE_PATH(faceadapt::test::weights_dir() / "model/face_recognition_model.bin");
    const auto t = tmp_.path();
    std::string out;
    ASSERT_EQ(run(tool("faceadapt") + " keygen --out " + (t / "keys").string(), &out), 0);
    // Two enrolled people; every demo photo is a probe.
    fs::create_directories(t / "gallery" / "one");
    fs::create_directories(t / "gallery" / "three");
    fs::copy_file(demo / "sample1.jpg", t / "gallery" / "one" / "a.jpg");
    fs::copy_file(demo / "sample3.jpg", t / "gallery" / "three" / "a.jpg");
    const std::string common = " --key " + (t / "keys").string() + " --site s --version 1 --threshold 0.6 --gallery " + (t / "gallery").string();
    ASSERT_EQ(run(tool("faceadapt") + " package" + common + " --out " + (t / "onnx.fapkg").string(), &out), 0);
    ASSERT_EQ(run(tool("faceadapt") + " package" + common + " --model-format libtorch --out " + (t / "torch.fapkg").string(),
                  &out), 0);
    const auto pkg = faceadapt::publish::Package::read(t / "onnx.fapkg");
    EXPECT_EQ(pkg.manifest.format_version, 2);
    EXPECT_EQ(pkg.manifest.architecture.model_format, "onnx");
    EXPECT_EQ(pkg.part_bytes("model").substr(0, 2), std::string("\x08\x06", 2)) << "ModelProto.ir_version = 6 first";

    // The torch-free door receives it over MQTT from a real mosquitto.
    faceadapt::test::Mosquitto broker;
    const auto pub = (t / "keys" / "signing.pub").string();
    {
        BackgroundDoor door("--broker " + broker.url() + " --site s --door door0 --pubkey " + pub + " --dir " +
                                (t / "onnx-door").string(), t);
        ASSERT_GT(door.pid(), 0);
        ASSERT_EQ(run(tool("faceadapt") + " publish " + (t / "onnx.fapkg").string() + " --broker " + broker.url() +
                          " --site s --doors door0 --ack-timeout 60", &out), 0);
        EXPECT_NE(out.find("door door0: installed version 1"), std::string::npos) << out;
    }
    // The libtorch door of before, offline (its install path is the same code).
    ASSERT_EQ(run(tool("faceadapt-door-libtorch") + " install " + (t / "torch.fapkg").string() + " --dir " +
                      (t / "torch-door").string() + " --pubkey " + pub + " --site s", &out), 0);
    // Each door refuses the other's model format, naming it.
    EXPECT_EQ(run(tool("faceadapt-door") + " install " + (t / "torch.fapkg").string() + " --dir " +
                      (t / "other").string() + " --pubkey " + pub + " --site s", &out), 2);
    EXPECT_NE(out.find("carries model format \"faceadapt-model v1\""), std::string::npos) << out;
    EXPECT_FALSE(fs::exists(t / "other" / "installed.json"));

    int compared = 0, matched = 0;
    double worst = 0;
    for (int i = 1; i <= 6; ++i) {
        const auto photo = demo / ("sample" + std::to_string(i) + ".jpg");
        if (!fs::exists(photo)) continue;
        std::string a, b;
        // --no-quality-gate: every face found is embedded and compared (sample3 would be asked to
        // retry: its face scores just under the crop store's threshold).
        const int rc_onnx = run(tool("faceadapt-door") + " match --json --no-quality-gate " + photo.string() + " --dir " +
                                    (t / "onnx-door").string(), &a);
        const int rc_torch = run(tool("faceadapt-door-libtorch") + " match --json --no-quality-gate " + photo.string() +
                                     " --dir " + (t / "torch-door").string(), &b);
        ASSERT_EQ(rc_onnx, rc_torch) << photo;
        if (rc_onnx != 0) continue;  // no face: both say so
        const auto ja = nlohmann::json::parse(a.substr(a.find('{')));
        const auto jb = nlohmann::json::parse(b.substr(b.find('{')));
        EXPECT_EQ(ja["model_format"], "onnx");
        EXPECT_EQ(jb["model_format"], "faceadapt-model v1");
        EXPECT_EQ(ja["matched"], jb["matched"]) << photo;
        EXPECT_EQ(ja["name"], jb["name"]) << photo;
        const double diff = std::abs(ja["distance"].get<double>() - jb["distance"].get<double>());
        EXPECT_LT(diff, 1e-4) << photo;
        worst = std::max(worst, diff);
        ++compared;
        matched += ja["matched"].get<bool>() ? 1 : 0;
    }
    std::printf("[ figures  ] %d demo photos compared (%d matched): largest distance difference ONNX/OpenCV DNN door vs "
                "libtorch door %.3g\n", compared, matched, worst);
    EXPECT_GE(compared, 2);
    EXPECT_GE(matched, 2) << "sample1 and sample3 match themselves";
}

// An agent that runs ONNX only refuses a package of another model format before fetching a
// chunk, reports it as rejected naming the format, and installs the next ONNX one.
TEST(DoorAgentModelFormat, RefusesAFormatItCannotRunThenInstallsOnnx) {
    faceadapt::test::Mosquitto broker;
    faceadapt::test::TempDir tmp;
    const auto key = faceadapt::publish::SigningKey::generate();
    faceadapt::publish::DoorAgentOptions o;
    o.site = "fmt";
    o.door = "door0";
    o.mqtt = broker.mqtt_config();
    o.public_key = key.public_key();
    o.dir = tmp.path() / "door";
    o.model_formats = {"onnx"};
    faceadapt::publish::DoorAgent agent(o);
    agent.start();
    faceadapt::publish::PublisherOptions po;
    po.site = "fmt";
    po.mqtt = broker.mqtt_config();
    faceadapt::publish::Publisher publisher(po);

    faceadapt::publish::PackageInput in;
    in.site = "fmt";
    in.model_bytes = faceadapt::test::fake_model_file(4096, 1);  // a well-formed libtorch model file
    in.model_version = 1;
    in.architecture.model_format = std::string(faceadapt::publish::kModelFormatLibtorch);
    publisher.publish(faceadapt::publish::build_package(in, key));
    ASSERT_TRUE(agent.wait_for([](const auto& s) { return s.status == "rejected" && s.offered_version == 1; }, 30s));
    EXPECT_NE(agent.state().error.find("model format \"faceadapt-model v1\" is not one this door runs"),
              std::string::npos) << agent.state().error;
    EXPECT_EQ(agent.state().chunks_received, 0u);
    EXPECT_FALSE(fs::exists(o.dir / "staging" / "1"));

    // A real ONNX export (the door checks the model part against the manifest before install).
    const fs::path onnx_file = tmp.path() / "model.onnx";
    std::string out;
    ASSERT_EQ(run(tool("faceadapt") + " export --format onnx --out " + onnx_file.string(), &out), 0);
    in.model_bytes = faceadapt::common::read_file(onnx_file);
    in.model_version = 2;
    in.architecture.model_format = std::string(faceadapt::publish::kModelFormatOnnx);
    publisher.publish(faceadapt::publish::build_package(in, key));
    EXPECT_TRUE(agent.wait_for([](const auto& s) { return s.installed_version == 2; }, 30s)) << agent.state().to_json();
    agent.stop();
}
