// faceadapt configuration: the typed, validated form of one site TOML file.
//
// WHAT THIS REPRESENTS
//   Every section of the site file (docs/configuration.md) as a plain struct with defaults.
//   A default-constructed Config is a valid configuration with no cameras.
//   Secrets (camera passwords, MQTT password) are resolved at load time from a file or an
//   environment variable and held in `Secret`, which never prints its value.
// THREAD SAFETY
//   Plain values; safe to copy and to read from many threads.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace faceadapt::config {

// A secret value. str() gives the value to the code that needs it; masked() is what logs show.
class Secret {
public:
    Secret() = default;
    explicit Secret(std::string value) : value_(std::move(value)) {}
    const std::string& str() const { return value_; }
    bool empty() const { return value_.empty(); }
    std::string masked() const { return value_.empty() ? "" : "********"; }
    bool operator==(const Secret&) const = default;
private:
    std::string value_;
};

// A piecewise-linear mapping given as (x, y) knots with strictly increasing x.
// Below the first knot it holds the first y, above the last the last y.
using Table = std::vector<std::array<double, 2>>;

struct SiteConfig {
    std::string id = "site";                        // MQTT topic segment; [A-Za-z0-9_-]+
    std::filesystem::path state_dir = "/var/lib/faceadapt";
    std::string log_level = "info";                 // trace|debug|info|warn|error

    bool operator==(const SiteConfig&) const = default;
};

struct CameraConfig {
    std::string id;                                 // unique, [A-Za-z0-9_-]+
    std::string url;                                // rtsp://, rtsps:// or file://
    std::string username;                           // optional
    std::filesystem::path password_file;            // optional; read at load time
    std::string password_env;                       // optional; name of an env variable
    Secret password;                                // resolved from password_file / password_env
    std::string transport = "tcp";                  // tcp|udp
    int latency_ms = 200;                           // 0..10000
    double detect_fps = 5.0;                        // (0, 60]
    double stall_timeout_s = 10.0;                  // [1, 600]
    double backoff_initial_s = 1.0;                 // [0.1, 60]
    double backoff_max_s = 60.0;                    // [1, 3600]
    int min_face_px = 0;                            // 0: use [detect].min_face_px
    bool enabled = true;

    bool operator==(const CameraConfig&) const = default;
};

struct DetectConfig {
    int min_face_px = 80;                           // [20, 1000]: smallest face side wanted
    int workers = 0;                                // [0, 256]; 0: one per core
    int queue_depth = 4;                            // [1, 256] frames per camera
    bool motion_gating = true;                      // detect only where there is motion / tracks
    double track_iou = 0.3;                         // (0, 1)
    double track_max_age_s = 2.0;                   // (0, 60]
    std::filesystem::path landmarks_model = "/usr/share/dlib/shape_predictor_68_face_landmarks.dat";  // dlib 68-point model

    bool operator==(const DetectConfig&) const = default;
};

// Patent steps 121-133; every mapping is a Table. See docs/quality.md.
struct QualityConfig {
    double threshold = 0.5;                         // [0, 1]: keep crops scoring above
    double max_deviation_deg = 45.0;                // (0, 90]; step 122 gate: pose deviation must be below
    double min_integrity = 0.6;                     // [0, 1]; step 122 gate: integrity must be above
    Table deviation_score = {{0, 1.0}, {10, 0.95}, {20, 0.8}, {30, 0.6}, {45, 0.2}};           // step 122
    Table integrity_score = {{0.6, 0.4}, {0.8, 0.7}, {1.0, 1.0}};                               // step 123
    Table density_weight = {{0.0, 0.5}, {0.01, 0.6}, {0.03, 0.7}};                  // step 124: density -> w1 (w2 = 1-w1)
    Table density_quality = {{0.0, 0.1}, {0.002, 0.4}, {0.006, 0.8}, {0.012, 1.0}};   // step 126
    Table entropy_deviation = {{0.0, -0.6}, {4.0, -0.4}, {6.0, -0.15}, {7.0, 0.0}, {8.0, 0.0}};   // step 127
    Table exposure_coefficient = {{0, 0.1}, {30, 0.3}, {60, 0.7}, {100, 1.0}, {170, 1.0}, {220, 0.7}, {255, 0.4}}; // step 129
    std::string coefficient_form = "unit";          // step 130: unit|percent
    Table environment_weight = {{0, 0.1}, {60, 0.3}, {120, 0.5}, {255, 0.5}};                  // step 132: ambient -> w1
    Table sharpness_score = {{0, 0.3}, {50, 0.6}, {150, 0.9}, {300, 1.0}};                      // extra, folded into step 130

    bool operator==(const QualityConfig&) const = default;
};

// The enrollment gate (quality/enroll_gate.hpp): an enrollment photo is refused only for what
// makes it measurably worse for recognition (calibrated on LFW: bench_enroll_gate, docs/quality.md).
// The site-crop score ([quality]) is not applied to enrollment photos.
struct EnrollConfig {
    double max_deviation_deg = 50.0;                // (0, 90]: face turned further away is refused
    double min_integrity = 0.6;                     // [0, 1]: face cut by the photo's edge
    double min_sharpness = 10.0;                    // [0, 1e6]: variance of the chip's Laplacian
    double min_exposure = 80.0;                     // [0, 255]: mean luma of the face, darker is refused
    double max_exposure = 255.0;                    // [0, 255]: brighter is refused (255: no bound; on
                                                    // LFW the brightest faces were the most recognisable)

    bool operator==(const EnrollConfig&) const = default;
};

struct StoreConfig {
    int best_per_track = 5;                         // [1, 1000]
    int per_camera_quota = 20000;                   // [1, 10'000'000]
    double retention_days = 30.0;                   // (0, 3650]
    double disk_cap_mb = 4096.0;                    // [1, 10'000'000]

    bool operator==(const StoreConfig&) const = default;
};

struct LearnerConfig {
    std::filesystem::path weights_dir;              // empty: scripts/fetch-weights default cache
    std::string device = "cpu";                     // cpu|cuda
    std::string method = "mmt";                     // mmt|naive
    int cycles = 6;                                 // [1, 1000]
    int iters = 50;                                 // [1, 100000] per cycle
    int max_train_crops = 20000;                    // [2, 10'000'000] stratified sample bound of a run
    int batch_ids = 8;                              // [2, 1024] P pseudo-identities per batch
    int batch_per_id = 4;                           // [1, 64] K images per pseudo-identity
    double lr_backbone = 3.5e-5;                    // (0, 1]
    double lr_classifier = 3.5e-4;                  // (0, 1]
    std::string ema = "fixed";                      // fixed|mmt
    double ema_lambda = 0.99;                       // (0, 1); claim 3: (lambda, 1-lambda)
    std::string clustering = "dbscan";              // dbscan|kmeans
    int kmeans_k = 500;                             // [2, 1'000'000]
    std::string eps_rule = "otsu";                  // otsu|mmt|fixed
    double eps = 0.45;                              // (0, 2]; used with eps_rule = fixed
    int min_samples = 4;                            // [1, 1000]
    int k1 = 20;                                    // [1, 1000] k-reciprocal re-ranking
    int k2 = 6;                                     // [1, k1]
    double soft_ce_weight = 0.5;                    // [0, 10]
    double soft_triplet_weight = 0.8;               // [0, 10]
    double label_smoothing = 0.1;                   // [0, 1)
    double l2sp_alpha = 10.0;                       // [0, 1e6]
    bool merge = true;                              // claim 6
    double merge_convergence = 0.9;                 // (0, 1]
    double source_mix = 1.0;                        // (0, 1] output = start + source_mix (adapted - start)
    double max_violation_rate = 0.01;               // (0, 1] cannot-linked pairs one clustering may merge
    int seed = 0;                                   // [0, 2^31-1]
    double interval_hours = 24.0;                   // (0, 8760] scheduler
    double retry_minutes = 5.0;                     // (0, 1440] first wait after a failed cycle
    double retry_max_hours = 6.0;                   // (0, 8760] cap of the doubling retry wait
    std::filesystem::path trainer;                  // "" -> --trainer, next to faceadaptd, PATH
    int keep_packages = 5;                          // [1, 10000] published packages kept (retention)
    int keep_versions = 10;                         // [2, 10000] model versions kept (retention)
    int min_new_crops = 500;                        // [0, 1e9]
    std::string quiet_hours;                        // "" or "HH:MM-HH:MM"
    int nice = 10;                                  // [0, 19]
    double memory_limit_mb = 8192.0;                // [64, 1e7]

    bool operator==(const LearnerConfig&) const = default;
};

struct GateConfig {
    double far = 1e-3;                              // (0, 1) door false-accept rate of the operating point
    double door_far = 0;                            // [0, 1) stricter door rate to calibrate for; 0: far
    std::filesystem::path strangers_dir;            // "": none; photos of people not enrolled (impostor pairs)
    double max_frr_rise = 0.02;                     // [0, 1] largest allowed FRR rise at the target FAR
    bool require_calibrated = true;                 // refuse a candidate whose target FAR is not resolved
    double max_tar_drop = 0.01;                     // [0, 1]
    double max_rank1_drop = 0.01;                   // [0, 1]
    double max_compactness_drop = 0.02;             // [0, 1]
    double holdout_fraction = 0.1;                  // (0, 1)

    bool operator==(const GateConfig&) const = default;
};

struct MqttConfig {
    std::string broker = "tcp://127.0.0.1:1883";    // tcp://, ssl://, mqtt://, mqtts://
    std::string client_id;                          // "" -> faceadapt-<site>; [A-Za-z0-9_-]*
    std::string username;
    std::filesystem::path password_file;            // optional; read at load time
    std::string password_env;                       // optional; name of an env variable
    Secret password;                                // resolved from password_file / password_env
    std::filesystem::path ca_file;                  // optional; must be readable
    std::filesystem::path cert_file;                // optional; must be readable
    std::filesystem::path key_file;                 // optional; must be readable (never printed)
    int keepalive_s = 30;                           // [1, 3600]

    bool operator==(const MqttConfig&) const = default;
};

struct PublishConfig {
    std::filesystem::path key_dir;                  // "" -> <state_dir>/keys
    int chunk_kib = 256;                            // [1, 65536]
    int qos = 1;                                    // 0..2
    double ack_timeout_s = 300;                     // (0, 86400]
    std::string model_weights = "float32";          // ONNX weights in packages: float32 | float16
    bool gallery_updates = true;                    // ship enrollments/removals at once (a new version)

    bool operator==(const PublishConfig&) const = default;
};

struct MetricsConfig {
    bool enabled = true;
    std::string listen = "127.0.0.1:9464";          // host:port, port in [1, 65535]

    bool operator==(const MetricsConfig&) const = default;
};

// The operator console (ui/console.hpp, docs/console.md). Off until enabled: create the first
// admin with `faceadapt user add admin --role admin` first.
struct UiConfig {
    bool enabled = false;
    std::string listen = "127.0.0.1:8080";          // host:port, port in [1, 65535]
    std::filesystem::path cert_file;                // both set: HTTPS only
    std::filesystem::path key_file;
    double session_hours = 12;                      // a login lasts at most this long
    double idle_minutes = 30;                       // ... and ends after this long unused
    // Host names (or IP addresses) a browser may call the console by, beside the listen address
    // and localhost: a request with another Host header is refused (DNS rebinding).
    std::vector<std::string> allowed_hosts;

    bool operator==(const UiConfig&) const = default;
};

struct Config {
    std::filesystem::path source;                   // the file it was loaded from
    SiteConfig site;
    std::vector<CameraConfig> cameras;
    DetectConfig detect;
    QualityConfig quality;
    EnrollConfig enroll;
    StoreConfig store;
    LearnerConfig learner;
    GateConfig gate;
    MqttConfig mqtt;
    PublishConfig publish;
    MetricsConfig metrics;
    UiConfig ui;

    bool operator==(const Config&) const = default;
};

// One validation problem, located in the source file.
struct ConfigIssue {
    std::filesystem::path file;
    int line = 0;        // 1-based; 0 when unknown
    int column = 0;      // 1-based; 0 when unknown
    std::string key_path;  // e.g. "camera[1].detect_fps"
    std::string message;   // what was expected, and a "did you mean" hint where useful
    std::string to_string() const;  // "file:line:col: key.path: message"
};

// Thrown by load_config with every issue found (not just the first).
class ConfigError : public std::runtime_error {
public:
    explicit ConfigError(std::vector<ConfigIssue> issues);
    const std::vector<ConfigIssue>& issues() const { return issues_; }
private:
    std::vector<ConfigIssue> issues_;
};

// Parses and validates a site file.
// Relative paths in the file are resolved against the file's directory; key paths in issues
// name cameras by their 0-based position ("camera[0].url").
// ensures: a fully validated Config with secrets resolved.
// throws:  ConfigError listing every problem (syntax, unknown key, type, range, duplicate id,
//          bad URL, unreadable secret file).
Config load_config(const std::filesystem::path& file);
// Same, for text already in memory; `name` is used in messages.
Config parse_config(std::string_view toml_text, const std::filesystem::path& name);

// The effective configuration as TOML (every key, defaults filled in), secrets masked: a
// resolved password shows only as a comment `# password = "********"`; password_file and
// password_env (where it comes from) are written, so reparsing the text in the same environment
// gives an equal Config, secrets included.
std::string to_toml(const Config& config);

// Every part of a URL that can carry a secret replaced by "***", for logs, errors and printing:
//   rtsp://user:pass@host/x                      -> rtsp://user:***@host/x
//   rtsps://TOKEN@host/x                         -> rtsps://***@host/x (a lone userinfo may be a token)
//   rtsp://host/live?user=admin&password=hunter2 -> rtsp://host/live?user=admin&password=***
// Query, fragment and ';' parameters count as secret when their (percent-decoded, case-folded)
// name contains pass, pwd, pw, token, secret, key, auth, cred, sig, session, cookie, private or pin.
// ensures: a URL without any such part is returned unchanged; works on any text (no scheme needed
//          for the parameters).
std::string mask_url_credentials(const std::string& url);

// The secret values themselves (as written and, where different, percent-decoded), so that
// texts built elsewhere from the URL (a GStreamer error quoting it) can be scrubbed of them.
std::vector<std::string> url_secrets(const std::string& url);

// Every key the site file accepts, as "section.key" (cameras: "camera.key"), in file order.
// For docs and tests that must cover the whole schema.
std::vector<std::string> known_keys();

// The toml++ version this library was built against, e.g. "3.3.0" (for `faceadapt version`).
std::string toml_library_version();

}  // namespace faceadapt::config
