// Valid files: defaults, the shipped example and demo, round trips through to_toml, secrets,
// and that the example and docs/configuration.md cover every key of the schema.
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <unistd.h>

#include <gtest/gtest.h>

#include "faceadapt/config/config.hpp"
#include "test_support.hpp"

namespace {

namespace cfg = faceadapt::config;
namespace fs = std::filesystem;

fs::path example_file() { return faceadapt::test::source_dir() / "config/faceadapt.example.toml"; }

std::string read_text(const fs::path& file) {
    std::ifstream in(file);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

void write_text(const fs::path& file, const std::string& text) {
    std::ofstream out(file);
    out << text;
}

// Sets an environment variable for the life of the object.
class ScopedEnv {
public:
    ScopedEnv(std::string name, const std::string& value) : name_(std::move(name)) {
        ::setenv(name_.c_str(), value.c_str(), 1);
    }
    ~ScopedEnv() { ::unsetenv(name_.c_str()); }
    const std::string& name() const { return name_; }
private:
    std::string name_;
};

TEST(ConfigValues, EmptyFileGivesTheDefaults) {
    cfg::Config defaults;
    defaults.source = "empty.toml";
    EXPECT_EQ(cfg::parse_config("", "empty.toml"), defaults);
    EXPECT_TRUE(defaults.cameras.empty());
    EXPECT_EQ(defaults.site.state_dir, "/var/lib/faceadapt");
}

TEST(ConfigValues, ReadsTypedValues) {
    const auto c = cfg::parse_config(
        "[site]\nid = \"lab-2\"\n"
        "[[camera]]\nid = \"door\"\nurl = \"rtsps://127.0.0.1:8322/door\"\ntransport = \"udp\"\n"
        "detect_fps = 12\nlatency_ms = 0\nmin_face_px = 0\nenabled = false\n"
        "[[camera]]\nid = \"clip\"\nurl = \"file:///tmp/walkers.mp4\"\n"
        "[quality]\ndeviation_score = [[0, 1], [40, 0.1]]\n"
        "[learner]\ndevice = \"cuda\"\nlr_backbone = 1e-4\nquiet_hours = \"22:00-06:00\"\nmax_violation_rate = 1\n"
        "[publish]\nqos = 2\n",
        "typed.toml");
    EXPECT_EQ(c.site.id, "lab-2");
    ASSERT_EQ(c.cameras.size(), 2u);
    EXPECT_EQ(c.cameras[0].url, "rtsps://127.0.0.1:8322/door");
    EXPECT_EQ(c.cameras[0].transport, "udp");
    EXPECT_DOUBLE_EQ(c.cameras[0].detect_fps, 12.0);  // an integer is accepted for a number
    EXPECT_EQ(c.cameras[0].latency_ms, 0);
    EXPECT_FALSE(c.cameras[0].enabled);
    EXPECT_EQ(c.cameras[1].url, "file:///tmp/walkers.mp4");
    EXPECT_EQ(c.cameras[1].detect_fps, cfg::CameraConfig{}.detect_fps);
    EXPECT_EQ(c.quality.deviation_score, (cfg::Table{{0, 1}, {40, 0.1}}));
    EXPECT_EQ(c.learner.device, "cuda");
    EXPECT_DOUBLE_EQ(c.learner.lr_backbone, 1e-4);
    EXPECT_EQ(c.learner.quiet_hours, "22:00-06:00");
    EXPECT_DOUBLE_EQ(c.learner.max_violation_rate, 1.0);  // an integer for a number; 1 = the eps rule as is
    EXPECT_DOUBLE_EQ(cfg::LearnerConfig{}.max_violation_rate, 0.01);
    EXPECT_EQ(c.publish.qos, 2);
}

TEST(ConfigValues, RelativePathsAreRelativeToTheFile) {
    faceadapt::test::TempDir dir;
    write_text(dir.path() / "cam.pass", "pw\n");
    write_text(dir.path() / "site.toml",
               "[site]\nstate_dir = \"state\"\n"
               "[[camera]]\nid = \"a\"\nurl = \"rtsp://127.0.0.1/a\"\nusername = \"viewer\"\n"
               "password_file = \"cam.pass\"\n");
    const auto c = cfg::load_config(dir.path() / "site.toml");
    EXPECT_EQ(c.site.state_dir, dir.path() / "state");
    EXPECT_EQ(c.cameras[0].password_file, dir.path() / "cam.pass");
    EXPECT_EQ(c.cameras[0].password.str(), "pw");  // trailing newline dropped
    EXPECT_EQ(c.source, dir.path() / "site.toml");
}

TEST(ConfigValues, ExampleIsValidAndDocumentsTheDefaults) {
    const auto c = cfg::load_config(example_file());
    // Every section of the example is written out at its default value...
    const cfg::Config defaults;
    EXPECT_EQ(c.site, defaults.site);
    EXPECT_EQ(c.detect, defaults.detect);
    EXPECT_EQ(c.quality, defaults.quality);
    EXPECT_EQ(c.store, defaults.store);
    EXPECT_EQ(c.learner, defaults.learner);
    EXPECT_EQ(c.gate, defaults.gate);
    EXPECT_EQ(c.mqtt, defaults.mqtt);
    EXPECT_EQ(c.publish, defaults.publish);
    EXPECT_EQ(c.metrics, defaults.metrics);
    // ...and the cameras are on loopback: the first at defaults, the second overriding some.
    ASSERT_EQ(c.cameras.size(), 2u);
    cfg::CameraConfig entrance;
    entrance.id = "entrance";
    entrance.url = "rtsp://127.0.0.1:8554/entrance";
    EXPECT_EQ(c.cameras[0], entrance);
    EXPECT_EQ(c.cameras[1].id, "lobby");
    EXPECT_EQ(c.cameras[1].transport, "udp");
    EXPECT_DOUBLE_EQ(c.cameras[1].detect_fps, 2.5);
    EXPECT_EQ(c.cameras[1].min_face_px, 60);
    for (const auto& camera : c.cameras) EXPECT_EQ(camera.url.rfind("rtsp://127.0.0.1:", 0), 0u);
}

TEST(ConfigValues, RelativeNamesRoundTrip) {
    // A file named relative to the working directory: its relative paths become absolute once,
    // so printing and reparsing under the same name does not move them again.
    const auto first = cfg::parse_config("[site]\nstate_dir = \"state\"\n", "conf/site.toml");
    EXPECT_EQ(first.site.state_dir, fs::current_path() / "conf/state");
    EXPECT_EQ(cfg::parse_config(cfg::to_toml(first), "conf/site.toml"), first);
}

TEST(ConfigValues, EmptyFileAndEmptyCameraArrayAreValid) {
    faceadapt::test::TempDir dir;
    write_text(dir.path() / "empty.toml", "");
    EXPECT_TRUE(cfg::load_config(dir.path() / "empty.toml").cameras.empty());
    EXPECT_TRUE(cfg::parse_config("camera = []\n", "x.toml").cameras.empty());
    // A directory is not a configuration file.
    EXPECT_THROW(cfg::load_config(dir.path()), cfg::ConfigError);
}

TEST(ConfigValues, DemoConfigIsValid) {
    const auto c = cfg::load_config(faceadapt::test::source_dir() / "config/demo.toml");
    ASSERT_EQ(c.cameras.size(), 1u);
    EXPECT_EQ(c.cameras[0].url, "rtsp://127.0.0.1:8554/cam");
    EXPECT_EQ(c.site.state_dir, "/tmp/faceadapt-demo");
    EXPECT_EQ(c.mqtt.broker, "tcp://127.0.0.1:1883");
    EXPECT_EQ(c.learner.cycles, 2);
    EXPECT_EQ(c.learner.iters, 10);
}

TEST(ConfigValues, ExampleRoundTripsThroughToToml) {
    const auto first = cfg::load_config(example_file());
    const std::string text = cfg::to_toml(first);
    const auto second = cfg::parse_config(text, example_file());
    EXPECT_EQ(second, first) << text;
    EXPECT_EQ(cfg::to_toml(second), text);  // printing is stable
}

TEST(ConfigValues, NonDefaultValuesRoundTrip) {
    const std::string source =
        "[site]\nid = \"x\"\nstate_dir = \"/srv/fa\"\nlog_level = \"trace\"\n"
        "[[camera]]\nid = \"q\"\nurl = \"rtsp://127.0.0.1:1/a?b=\\\"c\\\"\"\nusername = \"we\\\\ird\"\n"
        "backoff_initial_s = 0.1\n"
        "[quality]\nentropy_deviation = [[0.0, -0.3], [7.25, 1e-9]]\ncoefficient_form = \"percent\"\n"
        "[learner]\nlr_classifier = 3.5e-7\nema_lambda = 0.999\nseed = 2147483647\nmerge = true\n"
        "[gate]\nfar = 1e-6\n[metrics]\nenabled = false\nlisten = \"[::1]:9000\"\n";
    const auto first = cfg::parse_config(source, "/etc/fa/site.toml");
    EXPECT_EQ(first.cameras[0].username, "we\\ird");
    const auto second = cfg::parse_config(cfg::to_toml(first), "/etc/fa/site.toml");
    EXPECT_EQ(second, first) << cfg::to_toml(first);
}

TEST(ConfigSecrets, PasswordsFromFileAndEnvNeverPrinted) {
    faceadapt::test::TempDir dir;
    const std::string file_secret = "Zq7-file-secret";
    const std::string env_secret = "Zq7-env-secret";
    write_text(dir.path() / "cam.pass", file_secret + "\r\n");
    ScopedEnv env("FACEADAPT_TEST_MQTT_PW_" + std::to_string(::getpid()), env_secret);
    const std::string text =
        "[[camera]]\nid = \"a\"\nurl = \"rtsp://viewer@127.0.0.1:8554/a\"\nusername = \"viewer\"\n"
        "password_file = \"" + (dir.path() / "cam.pass").string() + "\"\n"
        "[mqtt]\nusername = \"fa\"\npassword_env = \"" + env.name() + "\"\n";
    const auto c = cfg::parse_config(text, dir.path() / "site.toml");
    EXPECT_EQ(c.cameras[0].password.str(), file_secret);
    EXPECT_EQ(c.mqtt.password.str(), env_secret);
    EXPECT_EQ(c.cameras[0].password.masked(), "********");

    const std::string printed = cfg::to_toml(c);
    EXPECT_EQ(printed.find(file_secret), std::string::npos) << printed;
    EXPECT_EQ(printed.find(env_secret), std::string::npos) << printed;
    EXPECT_NE(printed.find("# password = \"********\""), std::string::npos) << printed;
    // Where the secrets come from is printed, so the output reloads to the same values.
    const auto again = cfg::parse_config(printed, dir.path() / "site.toml");
    EXPECT_EQ(again, c);

    // An error elsewhere in the same file does not leak the resolved secrets either.
    try {
        cfg::parse_config(text + "keepalive_s = 0\n", dir.path() / "site.toml");
        FAIL() << "accepted keepalive_s = 0";
    } catch (const cfg::ConfigError& e) {
        EXPECT_EQ(std::string(e.what()).find(file_secret), std::string::npos);
        EXPECT_EQ(std::string(e.what()).find(env_secret), std::string::npos);
    }
}

TEST(ConfigSecrets, EmptyPasswordFileIsAnError) {
    faceadapt::test::TempDir dir;
    write_text(dir.path() / "empty.pass", "\n");
    const std::string text = "[mqtt]\npassword_file = \"empty.pass\"\n";
    try {
        cfg::parse_config(text, dir.path() / "site.toml");
        FAIL() << "accepted an empty password file";
    } catch (const cfg::ConfigError& e) {
        ASSERT_EQ(e.issues().size(), 1u);
        EXPECT_EQ(e.issues()[0].line, 2);
        EXPECT_EQ(e.issues()[0].column, 17);
        EXPECT_EQ(e.issues()[0].message,
                  "password file '" + (dir.path() / "empty.pass").string() + "' is empty");
    }
}

TEST(ConfigSecrets, PasswordFileThatIsADirectory) {
    faceadapt::test::TempDir dir;
    const std::string text = "[mqtt]\npassword_file = \"" + dir.path().string() + "\"\n";
    try {
        cfg::parse_config(text, "site.toml");
        FAIL() << "accepted a directory as password file";
    } catch (const cfg::ConfigError& e) {
        ASSERT_EQ(e.issues().size(), 1u);
        EXPECT_NE(e.issues()[0].message.find("Is a directory"), std::string::npos);
    }
}

TEST(ConfigSecrets, MaskUrlCredentials) {
    EXPECT_EQ(cfg::mask_url_credentials("rtsp://admin:hunter2@127.0.0.1:8554/x"),
              "rtsp://admin:***@127.0.0.1:8554/x");
    EXPECT_EQ(cfg::mask_url_credentials("rtsp://u:p@ss@127.0.0.1/x"), "rtsp://u:***@127.0.0.1/x");
    EXPECT_EQ(cfg::mask_url_credentials("mqtts://fa:s3cret@127.0.0.1"), "mqtts://fa:***@127.0.0.1");
    // A userinfo without a colon may be a token: all of it.
    EXPECT_EQ(cfg::mask_url_credentials("rtsps://ghp_T0KEN@127.0.0.1/x"), "rtsps://***@127.0.0.1/x");
    // Query, fragment and ';' parameters whose name says secret (issue 13, class 10).
    EXPECT_EQ(cfg::mask_url_credentials("rtsp://127.0.0.1/live?user=admin&password=hunter2"),
              "rtsp://127.0.0.1/live?user=admin&password=***");
    EXPECT_EQ(cfg::mask_url_credentials("rtsp://127.0.0.1/live?PWD=hunter2&channel=1"),
              "rtsp://127.0.0.1/live?PWD=***&channel=1");
    EXPECT_EQ(cfg::mask_url_credentials("rtsp://127.0.0.1/a?access_token=abc&api_key=def&x=1#auth=ghi"),
              "rtsp://127.0.0.1/a?access_token=***&api_key=***&x=1#auth=***");
    EXPECT_EQ(cfg::mask_url_credentials("rtsp://127.0.0.1/a;pass=abc;mode=real"), "rtsp://127.0.0.1/a;pass=***;mode=real");
    EXPECT_EQ(cfg::mask_url_credentials("rtsp://127.0.0.1/a?pass%77ord=abc"), "rtsp://127.0.0.1/a?pass%77ord=***");
    EXPECT_EQ(cfg::mask_url_credentials("tcp://127.0.0.1:1883?password=s3"), "tcp://127.0.0.1:1883?password=***");
    EXPECT_EQ(cfg::mask_url_credentials("u:p@x?secret=1"), "u:p@x?secret=***") << "no scheme: parameters still";
    EXPECT_EQ(cfg::mask_url_credentials("rtsp://a:b@127.0.0.1/x?token=t"), "rtsp://a:***@127.0.0.1/x?token=***");
    // The values themselves, for scrubbing texts built from the URL (decoded forms too).
    EXPECT_EQ(cfg::url_secrets("rtsp://a:b%21@127.0.0.1/x?token=t"),
              (std::vector<std::string>{"b!", "b%21", "t"}));
    EXPECT_TRUE(cfg::url_secrets("rtsp://127.0.0.1/x?channel=1").empty());
    // Nothing to hide: unchanged.
    EXPECT_EQ(cfg::mask_url_credentials("rtsp://127.0.0.1/live?user=admin&channel=1"),
              "rtsp://127.0.0.1/live?user=admin&channel=1");
    EXPECT_EQ(cfg::mask_url_credentials("rtsp://127.0.0.1:8554/a@b:c"), "rtsp://127.0.0.1:8554/a@b:c");
    EXPECT_EQ(cfg::mask_url_credentials("file:///tmp/a.mp4"), "file:///tmp/a.mp4");
    EXPECT_EQ(cfg::mask_url_credentials("not a url"), "not a url");
    EXPECT_EQ(cfg::mask_url_credentials(""), "");
}

// Every key of the schema is in the example file and documented in its section of the docs.
TEST(ConfigCoverage, ExampleAndDocsCoverEveryKey) {
    const std::string example = read_text(example_file());
    const fs::path docs_file = faceadapt::test::source_dir() / "docs/configuration.md";
    const std::string docs = read_text(docs_file);
    ASSERT_FALSE(docs.empty()) << docs_file;
    const auto keys = cfg::known_keys();
    EXPECT_GT(keys.size(), 80u);
    for (const auto& full : keys) {
        const auto dot = full.find('.');
        const std::string section = full.substr(0, dot), key = full.substr(dot + 1);
        EXPECT_TRUE(example.find("\n" + key + " = ") != std::string::npos ||
                    example.find("\n# " + key + " = ") != std::string::npos)
            << full << " is not in " << example_file();
        const std::string heading = section == "camera" ? "## [[camera]]" : "## [" + section + "]";
        const auto begin = docs.find(heading);
        ASSERT_NE(begin, std::string::npos) << "no heading " << heading << " in " << docs_file;
        const auto end = docs.find("\n## ", begin + 1);
        const auto row = docs.substr(begin, end - begin).find("| `" + key + "` |");
        EXPECT_NE(row, std::string::npos) << full << " is not documented under " << heading;
    }
}

}  // namespace

namespace {

// [ui] (issue 14): off by default on loopback; TLS files checked and paired.
TEST(ConfigUi, DefaultsValuesAndTheCertificatePair) {
    const auto d = cfg::parse_config("", "x.toml");
    EXPECT_FALSE(d.ui.enabled);
    EXPECT_EQ(d.ui.listen, "127.0.0.1:8080");
    faceadapt::test::TempDir dir;
    std::ofstream(dir.path() / "c.pem") << "cert";
    std::ofstream(dir.path() / "k.pem") << "key";
    const auto c = cfg::parse_config("[ui]\nenabled = true\nlisten = \"127.0.0.1:9443\"\ncert_file = \"c.pem\"\n"
                                     "key_file = \"k.pem\"\nsession_hours = 2\nidle_minutes = 10\n",
                                     dir.path() / "site.toml");
    EXPECT_TRUE(c.ui.enabled);
    EXPECT_EQ(c.ui.cert_file, dir.path() / "c.pem");
    EXPECT_DOUBLE_EQ(c.ui.session_hours, 2);
    auto issues = [&](const std::string& text) {
        try {
            (void)cfg::parse_config(text, dir.path() / "site.toml");
        } catch (const cfg::ConfigError& e) {
            std::string all;
            for (const auto& i : e.issues()) all += i.to_string() + "\n";
            return all;
        }
        return std::string();
    };
    EXPECT_NE(issues("[ui]\ncert_file = \"c.pem\"\n").find("ui.key_file"), std::string::npos);
    EXPECT_NE(issues("[ui]\ncert_file = \"absent.pem\"\nkey_file = \"k.pem\"\n").find("ui.cert_file"), std::string::npos);
    EXPECT_NE(issues("[ui]\nlisten = \"8080\"\n").find("ui.listen"), std::string::npos);
    EXPECT_NE(issues("[ui]\nsession_hours = 0\n").find("ui.session_hours"), std::string::npos);
    // The Host names the console answers to beside localhost and the listen host.
    EXPECT_TRUE(d.ui.allowed_hosts.empty());
    const auto h = cfg::parse_config("[ui]\nallowed_hosts = [\"nvr.site.lan\", \"[fd00::5]\", \"10.1.2.3\"]\n", "x.toml");
    EXPECT_EQ(h.ui.allowed_hosts, (std::vector<std::string>{"nvr.site.lan", "[fd00::5]", "10.1.2.3"}));
    EXPECT_EQ(cfg::parse_config(cfg::to_toml(h), "x.toml").ui.allowed_hosts, h.ui.allowed_hosts) << "round trip";
    EXPECT_NE(issues("[ui]\nallowed_hosts = [\"nvr:8080\"]\n").find("ui.allowed_hosts[0]"), std::string::npos)
        << "no port";
    EXPECT_NE(issues("[ui]\nallowed_hosts = [\"a\", \"<b>\"]\n").find("ui.allowed_hosts[1]"), std::string::npos);
    EXPECT_NE(issues("[ui]\nallowed_hosts = \"nvr\"\n").find("ui.allowed_hosts"), std::string::npos) << "an array";
    EXPECT_EQ(issues("[ui]\nallowed_hosts = [\"<b>\"]\n").find("<b>"), std::string::npos) << "not echoed";
}

}  // namespace
