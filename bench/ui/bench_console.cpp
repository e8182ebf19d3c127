// bench_console: the operator console's pages on loopback with 20 cameras and 10,000 stored crops
// (a real crop store, gallery and model registry in a temp folder, the real SiteConsole and
// ConsoleServer, a logged-in HTTP client). Prints, for the Overview page, its live fragment,
// /api/overview, Unknown faces (10,000 crops grouped by track), People and Models: median, 95th percentile and worst of 50 requests; and a crop
// thumbnail the first time (PNG decode + JPEG encode) against the cached one. Target (issue 14):
// the overview and unknown-faces pages served in under 200 ms.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <unistd.h>
#include <string>
#include <vector>

#include <httplib.h>
#include <opencv2/imgproc.hpp>
#include <spdlog/spdlog.h>

#include "faceadapt/common/site_files.hpp"
#include "faceadapt/daemon/console_backend.hpp"
#include "faceadapt/daemon/training_cycle.hpp"
#include "faceadapt/daemon/metrics.hpp"
#include "faceadapt/quality/crop_store.hpp"
#include "faceadapt/ui/console.hpp"
#include "faceadapt/ui/users.hpp"

namespace fs = std::filesystem;
using namespace faceadapt;
using Clock = std::chrono::steady_clock;

namespace {

struct Figures {
    double median_ms = 0, p95_ms = 0, worst_ms = 0;
};

Figures time_get(httplib::Client& c, const std::string& path, const httplib::Headers& h, int n) {
    std::vector<double> ms;
    for (int i = 0; i < n; ++i) {
        const auto t0 = Clock::now();
        auto r = c.Get(path, h);
        ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
        if (!r || r->status != 200) {
            std::fprintf(stderr, "GET %s failed (%d)\n", path.c_str(), r ? r->status : -1);
            std::exit(1);
        }
    }
    std::sort(ms.begin(), ms.end());
    return {ms[ms.size() / 2], ms[static_cast<std::size_t>(ms.size() * 0.95)], ms.back()};
}

}  // namespace

int main() {
    spdlog::set_level(spdlog::level::warn);
    const fs::path dir = fs::temp_directory_path() / ("bench_console_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    constexpr int kCameras = 20, kCrops = 10000;
    config::Config cfg;
    cfg.site.id = "bench";
    cfg.site.state_dir = dir;
    int code = 0;
    {
        quality::CropStore store(dir, cfg.store, quality::CropStore::Options{false});
        const auto t0 = Clock::now();
        for (int i = 0; i < kCrops; ++i) {
            cv::Mat chip(150, 150, CV_8UC3, cv::Scalar(i % 255, (i * 7) % 255, (i * 13) % 255));
            cv::circle(chip, {75, 75}, 20 + i % 40, cv::Scalar(255, 255, 255), 3);
            store.insert({"cam" + std::to_string(i % kCameras), std::chrono::system_clock::now(), i, chip, 0.5 + (i % 50) / 100.0, ""});
        }
        std::printf("store: %d crops over %d cameras written in %.1f s\n", kCrops, kCameras,
                    std::chrono::duration<double>(Clock::now() - t0).count());
        daemon::MetricsRegistry metrics;
        for (const char* name : {"faceadapt_camera_state", "faceadapt_camera_decoded_frames_total", "faceadapt_camera_faces_total",
                                 "faceadapt_camera_reconnects_total", "faceadapt_camera_faults_total", "faceadapt_training_progress"})
            metrics.describe(name, daemon::MetricType::gauge, "bench");
        for (int c = 0; c < kCameras; ++c) {
            const std::string id = "cam" + std::to_string(c);
            for (const char* st : {"connecting", "streaming", "backing_off", "stopped"})
                metrics.set("faceadapt_camera_state", {{"camera", id}, {"state", st}}, std::string(st) == "streaming");
            metrics.set("faceadapt_camera_decoded_frames_total", {{"camera", id}}, 1000.0 * c);
        }
        daemon::SiteConsoleHooks hooks;
        hooks.config = [&] { return cfg; };
        hooks.trainer_status = [] { return std::string("idle"); };
        hooks.doors = [] { return nlohmann::json::array(); };
        hooks.rollback = [](int) { return std::string("no"); };
        daemon::SiteConsole console(dir, store, metrics, hooks);
        console.sample();
        console.sample();
        ui::UserStore users(ui::users_file(dir));
        users.add("admin", ui::Role::admin, "bench-password");
        users.save();
        ui::ConsoleServer::Options o;
        o.listen = "127.0.0.1:0";
        o.users_file = ui::users_file(dir);
        o.audit_file = dir / "console" / "audit.jsonl";
        ui::ConsoleServer server(o, console);
        httplib::Client c("127.0.0.1", server.port());
        auto login = c.Post("/api/login", R"({"user":"admin","password":"bench-password"})", "application/json");
        if (!login || login->status != 200) {
            std::fprintf(stderr, "login failed\n");
            code = 1;
        } else {
            const std::string cookie = login->get_header_value("Set-Cookie");
            const httplib::Headers h{{"Cookie", cookie.substr(0, cookie.find(';'))}};
            std::printf("%-24s %10s %10s %10s   (50 requests each, ms)\n", "page", "median", "p95", "worst");
            for (const char* page : {"/", "/fragment/overview", "/api/overview", "/unknown", "/api/unknown", "/people", "/models"}) {
                const Figures f = time_get(c, page, h, 50);
                std::printf("%-24s %10.2f %10.2f %10.2f\n", page, f.median_ms, f.p95_ms, f.worst_ms);
            }
            for (const char* page : {"/", "/unknown"}) {
                const Figures f = time_get(c, page, h, 50);
                std::printf("%s with %d cameras and %d crops: median %.2f ms, worst %.2f ms = %.3f x the 200 ms target\n",
                            page, kCameras, kCrops, f.median_ms, f.worst_ms, f.worst_ms / 200.0);
            }
            // The same grouped by a cycle's clustering of every crop (500 clusters, 50 merges by
            // the operator): the page the site sees after its first cycle.
            std::vector<common::ClusterAssignment> clustering;
            for (const auto& r : store.snapshot()) clustering.push_back({r.id, r.id % 500});
            fs::create_directories(dir / "models");
            common::write_clustering(daemon::latest_clustering_file(dir / "models"), clustering);
            for (int m = 0; m < 50; ++m) console.merge_groups({clustering[m].crop, clustering[m + 50].crop});
            const Figures f = time_get(c, "/unknown", h, 50);
            std::printf("/unknown grouped by a clustering of %zu crops (500 clusters, 50 merges): median %.2f ms, "
                        "worst %.2f ms = %.3f x the 200 ms target\n",
                        clustering.size(), f.median_ms, f.worst_ms, f.worst_ms / 200.0);
            // Thumbnails: the 8 latest crops of each camera, first (encoded) then cached.
            std::vector<std::string> paths;
            for (const auto& r : store.latest("", 160)) paths.push_back("/api/crops/" + std::to_string(r.id) + ".jpg");
            auto all = [&] {
                const auto t0 = Clock::now();
                for (const auto& p : paths) c.Get(p, h);
                return std::chrono::duration<double, std::milli>(Clock::now() - t0).count() / paths.size();
            };
            const double first = all(), cached = all();
            std::printf("crop thumbnail (JPEG): first %.2f ms, cached %.2f ms each (%zu crops; cached/first %.2f)\n", first,
                        cached, paths.size(), cached / first);
        }
    }
    fs::remove_all(dir);
    return code;
}
