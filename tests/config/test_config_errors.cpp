// Table-driven: each malformed site file gives exactly one issue, at an exact line:column, for an
// exact key path, with a message saying what was expected.
#include <ostream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "faceadapt/config/config.hpp"

namespace {

using faceadapt::config::ConfigError;
using faceadapt::config::ConfigIssue;
using faceadapt::config::parse_config;

struct BadCase {
    const char* name;
    std::string toml;
    int line;
    int column;
    const char* key_path;
    const char* fragment;  // must appear in the message
};

// Names the case in test listings (instead of a byte dump).
void PrintTo(const BadCase& c, std::ostream* os) { *os << c.name; }

// A valid camera block (lines 1-3) followed by `extra`, which starts on line 4.
std::string camera(const std::string& extra) {
    return "[[camera]]\nid = \"a\"\nurl = \"rtsp://127.0.0.1:8554/a\"\n" + extra;
}
// A camera whose url (line 3, value at column 7) is `url`.
std::string camera_url(const std::string& url) {
    return "[[camera]]\nid = \"a\"\nurl = \"" + url + "\"\n";
}

const std::vector<BadCase>& cases() {
    static const std::vector<BadCase> all = {
        // TOML syntax
        {"syntax_missing_value", "[site]\nid =\n", 2, 5, "", "TOML syntax error"},
        {"syntax_redefined_key", "[site]\nid = \"a\"\nid = \"b\"\n", 3, 6, "", "cannot redefine"},
        // sections
        {"unknown_section_suggests", "[sit]\nid = \"x\"\n", 1, 2, "sit",
         "unknown section 'sit'; did you mean 'site'?"},
        {"unknown_top_level_key", "log_level = \"info\"\n", 1, 1, "log_level",
         "unknown section 'log_level'; expected one of: site, camera, detect"},
        {"section_not_a_table", "site = 5\n", 1, 8, "site",
         "expected a table ([site]), got an integer"},
        {"unknown_key_suggests", "[detect]\nmin_face_pxx = 50\n", 2, 1, "detect.min_face_pxx",
         "unknown key 'min_face_pxx'; did you mean 'min_face_px'?"},
        {"unknown_key_lists_known", "[store]\nzzz = 1\n", 2, 1, "store.zzz",
         "expected one of: best_per_track, per_camera_quota, retention_days, disk_cap_mb"},
        // cameras
        {"camera_not_array_of_tables", "[camera]\nid = \"a\"\n", 1, 1, "camera",
         "expected an array of tables: write a [[camera]] block per camera"},
        {"camera_missing_url", "[[camera]]\nid = \"a\"\n", 1, 1, "camera[0].url",
         "missing required key 'url' (expected an rtsp://, rtsps:// or file:// URL)"},
        {"second_camera_missing_id",
         "[[camera]]\nid = \"a\"\nurl = \"rtsp://127.0.0.1/a\"\n\n[[camera]]\nurl = \"rtsp://127.0.0.1/b\"\n",
         5, 1, "camera[1].id", "missing required key 'id'"},
        {"duplicate_camera_id",
         "[[camera]]\nid = \"door\"\nurl = \"rtsp://127.0.0.1/a\"\n[[camera]]\nid = \"door\"\nurl = \"rtsp://127.0.0.1/b\"\n",
         5, 6, "camera[1].id", "duplicate camera id 'door' (already used by camera[0] at line 2)"},
        {"camera_misspelt_key", camera("enable = false\n"), 4, 1, "camera[0].enable",
         "unknown key 'enable'; did you mean 'enabled'?"},
        {"url_http_scheme", camera_url("http://127.0.0.1/x"), 3, 7, "camera[0].url",
         "expected an rtsp://, rtsps:// or file:// URL, got scheme 'http'"},
        {"url_without_scheme", camera_url("127.0.0.1:8554/x"), 3, 7, "camera[0].url",
         "expected a URL such as rtsp://127.0.0.1:8554/cam"},
        {"url_with_password", camera_url("rtsp://admin:hunter2@127.0.0.1:8554/x"), 3, 7,
         "camera[0].url", "'rtsp://admin:***@127.0.0.1:8554/x' embeds a password"},
        {"url_with_password_in_query", camera_url("rtsp://127.0.0.1:8554/live?user=admin&password=hunter2"), 3, 7,
         "camera[0].url",
         "'rtsp://127.0.0.1:8554/live?user=admin&password=***' carries a secret in its parameter 'password'"},
        {"url_with_token_in_fragment", camera_url("rtsp://127.0.0.1:8554/live#token=hunter2"), 3, 7,
         "camera[0].url", "carries a secret in its parameter 'token'"},
        {"url_bad_port", camera_url("rtsp://127.0.0.1:70000/x"), 3, 7, "camera[0].url",
         "has a bad port '70000' (expected 1..65535)"},
        {"url_relative_file", camera_url("file://videos/a.mp4"), 3, 7, "camera[0].url",
         "expected file:///absolute/path"},
        {"url_without_host", camera_url("rtsp:///x"), 3, 7, "camera[0].url", "has no host"},
        {"latency_negative", camera("latency_ms = -1\n"), 4, 14, "camera[0].latency_ms",
         "expected an integer in [0, 10000], got -1"},
        {"latency_as_string", camera("latency_ms = \"200\"\n"), 4, 14, "camera[0].latency_ms",
         "expected an integer in [0, 10000], got a string"},
        {"detect_fps_zero", camera("detect_fps = 0\n"), 4, 14, "camera[0].detect_fps",
         "expected a number in (0, 60], got 0"},
        {"transport_typo", camera("transport = \"upd\"\n"), 4, 13, "camera[0].transport",
         "expected one of tcp|udp, got 'upd'; did you mean 'udp'?"},
        {"camera_min_face_too_small", camera("min_face_px = 10\n"), 4, 15, "camera[0].min_face_px",
         "expected 0 (use [detect].min_face_px) or an integer in [20, 1000], got 10"},
        {"enabled_as_string", camera("enabled = \"yes\"\n"), 4, 11, "camera[0].enabled",
         "expected true or false, got a string"},
        {"backoff_initial_above_max", camera("backoff_initial_s = 30\nbackoff_max_s = 5\n"), 4, 21,
         "camera[0].backoff_initial_s", "must not exceed backoff_max_s (5)"},
        {"plain_text_password", camera("password = \"hunter2\"\n"), 4, 1, "camera[0].password",
         "plain-text passwords are not accepted"},
        {"password_env_bad_name", camera("password_env = \"1BAD\"\n"), 4, 16,
         "camera[0].password_env", "expected an environment variable name"},
        {"password_env_unset", camera("password_env = \"FACEADAPT_TEST_SURELY_UNSET_1\"\n"), 4, 16,
         "camera[0].password_env",
         "environment variable 'FACEADAPT_TEST_SURELY_UNSET_1' is not set"},
        {"password_file_missing", camera("password_file = \"/nonexistent/faceadapt/pass\"\n"), 4,
         17, "camera[0].password_file",
         "cannot read password file '/nonexistent/faceadapt/pass': No such file or directory"},
        {"password_file_and_env",
         camera("password_file = \"/nonexistent/x\"\npassword_env = \"HOME\"\n"), 5, 16,
         "camera[0].password_env", "set only one of password_file and password_env"},
        // detect, site
        {"queue_depth_float", "[detect]\nqueue_depth = 2.5\n", 2, 15, "detect.queue_depth",
         "expected an integer in [1, 256], got a float"},
        {"track_iou_open_bound", "[detect]\ntrack_iou = 1\n", 2, 13, "detect.track_iou",
         "expected a number in (0, 1), got 1"},
        {"state_dir_empty", "[site]\nstate_dir = \"\"\n", 2, 13, "site.state_dir",
         "expected a non-empty path (string), got an empty string"},
        {"site_id_with_space", "[site]\nid = \"my site\"\n", 2, 6, "site.id",
         "expected 1 to 64 characters from [A-Za-z0-9_-], got 'my site'"},
        {"log_level_unknown", "[site]\nlog_level = \"verbose\"\n", 2, 13, "site.log_level",
         "expected one of trace|debug|info|warn|error, got 'verbose'"},
        // quality tables
        {"quality_threshold_nan", "[quality]\nthreshold = nan\n", 2, 13, "quality.threshold",
         "expected a number in [0, 1], got nan"},
        {"knots_not_increasing", "[quality]\ndeviation_score = [[0, 1.0], [30, 0.6], [15, 0.9]]\n",
         2, 41, "quality.deviation_score[2]",
         "x must be strictly increasing: 15 does not exceed the previous knot's x 30"},
        {"knots_wrong_arity", "[quality]\nintegrity_score = [[0.9, 0.5], [1.0]]\n", 2, 32,
         "quality.integrity_score[1]",
         "expected a knot [x, y] of two finite numbers, got an array of 1 element(s)"},
        {"knots_empty", "[quality]\nsharpness_score = []\n", 2, 19, "quality.sharpness_score",
         "got an empty array"},
        {"knots_not_numbers", "[quality]\ndensity_weight = [[0, \"a\"]]\n", 2, 19,
         "quality.density_weight[0]", "that are not both numbers"},
        {"knots_not_array", "[quality]\nexposure_coefficient = 0.5\n", 2, 24,
         "quality.exposure_coefficient", "expected an array of [x, y] number pairs"},
        {"coefficient_form_typo", "[quality]\ncoefficient_form = \"percentage\"\n", 2, 20,
         "quality.coefficient_form", "expected one of unit|percent, got 'percentage'; did you mean 'percent'?"},
        // learner
        {"device_unknown", "[learner]\ndevice = \"gpu\"\n", 2, 10, "learner.device",
         "expected one of cpu|cuda, got 'gpu'"},
        {"method_wrong_case", "[learner]\nmethod = \"MMT\"\n", 2, 10, "learner.method",
         "did you mean 'mmt'?"},
        {"ema_unknown", "[learner]\nema = \"slow\"\n", 2, 7, "learner.ema",
         "expected one of fixed|mmt, got 'slow'"},
        {"clustering_typo", "[learner]\nclustering = \"dbscann\"\n", 2, 14, "learner.clustering",
         "did you mean 'dbscan'?"},
        {"eps_rule_typo", "[learner]\neps_rule = \"otsu2\"\n", 2, 12, "learner.eps_rule",
         "expected one of otsu|mmt|fixed, got 'otsu2'; did you mean 'otsu'?"},
        {"k2_above_k1", "[learner]\nk1 = 4\nk2 = 6\n", 3, 6, "learner.k2", "must not exceed k1 (4)"},
        {"seed_overflow", "[learner]\nseed = 9999999999\n", 2, 8, "learner.seed",
         "expected an integer in [0, 2147483647], got 9999999999"},
        {"quiet_hours_bad_hour", "[learner]\nquiet_hours = \"25:00-01:00\"\n", 2, 15,
         "learner.quiet_hours", "expected \"\" or \"HH:MM-HH:MM\""},
        {"source_mix_zero", "[learner]\nsource_mix = 0\n", 2, 14, "learner.source_mix",
         "expected a number in (0, 1], got 0"},
        {"source_mix_above_one", "[learner]\nsource_mix = 1.5\n", 2, 14, "learner.source_mix",
         "expected a number in (0, 1], got 1.5"},
        {"source_mix_nan", "[learner]\nsource_mix = nan\n", 2, 14, "learner.source_mix",
         "expected a number in (0, 1], got nan"},
        {"source_mix_markup", "[learner]\nsource_mix = \"<script>alert(1)</script>\\u0007\"\n", 2, 14,
         "learner.source_mix", "expected a number in (0, 1], got a string"},
        {"max_violation_rate_zero", "[learner]\nmax_violation_rate = 0\n", 2, 22, "learner.max_violation_rate",
         "expected a number in (0, 1], got 0"},
        {"max_violation_rate_negative", "[learner]\nmax_violation_rate = -0.01\n", 2, 22, "learner.max_violation_rate",
         "expected a number in (0, 1], got -0.01"},
        {"max_violation_rate_nan", "[learner]\nmax_violation_rate = nan\n", 2, 22, "learner.max_violation_rate",
         "expected a number in (0, 1], got nan"},
        {"max_violation_rate_markup", "[learner]\nmax_violation_rate = \"<script>alert(1)</script>\\u001b[31m\"\n", 2, 22,
         "learner.max_violation_rate", "expected a number in (0, 1], got a string"},
        {"max_violation_rate_inf", "[learner]\nmax_violation_rate = inf\n", 2, 22, "learner.max_violation_rate",
         "expected a number in (0, 1], got inf"},
        // gate, mqtt, publish, metrics
        {"gate_far_boolean", "[gate]\nfar = true\n", 2, 7, "gate.far",
         "expected a number in (0, 1), got a boolean"},
        {"broker_http", "[mqtt]\nbroker = \"http://127.0.0.1:1883\"\n", 2, 10, "mqtt.broker",
         "expected a tcp://, ssl://, mqtt:// or mqtts:// URL, got scheme 'http'"},
        {"broker_password_in_query", "[mqtt]\nbroker = \"tcp://127.0.0.1:1883?password=hunter2\"\n", 2, 10,
         "mqtt.broker", "'tcp://127.0.0.1:1883?password=***' embeds credentials"},
        {"broker_password_in_path_query", "[mqtt]\nbroker = \"tcp://127.0.0.1:1883/x?pwd=hunter2\"\n", 2, 10,
         "mqtt.broker", "embeds credentials"},
        {"mqtt_password_env_unset", "[mqtt]\npassword_env = \"FACEADAPT_TEST_SURELY_UNSET_2\"\n", 2,
         16, "mqtt.password_env", "environment variable 'FACEADAPT_TEST_SURELY_UNSET_2' is not set"},
        {"mqtt_key_file_missing", "[mqtt]\nkey_file = \"/nonexistent/k.pem\"\ncert_file = \"/etc/passwd\"\n",
         2, 12, "mqtt.key_file", "cannot read '/nonexistent/k.pem'"},
        {"mqtt_cert_without_key", "[mqtt]\ncert_file = \"/etc/passwd\"\n", 1, 1, "mqtt.key_file",
         "cert_file and key_file go together; key_file is missing"},
        {"publish_qos_3", "[publish]\nqos = 3\n", 2, 7, "publish.qos",
         "expected an integer in [0, 2], got 3"},
        {"enroll_deviation_out_of_range", "[enroll]\nmax_deviation_deg = 120\n", 2, 21, "enroll.max_deviation_deg",
         "expected a number in (0, 90], got 120"},
        {"enroll_exposure_bounds_crossed", "[enroll]\nmin_exposure = 200\nmax_exposure = 100\n", 2, 16,
         "enroll.min_exposure", "must not exceed max_exposure"},
        {"metrics_listen_without_port", "[metrics]\nlisten = \"localhost\"\n", 2, 10,
         "metrics.listen", "expected host:port"},
    };
    return all;
}

class MalformedConfig : public ::testing::TestWithParam<BadCase> {};

TEST_P(MalformedConfig, ReportsOneLocatedIssue) {
    const BadCase& c = GetParam();
    try {
        parse_config(c.toml, "bad.toml");
        FAIL() << "accepted:\n" << c.toml;
    } catch (const ConfigError& e) {
        ASSERT_EQ(e.issues().size(), 1u) << e.what();
        const ConfigIssue& issue = e.issues().front();
        EXPECT_EQ(issue.file, "bad.toml");
        EXPECT_EQ(issue.line, c.line) << issue.to_string();
        EXPECT_EQ(issue.column, c.column) << issue.to_string();
        EXPECT_EQ(issue.key_path, c.key_path) << issue.to_string();
        EXPECT_NE(issue.message.find(c.fragment), std::string::npos) << issue.to_string();
        // The printed form is "file:line:col: key.path: message".
        std::string prefix = "bad.toml:" + std::to_string(c.line) + ":" + std::to_string(c.column) + ": ";
        if (*c.key_path) prefix += std::string(c.key_path) + ": ";
        EXPECT_EQ(issue.to_string(), prefix + issue.message);
        // A password written in the file never comes back in a message.
        EXPECT_EQ(std::string(e.what()).find("hunter2"), std::string::npos) << e.what();
        // Nor does markup: a wrongly typed value is named by its type, not echoed.
        EXPECT_EQ(std::string(e.what()).find("<script>"), std::string::npos) << e.what();
    }
}

INSTANTIATE_TEST_SUITE_P(Table, MalformedConfig, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<BadCase>& info) { return info.param.name; });

TEST(MalformedConfig, TableHasAtLeast25Cases) { EXPECT_GE(cases().size(), 25u); }

TEST(MalformedConfig, CollectsEveryIssueInFileOrder) {
    const std::string text =
        "[site]\n"                              // 1
        "log_level = \"loud\"\n"                // 2
        "[[camera]]\n"                          // 3
        "id = \"a\"\n"                          // 4
        "url = \"ftp://127.0.0.1/x\"\n"         // 5
        "detect_fsp = 2\n"                      // 6
        "[learner]\n"                           // 7
        "iters = 0\n"                           // 8
        "[metrics]\n"                           // 9
        "listen = \"127.0.0.1:0\"\n";           // 10
    try {
        parse_config(text, "multi.toml");
        FAIL() << "accepted";
    } catch (const ConfigError& e) {
        std::vector<std::string> got;
        for (const auto& issue : e.issues()) got.push_back(issue.to_string());
        const std::vector<std::string> want = {
            "multi.toml:2:13: site.log_level: expected one of trace|debug|info|warn|error, got 'loud'",
            "multi.toml:5:7: camera[0].url: expected an rtsp://, rtsps:// or file:// URL, got scheme 'ftp'",
            "multi.toml:6:1: camera[0].detect_fsp: unknown key 'detect_fsp'; did you mean 'detect_fps'?",
            "multi.toml:8:9: learner.iters: expected an integer in [1, 100000], got 0",
            "multi.toml:10:10: metrics.listen: expected host:port with port 1..65535 (e.g. "
            "127.0.0.1:9464), got '127.0.0.1:0'",
        };
        EXPECT_EQ(got, want);
        // what() carries every line too, for callers that only log the exception.
        for (const auto& line : want) EXPECT_NE(std::string(e.what()).find(line), std::string::npos);
    }
}

TEST(MalformedConfig, UnreadableFileIsAnIssueWithoutLocation) {
    try {
        faceadapt::config::load_config("/nonexistent/faceadapt/site.toml");
        FAIL() << "accepted a missing file";
    } catch (const ConfigError& e) {
        ASSERT_EQ(e.issues().size(), 1u);
        EXPECT_EQ(e.issues()[0].line, 0);
        EXPECT_EQ(e.issues()[0].to_string(),
                  "/nonexistent/faceadapt/site.toml: cannot read the file: No such file or directory");
    }
}

}  // namespace
