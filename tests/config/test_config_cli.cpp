// The real `faceadapt` binary: `config check`, `config print`, `version` and their exit codes.
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <unistd.h>

#include <gtest/gtest.h>

#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;

class ConfigCli : public ::testing::Test {
protected:
    void SetUp() override {
        binary_ = faceadapt::test::binary_dir() / "tools/faceadapt";
        ASSERT_TRUE(fs::exists(binary_)) << binary_ << " is missing: build the faceadapt target";
    }
    // Runs `faceadapt ARGS`, stdout and stderr together in `output`; returns the exit status.
    int run(const std::string& args, std::string& output) const {
        return faceadapt::test::run_command(binary_.string() + " " + args, &output);
    }
    fs::path write(const std::string& name, const std::string& text) const {
        const fs::path file = dir_.path() / name;
        std::ofstream(file) << text;
        return file;
    }
    fs::path binary_;
    faceadapt::test::TempDir dir_;
};

TEST_F(ConfigCli, CheckExampleExitsZero) {
    const fs::path example = faceadapt::test::source_dir() / "config/faceadapt.example.toml";
    std::string out;
    EXPECT_EQ(run("config check " + example.string(), out), 0) << out;
    EXPECT_NE(out.find(example.string() + ": ok: site 'site', 2 camera(s) (2 enabled)"),
              std::string::npos) << out;
}

TEST_F(ConfigCli, CheckDemoExitsZero) {
    std::string out;
    EXPECT_EQ(run("config check " + (faceadapt::test::source_dir() / "config/demo.toml").string(), out), 0)
        << out;
}

TEST_F(ConfigCli, CheckMalformedExitsTwoWithLocatedLines) {
    const fs::path bad = write("bad.toml",
                               "[[camera]]\n"
                               "id = \"a\"\n"
                               "url = \"http://127.0.0.1/x\"\n"
                               "detect_fsp = 3\n"
                               "[store]\n"
                               "retention_days = -1\n");
    std::string out;
    ASSERT_EQ(run("config check " + bad.string(), out), 2) << out;
    const std::string f = bad.string();
    EXPECT_NE(out.find(f + ":3:7: camera[0].url: expected an rtsp://, rtsps:// or file:// URL, got scheme 'http'\n"),
              std::string::npos) << out;
    EXPECT_NE(out.find(f + ":4:1: camera[0].detect_fsp: unknown key 'detect_fsp'; did you mean 'detect_fps'?\n"),
              std::string::npos) << out;
    EXPECT_NE(out.find(f + ":6:18: store.retention_days: expected a number in (0, 3650], got -1\n"),
              std::string::npos) << out;
    EXPECT_NE(out.find(f + ": 3 errors"), std::string::npos) << out;
    // Every issue line has the form file:line:col: key.path: message.
    const std::regex line_format("^" + std::regex_replace(f, std::regex(R"([.^$|()\[\]{}*+?\\])"), R"(\$&)") +
                                 R"(:\d+:\d+: [a-z_]+(\[\d+\])?(\.[a-z_0-9]+)?: .+$)");
    std::istringstream lines(out);
    int located = 0;
    for (std::string line; std::getline(lines, line);) located += std::regex_match(line, line_format);
    EXPECT_EQ(located, 3) << out;
}

TEST_F(ConfigCli, CheckMissingFileExitsTwo) {
    std::string out;
    EXPECT_EQ(run("config check " + (dir_.path() / "absent.toml").string(), out), 2) << out;
    EXPECT_NE(out.find("cannot read the file"), std::string::npos) << out;
}

TEST_F(ConfigCli, CheckWithoutFileIsAUsageError) {
    std::string out;
    EXPECT_EQ(run("config check", out), 2) << out;
}

TEST_F(ConfigCli, PrintMasksSecretsAndReloads) {
    const std::string secret = "Pw-for-cli-" + std::to_string(::getpid());
    write("cam.pass", secret + "\n");
    const fs::path site = write("site.toml",
                                "[[camera]]\nid = \"a\"\nurl = \"rtsp://127.0.0.1:8554/a\"\n"
                                "username = \"viewer\"\npassword_file = \"cam.pass\"\n");
    std::string out;
    ASSERT_EQ(run("config print " + site.string(), out), 0) << out;
    EXPECT_EQ(out.find(secret), std::string::npos) << out;
    EXPECT_NE(out.find("# password = \"********\""), std::string::npos) << out;
    EXPECT_NE(out.find("[learner]\n"), std::string::npos) << out;  // defaults filled in
    // The printed configuration is itself a valid site file.
    const fs::path printed = write("printed.toml", out);
    std::string check;
    EXPECT_EQ(run("config check " + printed.string(), check), 0) << check;
}

// Secrets in URL query strings (issue 13, class 10): refused by check and print, never echoed;
// and a broker given on the command line is treated the same way.
TEST_F(ConfigCli, SecretsInUrlQueriesAreRefusedAndNeverEchoed) {
    const std::string secret = "Qs-secret-" + std::to_string(::getpid());
    const fs::path camera = write("camera.toml", "[[camera]]\nid = \"a\"\nurl = \"rtsp://127.0.0.1:8554/live?user=admin&password=" +
                                                     secret + "\"\n");
    const fs::path broker = write("broker.toml", "[mqtt]\nbroker = \"tcp://127.0.0.1:1883?password=" + secret + "\"\n");
    for (const auto& file : {camera, broker}) {
        for (const char* command : {"config check ", "config print "}) {
            std::string out;
            EXPECT_EQ(run(command + file.string(), out), 2) << command << file << ":\n" << out;
            EXPECT_EQ(out.find(secret), std::string::npos) << command << file << ":\n" << out;
            EXPECT_NE(out.find("password=***"), std::string::npos) << command << file << ":\n" << out;
        }
    }
    const fs::path package = write("model.fapkg", "not a package");
    for (const std::string& url : {"tcp://127.0.0.1:1?password=" + secret, "ftp://u:" + secret + "@127.0.0.1"}) {
        std::string out;
        EXPECT_NE(run("publish " + package.string() + " --site s --broker '" + url + "'", out), 0) << out;
        EXPECT_EQ(out.find(secret), std::string::npos) << out;
    }
}

TEST_F(ConfigCli, PrintMalformedExitsTwo) {
    const fs::path bad = write("bad.toml", "[publish]\nqos = 7\n");
    std::string out;
    EXPECT_EQ(run("config print " + bad.string(), out), 2) << out;
    EXPECT_NE(out.find(bad.string() + ":2:7: publish.qos: expected an integer in [0, 2], got 7"),
              std::string::npos) << out;
}

TEST_F(ConfigCli, VersionNamesTheProjectVersion) {
    std::string out;
    ASSERT_EQ(run("version", out), 0) << out;
    EXPECT_NE(out.find(std::string("faceadapt ") + FACEADAPT_VERSION + "\n"), std::string::npos) << out;
    EXPECT_NE(out.find("toml++ 3."), std::string::npos) << out;
}

}  // namespace
