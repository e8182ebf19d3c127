// The site file's schema (one Field list per section) and the public entry points.
#include "faceadapt/config/config.hpp"
#include "faceadapt/config/quality_json.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "schema.hpp"

namespace faceadapt::config {
namespace {

namespace fs = std::filesystem;
using namespace detail;

// ---- the schema, section by section (docs/configuration.md follows the same order) ----------

std::vector<Field<SiteConfig>> site_fields() {
    using S = SiteConfig;
    return {
        text<S>("id", &S::id, "an identifier ([A-Za-z0-9_-]+)", check_identifier),
        path<S>("state_dir", &S::state_dir, false),
        choice<S>("log_level", &S::log_level, {"trace", "debug", "info", "warn", "error"}),
    };
}

Problem optional_env_name(const std::string& v) {
    return v.empty() ? std::nullopt : check_env_name(v);
}

std::vector<Field<CameraConfig>> camera_fields() {
    using S = CameraConfig;
    auto min_face = [](std::int64_t v) -> Problem {
        if (v == 0 || v >= 20) return std::nullopt;
        return "expected 0 (use [detect].min_face_px) or an integer in [20, 1000], got " +
               std::to_string(v);
    };
    return {
        required(text<S>("id", &S::id, "a unique camera id ([A-Za-z0-9_-]+)", check_identifier)),
        required(text<S>("url", &S::url, "an rtsp://, rtsps:// or file:// URL", check_camera_url)),
        text<S>("username", &S::username, "a user name (string)"),
        path<S>("password_file", &S::password_file),
        text<S>("password_env", &S::password_env, "an environment variable name", optional_env_name),
        choice<S>("transport", &S::transport, {"tcp", "udp"}),
        integer<S>("latency_ms", &S::latency_ms, 0, 10000),
        real<S>("detect_fps", &S::detect_fps, 0, 60, true),
        real<S>("stall_timeout_s", &S::stall_timeout_s, 1, 600),
        real<S>("backoff_initial_s", &S::backoff_initial_s, 0.1, 60),
        real<S>("backoff_max_s", &S::backoff_max_s, 1, 3600),
        integer<S>("min_face_px", &S::min_face_px, 0, 1000, min_face),
        flag<S>("enabled", &S::enabled),
    };
}

std::vector<Field<DetectConfig>> detect_fields() {
    using S = DetectConfig;
    return {
        integer<S>("min_face_px", &S::min_face_px, 20, 1000),
        integer<S>("workers", &S::workers, 0, 256),
        integer<S>("queue_depth", &S::queue_depth, 1, 256),
        flag<S>("motion_gating", &S::motion_gating),
        real<S>("track_iou", &S::track_iou, 0, 1, true, true),
        real<S>("track_max_age_s", &S::track_max_age_s, 0, 60, true),
        path<S>("landmarks_model", &S::landmarks_model, false),
    };
}

std::vector<Field<QualityConfig>> quality_fields() {
    using S = QualityConfig;
    return {
        real<S>("threshold", &S::threshold, 0, 1),
        real<S>("max_deviation_deg", &S::max_deviation_deg, 0, 90, true),
        real<S>("min_integrity", &S::min_integrity, 0, 1),
        knots<S>("deviation_score", &S::deviation_score),
        knots<S>("integrity_score", &S::integrity_score),
        knots<S>("density_weight", &S::density_weight),
        knots<S>("density_quality", &S::density_quality),
        knots<S>("entropy_deviation", &S::entropy_deviation),
        knots<S>("exposure_coefficient", &S::exposure_coefficient),
        choice<S>("coefficient_form", &S::coefficient_form, {"unit", "percent"}),
        knots<S>("environment_weight", &S::environment_weight),
        knots<S>("sharpness_score", &S::sharpness_score),
    };
}

std::vector<Field<EnrollConfig>> enroll_fields() {
    using S = EnrollConfig;
    return {
        real<S>("max_deviation_deg", &S::max_deviation_deg, 0, 90, true),
        real<S>("min_integrity", &S::min_integrity, 0, 1),
        real<S>("min_sharpness", &S::min_sharpness, 0, 1e6),
        real<S>("min_exposure", &S::min_exposure, 0, 255),
        real<S>("max_exposure", &S::max_exposure, 0, 255),
    };
}

std::vector<Field<StoreConfig>> store_fields() {
    using S = StoreConfig;
    return {
        integer<S>("best_per_track", &S::best_per_track, 1, 1000),
        integer<S>("per_camera_quota", &S::per_camera_quota, 1, 10'000'000),
        real<S>("retention_days", &S::retention_days, 0, 3650, true),
        real<S>("disk_cap_mb", &S::disk_cap_mb, 1, 1e7),
    };
}

std::vector<Field<LearnerConfig>> learner_fields() {
    using S = LearnerConfig;
    return {
        path<S>("weights_dir", &S::weights_dir),
        choice<S>("device", &S::device, {"cpu", "cuda"}),
        choice<S>("method", &S::method, {"mmt", "naive"}),
        integer<S>("cycles", &S::cycles, 1, 1000),
        integer<S>("iters", &S::iters, 1, 100000),
        integer<S>("max_train_crops", &S::max_train_crops, 2, 10'000'000),
        integer<S>("batch_ids", &S::batch_ids, 2, 1024),
        integer<S>("batch_per_id", &S::batch_per_id, 1, 64),
        real<S>("lr_backbone", &S::lr_backbone, 0, 1, true),
        real<S>("lr_classifier", &S::lr_classifier, 0, 1, true),
        choice<S>("ema", &S::ema, {"fixed", "mmt"}),
        real<S>("ema_lambda", &S::ema_lambda, 0, 1, true, true),
        choice<S>("clustering", &S::clustering, {"dbscan", "kmeans"}),
        integer<S>("kmeans_k", &S::kmeans_k, 2, 1'000'000),
        choice<S>("eps_rule", &S::eps_rule, {"otsu", "mmt", "fixed"}),
        real<S>("eps", &S::eps, 0, 2, true),
        integer<S>("min_samples", &S::min_samples, 1, 1000),
        integer<S>("k1", &S::k1, 1, 1000),
        integer<S>("k2", &S::k2, 1, 1000),
        real<S>("soft_ce_weight", &S::soft_ce_weight, 0, 10),
        real<S>("soft_triplet_weight", &S::soft_triplet_weight, 0, 10),
        real<S>("label_smoothing", &S::label_smoothing, 0, 1, false, true),
        real<S>("l2sp_alpha", &S::l2sp_alpha, 0, 1e6),
        flag<S>("merge", &S::merge),
        real<S>("merge_convergence", &S::merge_convergence, 0, 1, true),
        real<S>("source_mix", &S::source_mix, 0, 1, true),
        real<S>("max_violation_rate", &S::max_violation_rate, 0, 1, true),
        integer<S>("seed", &S::seed, 0, 2147483647),
        real<S>("interval_hours", &S::interval_hours, 0, 8760, true),
        real<S>("retry_minutes", &S::retry_minutes, 0, 1440, true),
        real<S>("retry_max_hours", &S::retry_max_hours, 0, 8760, true),
        path<S>("trainer", &S::trainer),
        integer<S>("keep_packages", &S::keep_packages, 1, 10000),
        integer<S>("keep_versions", &S::keep_versions, 2, 10000),
        integer<S>("min_new_crops", &S::min_new_crops, 0, 1'000'000'000),
        text<S>("quiet_hours", &S::quiet_hours, "\"\" or \"HH:MM-HH:MM\"", check_quiet_hours),
        integer<S>("nice", &S::nice, 0, 19),
        real<S>("memory_limit_mb", &S::memory_limit_mb, 64, 1e7),
    };
}

std::vector<Field<GateConfig>> gate_fields() {
    using S = GateConfig;
    return {
        real<S>("far", &S::far, 0, 1, true, true),
        real<S>("door_far", &S::door_far, 0, 1, false, true),
        path<S>("strangers_dir", &S::strangers_dir),
        real<S>("max_frr_rise", &S::max_frr_rise, 0, 1),
        flag<S>("require_calibrated", &S::require_calibrated),
        real<S>("max_tar_drop", &S::max_tar_drop, 0, 1),
        real<S>("max_rank1_drop", &S::max_rank1_drop, 0, 1),
        real<S>("max_compactness_drop", &S::max_compactness_drop, 0, 1),
        real<S>("holdout_fraction", &S::holdout_fraction, 0, 1, true, true),
    };
}

std::vector<Field<MqttConfig>> mqtt_fields() {
    using S = MqttConfig;
    auto client_id = [](const std::string& v) -> Problem {
        return v.empty() ? std::nullopt : check_identifier(v);
    };
    return {
        text<S>("broker", &S::broker, "a broker URL (tcp://host:port)", check_broker_url),
        text<S>("client_id", &S::client_id, "\"\" or an identifier ([A-Za-z0-9_-]+)", client_id),
        text<S>("username", &S::username, "a user name (string)"),
        path<S>("password_file", &S::password_file),
        text<S>("password_env", &S::password_env, "an environment variable name", optional_env_name),
        path<S>("ca_file", &S::ca_file),
        path<S>("cert_file", &S::cert_file),
        path<S>("key_file", &S::key_file),
        integer<S>("keepalive_s", &S::keepalive_s, 1, 3600),
    };
}

std::vector<Field<PublishConfig>> publish_fields() {
    using S = PublishConfig;
    return {
        path<S>("key_dir", &S::key_dir),
        integer<S>("chunk_kib", &S::chunk_kib, 1, 65536),
        integer<S>("qos", &S::qos, 0, 2),
        real<S>("ack_timeout_s", &S::ack_timeout_s, 0, 86400, true),
        choice<S>("model_weights", &S::model_weights, {"float32", "float16"}),
        flag<S>("gallery_updates", &S::gallery_updates),
    };
}

std::vector<Field<MetricsConfig>> metrics_fields() {
    using S = MetricsConfig;
    return {
        flag<S>("enabled", &S::enabled),
        text<S>("listen", &S::listen, "host:port", check_listen_address),
    };
}

std::vector<Field<UiConfig>> ui_fields() {
    using S = UiConfig;
    return {
        flag<S>("enabled", &S::enabled),
        text<S>("listen", &S::listen, "host:port", check_listen_address),
        path<S>("cert_file", &S::cert_file),
        path<S>("key_file", &S::key_file),
        real<S>("session_hours", &S::session_hours, 0.1, 720),
        real<S>("idle_minutes", &S::idle_minutes, 1, 1440),
        strings<S>("allowed_hosts", &S::allowed_hosts, 64, check_host_name),
    };
}

std::vector<std::string> section_names() {
    return {"site", "camera", "detect", "quality", "enroll", "store",
            "learner", "gate", "mqtt", "publish", "metrics", "ui"};
}

// ---- checks that need more than one key or the file system --------------------------------

// The whole text of `file` (at most `limit` bytes), or nullopt with the reason in `error`.
std::optional<std::string> read_small_file(const fs::path& file, std::string& error,
                                           std::size_t limit = 1u << 20) {
    std::error_code ec;
    if (fs::is_directory(file, ec)) {
        error = "Is a directory";
        return std::nullopt;
    }
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(file.c_str(), "rb"), &std::fclose);
    if (!f) {
        error = std::strerror(errno);
        return std::nullopt;
    }
    std::string text;
    char buf[4096];
    while (std::size_t n = std::fread(buf, 1, sizeof buf, f.get())) {
        text.append(buf, n);
        if (text.size() > limit) {
            error = "larger than " + std::to_string(limit >> 20) + " MiB";
            return std::nullopt;
        }
    }
    if (std::ferror(f.get())) {
        error = std::strerror(errno);
        return std::nullopt;
    }
    return text;
}

// Fills `out` from password_file or password_env of `table` (a [[camera]] or [mqtt]).
void resolve_secret(Reader& r, const toml::table& table, const std::string& prefix,
                    const fs::path& file, const std::string& env, Secret& out) {
    if (!file.empty() && !env.empty()) {
        return r.add(where(table, "password_env"), prefix + ".password_env",
                     "set only one of password_file and password_env");
    }
    if (!file.empty()) {
        std::string error;
        auto text = read_small_file(file, error);
        if (!text) {
            return r.add(where(table, "password_file"), prefix + ".password_file",
                         "cannot read password file '" + file.string() + "': " + error);
        }
        while (!text->empty() && (text->back() == '\n' || text->back() == '\r')) text->pop_back();
        if (text->empty()) {
            return r.add(where(table, "password_file"), prefix + ".password_file",
                         "password file '" + file.string() + "' is empty");
        }
        out = Secret(std::move(*text));
    } else if (!env.empty()) {
        const char* value = std::getenv(env.c_str());
        if (!value || !*value) {
            return r.add(where(table, "password_env"), prefix + ".password_env",
                         "environment variable '" + env + "' is " + (value ? "empty" : "not set"));
        }
        out = Secret(value);
    }
}

void check_readable(Reader& r, const toml::table& table, const std::string& prefix,
                    std::string_view key, const fs::path& file) {
    if (file.empty()) return;
    std::error_code ec;
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(file.c_str(), "rb"), &std::fclose);
    const std::string error = !f ? std::strerror(errno)
                              : fs::is_directory(file, ec) ? "Is a directory" : "";
    if (!error.empty()) {
        r.add(where(table, key), prefix + "." + std::string(key),
              "cannot read '" + file.string() + "': " + error);
    }
}

void read_cameras(Reader& r, const toml::node& node, std::vector<CameraConfig>& cameras) {
    const auto* array = node.as_array();
    if (array && array->empty()) return;  // `camera = []`: no cameras
    if (!array || !array->is_array_of_tables()) {
        return r.add(node.source(), "camera",
                     "expected an array of tables: write a [[camera]] block per camera, got " +
                         type_phrase(node));
    }
    const auto fields = camera_fields();
    std::map<std::string, std::pair<std::size_t, int>> seen;  // id -> (index, line)
    for (std::size_t i = 0; i < array->size(); ++i) {
        const toml::table& table = *array->get(i)->as_table();
        const std::string prefix = "camera[" + std::to_string(i) + "]";
        CameraConfig camera;
        read_table(r, table, prefix, fields, camera);
        resolve_secret(r, table, prefix, camera.password_file, camera.password_env, camera.password);
        if (camera.backoff_initial_s > camera.backoff_max_s) {
            r.add(where(table, "backoff_initial_s"), prefix + ".backoff_initial_s",
                  "must not exceed backoff_max_s (" + format_number(camera.backoff_max_s) + ")");
        }
        if (!camera.id.empty()) {
            const auto id_where = where(table, "id");
            auto [it, fresh] = seen.emplace(camera.id, std::pair(i, int(id_where.begin.line)));
            if (!fresh) {
                r.add(id_where, prefix + ".id",
                      "duplicate camera id '" + camera.id + "' (already used by camera[" +
                          std::to_string(it->second.first) + "] at line " +
                          std::to_string(it->second.second) + ")");
            }
        }
        cameras.push_back(std::move(camera));
    }
}

template <class S>
void read_section(Reader& r, const toml::table& root, const std::string& name,
                  const std::vector<Field<S>>& fields, S& out, const toml::table** table_out) {
    const toml::node* node = root.get(name);
    if (!node) return;
    const auto* table = node->as_table();
    if (!table) {
        return r.add(node->source(), name,
                     "expected a table ([" + name + "]), got " + type_phrase(*node));
    }
    read_table(r, *table, name, fields, out);
    if (table_out) *table_out = table;
}

std::string join_issues(const std::vector<ConfigIssue>& issues) {
    std::string text;
    for (const auto& issue : issues) {
        if (!text.empty()) text += '\n';
        text += issue.to_string();
    }
    return text;
}

}  // namespace

std::string ConfigIssue::to_string() const {
    std::string out = file.string();
    if (line > 0) {
        out += ":" + std::to_string(line);
        if (column > 0) out += ":" + std::to_string(column);
    }
    out += ": ";
    if (!key_path.empty()) out += key_path + ": ";
    return out + message;
}

ConfigError::ConfigError(std::vector<ConfigIssue> issues)
    : std::runtime_error(join_issues(issues)), issues_(std::move(issues)) {}

Config parse_config(std::string_view toml_text, const fs::path& name) {
    Reader r(name);
    toml::table root;
    try {
        const std::string source = name.string();
        root = toml::parse(toml_text, std::string_view(source));
    } catch (const toml::parse_error& e) {
        r.add(e.source(), "", "TOML syntax error: " + std::string(e.description()));
        throw ConfigError(r.take());
    }

    Config config;
    config.source = name;
    for (auto&& [key, node] : root) {
        const std::string section(key.str());
        const auto known = section_names();
        if (std::find(known.begin(), known.end(), section) == known.end())
            unknown_key(r, key, section, known, "section");
    }
    const toml::table* mqtt = nullptr;
    read_section(r, root, "site", site_fields(), config.site, nullptr);
    if (const toml::node* cameras = root.get("camera")) read_cameras(r, *cameras, config.cameras);
    read_section(r, root, "detect", detect_fields(), config.detect, nullptr);
    read_section(r, root, "quality", quality_fields(), config.quality, nullptr);
    const toml::table* enroll = nullptr;
    read_section(r, root, "enroll", enroll_fields(), config.enroll, &enroll);
    if (enroll && config.enroll.min_exposure > config.enroll.max_exposure)
        r.add(where(*enroll, "min_exposure"), "enroll.min_exposure",
              "must not exceed max_exposure (" + std::to_string(config.enroll.max_exposure) + ")");
    read_section(r, root, "store", store_fields(), config.store, nullptr);
    const toml::table* learner = nullptr;
    read_section(r, root, "learner", learner_fields(), config.learner, &learner);
    read_section(r, root, "gate", gate_fields(), config.gate, nullptr);
    read_section(r, root, "mqtt", mqtt_fields(), config.mqtt, &mqtt);
    read_section(r, root, "publish", publish_fields(), config.publish, nullptr);
    read_section(r, root, "metrics", metrics_fields(), config.metrics, nullptr);
    const toml::table* ui = nullptr;
    read_section(r, root, "ui", ui_fields(), config.ui, &ui);
    if (ui) {
        check_readable(r, *ui, "ui", "cert_file", config.ui.cert_file);
        check_readable(r, *ui, "ui", "key_file", config.ui.key_file);
        if (config.ui.cert_file.empty() != config.ui.key_file.empty()) {
            const char* missing = config.ui.cert_file.empty() ? "cert_file" : "key_file";
            r.add(ui->source(), std::string("ui.") + missing,
                  "cert_file and key_file go together; " + std::string(missing) + " is missing");
        }
    }

    if (learner && config.learner.k2 > config.learner.k1) {
        r.add(where(*learner, "k2"), "learner.k2",
              "must not exceed k1 (" + std::to_string(config.learner.k1) + ")");
    }
    if (mqtt) {
        const MqttConfig& m = config.mqtt;
        resolve_secret(r, *mqtt, "mqtt", m.password_file, m.password_env, config.mqtt.password);
        check_readable(r, *mqtt, "mqtt", "ca_file", m.ca_file);
        check_readable(r, *mqtt, "mqtt", "cert_file", m.cert_file);
        check_readable(r, *mqtt, "mqtt", "key_file", m.key_file);
        if (m.cert_file.empty() != m.key_file.empty()) {
            const char* missing = m.cert_file.empty() ? "cert_file" : "key_file";
            r.add(mqtt->source(), std::string("mqtt.") + missing,
                  "cert_file and key_file go together; " + std::string(missing) + " is missing");
        }
    }
    if (!r.ok()) throw ConfigError(r.take());
    return config;
}

Config load_config(const fs::path& file) {
    std::string error;
    const auto text = read_small_file(file, error, 16u << 20);
    if (!text) throw ConfigError({ConfigIssue{file, 0, 0, "", "cannot read the file: " + error}});
    Config config = parse_config(*text, file);
    std::size_t enabled = 0;
    for (const auto& camera : config.cameras) enabled += camera.enabled ? 1 : 0;
    spdlog::debug("config {}: site '{}', {} camera(s), {} enabled", file.string(), config.site.id,
                  config.cameras.size(), enabled);
    return config;
}

std::string to_toml(const Config& config) {
    std::string out;
    out += "# faceadapt effective configuration";
    if (!config.source.empty()) out += " (from " + config.source.string() + ")";
    out += "\n# Passwords are not written: they are read again from password_file / password_env.\n";
    auto section = [&](const char* name, const auto& fields, const auto& value) {
        out += std::string("\n[") + name + "]\n";
        write_fields(out, fields, value);
    };
    auto secret_note = [&](const Secret& secret) {
        if (!secret.empty()) out += "# password = \"" + secret.masked() + "\"\n";
    };
    section("site", site_fields(), config.site);
    const auto camera_schema = camera_fields();
    for (const auto& camera : config.cameras) {
        out += "\n[[camera]]\n";
        write_fields(out, camera_schema, camera);
        secret_note(camera.password);
    }
    section("detect", detect_fields(), config.detect);
    section("quality", quality_fields(), config.quality);
    section("enroll", enroll_fields(), config.enroll);
    section("store", store_fields(), config.store);
    section("learner", learner_fields(), config.learner);
    section("gate", gate_fields(), config.gate);
    section("mqtt", mqtt_fields(), config.mqtt);
    secret_note(config.mqtt.password);
    section("publish", publish_fields(), config.publish);
    section("metrics", metrics_fields(), config.metrics);
    section("ui", ui_fields(), config.ui);
    return out;
}

std::vector<std::string> known_keys() {
    std::vector<std::string> keys;
    auto add = [&](const std::string& section, const auto& fields) {
        for (const auto& f : fields) keys.push_back(section + "." + f.name);
    };
    add("site", site_fields());
    add("camera", camera_fields());
    add("detect", detect_fields());
    add("quality", quality_fields());
    add("enroll", enroll_fields());
    add("store", store_fields());
    add("learner", learner_fields());
    add("gate", gate_fields());
    add("mqtt", mqtt_fields());
    add("publish", publish_fields());
    add("metrics", metrics_fields());
    add("ui", ui_fields());
    return keys;
}

// ---- [quality] as JSON (quality_json.hpp) ---------------------------------------------------
// Both ways go through a toml::table, so the manifest's object is read by the very Field list
// that reads the site file (same keys, bounds and messages) and written by the same writers.
namespace {

// Deep enough for a table's knots: a key's array of knots -> [x, y] (two levels of arrays).
constexpr int kMaxJsonDepth = 2;

// A JSON scalar as a TOML value, passed to `put`; false (nothing put) for what is not a scalar TOML
// can hold (null, an array, an object). Integers beyond int64 become floats.
template <class Put>
bool put_scalar(const nlohmann::json& v, Put&& put) {
    using T = nlohmann::json::value_t;
    switch (v.type()) {
        case T::boolean: put(v.get<bool>()); return true;
        case T::number_integer: put(v.get<std::int64_t>()); return true;
        case T::number_unsigned: {
            const auto u = v.get<std::uint64_t>();
            if (u <= static_cast<std::uint64_t>(INT64_MAX)) put(static_cast<std::int64_t>(u));
            else put(static_cast<double>(u));
            return true;
        }
        case T::number_float: put(v.get<double>()); return true;
        case T::string: put(v.get<std::string>()); return true;
        default: return false;
    }
}

// Appends the elements of the JSON array `v` to `out`; arrays in it nest at most `depth` more
// levels. false for an element TOML cannot hold or nesting deeper than that.
bool append_elements(toml::array& out, const nlohmann::json& v, int depth) {
    for (const auto& e : v) {
        if (e.is_array()) {
            if (depth <= 0) return false;
            toml::array inner;
            if (!append_elements(inner, e, depth - 1)) return false;
            out.push_back(std::move(inner));
        } else if (!put_scalar(e, [&](auto&& x) { out.push_back(std::forward<decltype(x)>(x)); })) {
            return false;
        }
    }
    return true;
}

nlohmann::json toml_to_json(const toml::node& node) {
    if (const auto* t = node.as_table()) {
        nlohmann::json out = nlohmann::json::object();
        for (auto&& [key, value] : *t) out[std::string(key.str())] = toml_to_json(value);
        return out;
    }
    if (const auto* a = node.as_array()) {
        nlohmann::json out = nlohmann::json::array();
        for (const auto& e : *a) out.push_back(toml_to_json(e));
        return out;
    }
    if (const auto* i = node.as_integer()) return i->get();
    if (const auto* f = node.as_floating_point()) return f->get();
    if (const auto* b = node.as_boolean()) return b->get();
    if (const auto* s = node.as_string()) return s->get();
    return nullptr;  // dates and times: no [quality] key has one
}

std::string json_type_phrase(const nlohmann::json& v) {
    switch (v.type()) {
        case nlohmann::json::value_t::null: return "null";
        case nlohmann::json::value_t::object: return "an object";
        case nlohmann::json::value_t::array: return "an array";
        default: return std::string("a JSON ") + v.type_name();
    }
}

}  // namespace

nlohmann::json quality_to_json(const QualityConfig& quality) {
    std::string text;
    write_fields(text, quality_fields(), quality);
    return toml_to_json(toml::parse(text, std::string_view("[quality]")));
}

QualityConfig quality_from_json(const nlohmann::json& j, const std::string& origin) {
    Reader r(origin);
    if (!j.is_object()) {
        r.add({}, "quality", "expected an object of [quality] keys, got " + json_type_phrase(j));
        throw ConfigError(r.take());
    }
    toml::table table;
    for (const auto& item : j.items()) {
        // Named copies, not a structured binding: clang before 16 cannot capture one in a lambda.
        const std::string key = item.key();
        const nlohmann::json& value = item.value();
        bool held = false;
        if (value.is_array()) {
            toml::array a;
            held = append_elements(a, value, kMaxJsonDepth - 1);
            if (held) table.insert(key, std::move(a));
        } else {
            held = put_scalar(value, [&](auto&& x) { table.insert(key, std::forward<decltype(x)>(x)); });
        }
        if (!held)
            r.add({}, "quality." + key, "expected a number, a string or an array of [x, y] pairs, got " +
                                            (value.is_array() ? std::string("arrays nested too deeply (or holding null)")
                                                              : json_type_phrase(value)));
    }
    QualityConfig out;
    read_table(r, table, "quality", quality_fields(), out);
    if (!r.ok()) throw ConfigError(r.take());
    return out;
}

std::string toml_library_version() {
    return std::to_string(TOML_LIB_MAJOR) + "." + std::to_string(TOML_LIB_MINOR) + "." +
           std::to_string(TOML_LIB_PATCH);
}

}  // namespace faceadapt::config
