// The operator commands end to end, as processes: faceadapt keygen / package / publish and
// faceadapt-door run / status / install / rollback / match, against a real mosquitto.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "faceadapt/publish/door_agent.hpp"
#include "faceadapt/publish/package.hpp"
#include "faceadapt/publish/publisher.hpp"
#include "mosquitto_fixture.hpp"
#include "test_helpers.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using faceadapt::test::binary_dir;
using faceadapt::test::Child;
using faceadapt::test::Mosquitto;
using faceadapt::test::run_command;
using faceadapt::test::TempDir;

namespace {

std::string faceadapt_bin() { return (binary_dir() / "tools" / "faceadapt").string(); }
std::string door_bin() { return (binary_dir() / "tools" / "faceadapt-door").string(); }

class PublishCli : public ::testing::Test {
protected:
    void SetUp() override {
        if (!fs::exists(faceadapt_bin()) || !fs::exists(door_bin()))
            GTEST_SKIP() << "needs the faceadapt and faceadapt-door executables in " << (binary_dir() / "tools");
    }
    int run(const std::string& command, std::string* output) {
        int rc = run_command(command, output);
        std::cerr << "$ " << command << "\n" << *output;
        return rc;
    }
    TempDir tmp_;
};

TEST_F(PublishCli, KeygenPackagePublishAndDoorCommands) {
    Mosquitto broker({{{"daemon", "dpw"}, {"door0", "pw0"}}, "", false, false, ""});
    auto t = tmp_.path();
    std::ofstream(t / "daemon.pw") << "dpw\n";
    std::ofstream(t / "door0.pw") << "pw0\n";
    std::string out;

    ASSERT_EQ(run(faceadapt_bin() + " keygen --out " + (t / "keys").string(), &out), 0);
    EXPECT_NE(out.find("public key"), std::string::npos);
    EXPECT_NE(run(faceadapt_bin() + " keygen --out " + (t / "keys").string(), &out), 0);  // never overwrites

    // Default model (the pretrained source model), no gallery.
    auto pkg_file = t / "v1.fapkg";
    ASSERT_EQ(run(faceadapt_bin() + " package --key " + (t / "keys").string() + " --out " + pkg_file.string() +
                      " --version 1 --chunk-kib 64 --site cli", &out), 0);
    auto pkg = faceadapt::publish::Package::read(pkg_file);
    EXPECT_EQ(pkg.manifest.model_version, 1);
    EXPECT_EQ(pkg.manifest.chunk_size, 64u * 1024);
    EXPECT_NO_THROW(faceadapt::publish::verify_package(pkg, faceadapt::publish::load_public_key(t / "keys")));

    Child door(door_bin() + " run --broker " + broker.url() + " --site cli --door door0 --username door0 --password-file " +
               (t / "door0.pw").string() + " --pubkey " + (t / "keys" / "signing.pub").string() + " --dir " +
               (t / "door0").string() + " > " + (t / "door.log").string() + " 2>&1");
    ASSERT_EQ(run(faceadapt_bin() + " publish " + pkg_file.string() + " --broker " + broker.url() +
                      " --site cli --username daemon --password-file " + (t / "daemon.pw").string() +
                      " --doors door0 --ack-timeout 60", &out), 0);
    EXPECT_NE(out.find("door door0: installed version 1"), std::string::npos);
    EXPECT_EQ(door.stop(SIGTERM), 0);  // clean shutdown on SIGTERM

    ASSERT_EQ(run(door_bin() + " status --dir " + (t / "door0").string(), &out), 0);
    EXPECT_NE(out.find("installed version 1"), std::string::npos);

    // Bad input: a wrong password is refused with a runtime error, an unknown flag with 2.
    std::ofstream(t / "bad.pw") << "nope\n";
    EXPECT_EQ(run(faceadapt_bin() + " publish " + pkg_file.string() + " --broker " + broker.url() +
                      " --site cli --client-id bad --username daemon --password-file " + (t / "bad.pw").string(), &out), 1);
    EXPECT_EQ(run(faceadapt_bin() + " publish " + pkg_file.string() + " --site cli --broker http://x", &out), 2);
    EXPECT_EQ(run(faceadapt_bin() + " package --key " + (t / "nokeys").string() + " --out " + (t / "x.fapkg").string(), &out), 1);
}

// A damaged install folder does not brick the door: `status` reports it (exit 0), `run` starts,
// connects, and the current package published again repairs it.
TEST_F(PublishCli, DamagedFolderIsReportedAndRepairedOverTheAir) {
    namespace fp = faceadapt::publish;
    Mosquitto broker;
    auto t = tmp_.path();
    auto key = fp::SigningKey::generate();
    key.save(t / "keys");
    auto pkg = faceadapt::test::make_package(key, 1, 30'000, 8 * 1024);  // site "lab"
    fp::install_package(t / "door", pkg, key.public_key(), "lab");
    auto text = faceadapt::test::slurp(t / "door" / "installed.json");
    std::ofstream(t / "door" / "installed.json", std::ios::trunc) << text.substr(0, text.size() / 3);
    std::string out;
    ASSERT_EQ(run(door_bin() + " status --dir " + (t / "door").string(), &out), 0);
    EXPECT_NE(out.find("DAMAGED"), std::string::npos) << out;
    ASSERT_EQ(run(door_bin() + " status --json --dir " + (t / "door").string(), &out), 0);
    EXPECT_NE(out.find("\"damage\""), std::string::npos) << out;

    Child door(door_bin() + " run --broker " + broker.url() + " --site lab --door door0 --pubkey " +
               (t / "keys" / "signing.pub").string() + " --dir " + (t / "door").string() + " > " + (t / "door.log").string() +
               " 2>&1");
    fp::PublisherOptions po;
    po.site = "lab";
    po.mqtt = broker.mqtt_config();
    fp::Publisher publisher(po);
    publisher.publish(pkg);
    auto acks = publisher.wait_for_acks(1, {"door0"}, 60s);
    EXPECT_EQ(acks.acked, std::vector<std::string>{"door0"}) << faceadapt::test::slurp(t / "door.log");
    EXPECT_EQ(acks.states["door0"].damage, "");
    EXPECT_EQ(door.stop(SIGTERM), 0);
    ASSERT_EQ(run(door_bin() + " status --dir " + (t / "door").string(), &out), 0);
    EXPECT_NE(out.find("installed version 1"), std::string::npos) << out;
    EXPECT_EQ(out.find("DAMAGED"), std::string::npos) << out;
}

TEST_F(PublishCli, GalleryPackageInstallRollbackAndMatch) {
    auto demo = faceadapt::test::weights_dir() / "demo";
    FACEADAPT_REQUIRE_PATH(demo / "sample1.jpg");
    FACEADAPT_REQUIRE_PATH(demo / "sample2.jpg");
    auto t = tmp_.path();
    std::string out;
    ASSERT_EQ(run(faceadapt_bin() + " keygen --out " + (t / "keys").string(), &out), 0);
    fs::create_directories(t / "gallery" / "sample-one");
    fs::copy_file(demo / "sample1.jpg", t / "gallery" / "sample-one" / "a.jpg");
    ASSERT_EQ(run(faceadapt_bin() + " package --key " + (t / "keys").string() + " --out " + (t / "v2.fapkg").string() +
                      " --version 2 --site cli --gallery " + (t / "gallery").string(), &out), 0);
    ASSERT_EQ(run(faceadapt_bin() + " package --key " + (t / "keys").string() + " --out " + (t / "v3.fapkg").string() +
                      " --version 3 --site cli --gallery " + (t / "gallery").string(), &out), 0);
    auto pub = (t / "keys" / "signing.pub").string() + " --site cli";
    auto dir = (t / "door").string();
    ASSERT_EQ(run(door_bin() + " install " + (t / "v2.fapkg").string() + " --dir " + dir + " --pubkey " + pub, &out), 0);
    ASSERT_EQ(run(door_bin() + " install " + (t / "v3.fapkg").string() + " --dir " + dir + " --pubkey " + pub, &out), 0);
    EXPECT_NE(run(door_bin() + " install " + (t / "v2.fapkg").string() + " --dir " + dir + " --pubkey " + pub, &out), 0);
    EXPECT_NE(out.find("not newer"), std::string::npos);

    // The enrolled photo matches itself; a photo of someone else is unknown or farther.
    ASSERT_EQ(run(door_bin() + " match " + (demo / "sample1.jpg").string() + " --dir " + dir, &out), 0);
    EXPECT_EQ(out.rfind("sample-one ", 0), 0u) << out;
    double self = std::stod(out.substr(out.find(' ') + 1));
    EXPECT_LT(self, 0.05);
    if (run(door_bin() + " match " + (demo / "sample2.jpg").string() + " --dir " + dir, &out) == 0) {
        double other = std::stod(out.substr(out.find(' ') + 1));
        EXPECT_GT(other, self + 0.1) << out;  // a different photo is farther (or "unknown")
    }

    ASSERT_EQ(run(door_bin() + " rollback --dir " + dir, &out), 0);
    ASSERT_EQ(run(door_bin() + " status --dir " + dir + " --json", &out), 0);
    EXPECT_NE(out.find("\"installed_version\": 2"), std::string::npos) << out;
    EXPECT_NE(out.find("\"refuse_up_to\": 3"), std::string::npos) << out;
}

}  // namespace
