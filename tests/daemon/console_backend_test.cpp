// SiteConsole (daemon/console_backend.hpp) over a real crop store, gallery and model registry in
// a temp state folder, and a real metrics registry.
#include <fstream>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

#include "faceadapt/daemon/console_backend.hpp"
#include "faceadapt/daemon/metrics.hpp"
#include "faceadapt/daemon/model_registry.hpp"
#include "faceadapt/quality/crop_store.hpp"
#include "faceadapt/quality/gallery.hpp"
#include "test_support.hpp"

using namespace faceadapt;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

cv::Mat chip(int shade) { return cv::Mat(150, 150, CV_8UC3, cv::Scalar(shade, 255 - shade, 40)); }

struct Site {
    test::TempDir dir;
    config::Config cfg;
    std::unique_ptr<quality::CropStore> store;
    daemon::MetricsRegistry metrics;
    std::vector<int> rollbacks;
    std::unique_ptr<daemon::SiteConsole> console;

    Site() {
        cfg.site.id = "unit";
        cfg.site.state_dir = dir.path();
        store = std::make_unique<quality::CropStore>(dir.path(), cfg.store, quality::CropStore::Options{false});
        for (const char* name : {"faceadapt_camera_state", "faceadapt_camera_decoded_frames_total",
                                 "faceadapt_camera_faces_total", "faceadapt_camera_reconnects_total",
                                 "faceadapt_camera_faults_total", "faceadapt_training_progress"})
            metrics.describe(name, daemon::MetricType::gauge, "test");
        daemon::SiteConsoleHooks hooks;
        hooks.config = [this] { return cfg; };
        hooks.trainer_status = [] { return std::string("idle"); };
        hooks.doors = [] { return json::array({{{"door", "door1"}, {"installed_version", 3}}}); };
        hooks.rollback = [this](int v) {
            rollbacks.push_back(v);
            return "started";
        };
        console = std::make_unique<daemon::SiteConsole>(dir.path(), *store, metrics, hooks);
    }
};

TEST(SiteConsole, OverviewFromMetricsAndStore) {
    Site s;
    s.metrics.set("faceadapt_camera_state", {{"camera", "gate"}, {"state", "streaming"}}, 1);
    s.metrics.set("faceadapt_camera_state", {{"camera", "gate"}, {"state", "connecting"}}, 0);
    s.metrics.set("faceadapt_camera_reconnects_total", {{"camera", "gate"}}, 2);
    s.metrics.set("faceadapt_camera_state", {{"camera", "yard"}, {"state", "backing_off"}}, 1);
    std::vector<std::int64_t> ids;
    for (int i = 0; i < 10; ++i)
        ids.push_back(s.store->insert({"gate", std::chrono::system_clock::now(), i, chip(i * 20), 0.9, ""}).id);
    s.metrics.set("faceadapt_camera_decoded_frames_total", {{"camera", "gate"}}, 100);
    s.metrics.set("faceadapt_camera_faces_total", {{"camera", "gate"}}, 10);
    s.console->sample();
    s.metrics.set("faceadapt_camera_decoded_frames_total", {{"camera", "gate"}}, 200);
    s.metrics.set("faceadapt_camera_faces_total", {{"camera", "gate"}}, 20);
    // Observed: the second sample is later than the first.
    const auto t0 = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() == t0) {}
    s.console->sample();
    const json o = s.console->overview();
    ASSERT_EQ(o["cameras"].size(), 2u) << o.dump();
    const json& gate = o["cameras"][0];
    EXPECT_EQ(gate["id"], "gate");
    EXPECT_EQ(gate["state"], "streaming");
    EXPECT_EQ(gate["reconnects"], 2);
    EXPECT_GT(gate["fps"].get<double>(), 0.0);
    EXPECT_GT(gate["faces_per_min"].get<double>(), 0.0);
    ASSERT_EQ(gate["latest_crops"].size(), 8u);
    EXPECT_EQ(gate["latest_crops"][0], ids.back()) << "newest first";
    EXPECT_EQ(o["cameras"][1]["state"], "backing_off");
    EXPECT_EQ(o["store"]["crops"], 10);
    EXPECT_EQ(o["doors"][0]["door"], "door1");
    EXPECT_NE(o["status"].get<std::string>().find("cameras 1/2 up, 10 crops stored, model v0"), std::string::npos) << o["status"];
    EXPECT_LT(o["model"]["eta_s"].get<double>(), 0) << "no cycle running";
    // A cycle: 10% when first seen, 20% later: the ETA is 8 x the time between.
    s.metrics.set("faceadapt_training_progress", {}, 0.1);
    s.console->sample();
    const auto t1 = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - t1 < std::chrono::milliseconds(20)) {}
    s.metrics.set("faceadapt_training_progress", {}, 0.2);
    s.console->sample();
    const double eta = s.console->overview()["model"]["eta_s"].get<double>();
    EXPECT_GT(eta, 8 * 0.019);
    EXPECT_LT(eta, 8 * 1.0);

    const auto jpeg = s.console->crop_jpeg(ids[3]);
    ASSERT_TRUE(jpeg);
    const cv::Mat decoded = cv::imdecode(std::vector<uchar>(jpeg->begin(), jpeg->end()), cv::IMREAD_COLOR);
    EXPECT_EQ(decoded.cols, 150);
    EXPECT_EQ(s.console->crop_jpeg(ids[3]), jpeg) << "cached";
    EXPECT_FALSE(s.console->crop_jpeg(123456));
    EXPECT_TRUE(s.console->snapshot_jpeg("gate"));
    EXPECT_FALSE(s.console->snapshot_jpeg("yard"));
}

TEST(SiteConsole, PeopleEraseAndRefusedUploads) {
    Site s;
    {
        quality::Gallery g(s.dir.path());
        g.add("Ada", chip(10), quality::QualityScore{}, "console op: ada1.jpg");
        g.add("Ada", chip(20), quality::QualityScore{}, "/photos/ada2.jpg");
        g.add("Bob", chip(30), quality::QualityScore{}, "console admin: bob.png");
    }
    json p = s.console->people()["people"];
    ASSERT_EQ(p.size(), 2u);
    EXPECT_EQ(p[0]["name"], "Ada");
    ASSERT_EQ(p[0]["photos"].size(), 2u);
    EXPECT_EQ(p[0]["photos"][0]["by"], "op");
    EXPECT_EQ(p[0]["photos"][0]["source"], "ada1.jpg");
    EXPECT_EQ(p[0]["photos"][1]["by"], "command line");
    EXPECT_TRUE(s.console->gallery_jpeg(p[0]["photos"][0]["id"].get<std::int64_t>()));
    const std::int64_t before = quality::Gallery::read_revision(s.dir.path());
    EXPECT_EQ(s.console->erase("Ada"), 2);
    EXPECT_GT(quality::Gallery::read_revision(s.dir.path()), before) << "the daemon's gallery watch sees the change";
    EXPECT_EQ(s.console->erase("Ada"), 0);
    p = s.console->people()["people"];
    ASSERT_EQ(p.size(), 1u);
    EXPECT_EQ(p[0]["name"], "Bob");

    // Uploads refused before any face detection (no landmark model needed): not an image, and
    // a PNG whose header announces 15000 x 15000 pixels (never decoded).
    const fs::path bomb = s.dir.path() / "bomb.png";
    test::write_zero_png(bomb, 15000, 15000);
    std::ifstream in(bomb, std::ios::binary);
    const std::string bomb_bytes((std::istreambuf_iterator<char>(in)), {});
    const auto r = s.console->enroll("Carl", {{"notes.txt", "hello"}, {"bomb.png", bomb_bytes}}, "op");
    ASSERT_EQ(r.size(), 2u);
    EXPECT_FALSE(r[0].ok);
    EXPECT_NE(r[0].reason.find("not a JPEG, PNG"), std::string::npos) << r[0].reason;
    EXPECT_FALSE(r[1].ok);
    EXPECT_NE(r[1].reason.find("15000x15000"), std::string::npos) << r[1].reason;
    EXPECT_THROW(s.console->enroll("<script>", {{"a.jpg", "x"}}, "op"), std::invalid_argument);
    EXPECT_EQ(s.console->people()["people"].size(), 1u);
}

TEST(SiteConsole, EnrollsAnLfwPhotoThroughTheEnrollmentGate) {
    const fs::path photo = test::shared_dir() / "datasets" / "lfw-devtest" / "images" / "Tang_Jiaxuan" / "Tang_Jiaxuan_0001.jpg";
    FACEADAPT_REQUIRE_PATH(photo);
    Site s;
    std::ifstream in(photo, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), {});
    const cv::Mat grey(300, 300, CV_8UC3, cv::Scalar(128, 128, 128));
    std::vector<uchar> png;
    cv::imencode(".png", grey, png);
    const auto r = s.console->enroll("Tang Jiaxuan", {{"tang.jpg", bytes}, {"grey.png", std::string(png.begin(), png.end())}}, "op");
    ASSERT_EQ(r.size(), 2u);
    EXPECT_TRUE(r[0].ok) << r[0].reason;
    EXPECT_GT(r[0].entry, 0);
    EXPECT_FALSE(r[1].ok);
    EXPECT_NE(r[1].reason.find("no face"), std::string::npos) << r[1].reason;
    const json p = s.console->people()["people"];
    ASSERT_EQ(p.size(), 1u);
    EXPECT_EQ(p[0]["photos"][0]["by"], "op");
    EXPECT_EQ(p[0]["photos"][0]["source"], "tang.jpg");
}

TEST(SiteConsole, UnknownFacesGroupedByTrackNamedAndCorrected) {
    Site s;
    std::vector<std::int64_t> a, b;
    for (int i = 0; i < 3; ++i) a.push_back(s.store->insert({"gate", std::chrono::system_clock::now(), 11, chip(i), 0.9, ""}).id);
    for (int i = 0; i < 2; ++i) b.push_back(s.store->insert({"yard", std::chrono::system_clock::now(), 11, chip(50 + i), 0.8, ""}).id);
    const auto single = s.store->insert({"gate", std::chrono::system_clock::now(), -1, chip(99), 0.7, ""}).id;
    json u = s.console->unknown_faces(10);
    EXPECT_EQ(u["crops"], 6);
    ASSERT_EQ(u["groups"].size(), 3u) << u.dump();
    EXPECT_EQ(u["groups"][0]["key"], "gate/11") << "largest first; the same track id on another camera is another group";
    EXPECT_EQ(u["groups"][0]["count"], 3);
    EXPECT_EQ(u["groups"][1]["key"], "yard/11");
    EXPECT_EQ(u["groups"][2]["crops"][0], single);
    EXPECT_EQ(s.console->unknown_faces(1)["groups"].size(), 1u);

    const auto r = s.console->name_crops("Ada", a, "op");
    ASSERT_EQ(r.size(), 3u);
    for (const auto& e : r) EXPECT_TRUE(e.ok) << e.reason;
    EXPECT_EQ(s.console->people()["people"][0]["photos"].size(), 3u);
    EXPECT_EQ(s.console->unknown_faces(10)["groups"][0]["named"], "Ada");
    EXPECT_EQ(s.console->not_person("Ada", b), 2);
    EXPECT_THROW(s.console->not_person("Ada", {123456}), std::invalid_argument);
    EXPECT_THROW(s.console->name_crops("<b>", a, "op"), std::invalid_argument);
    s.console->not_person("Bob", {single});
    auto constraints = [&] {
        std::ifstream in(daemon::SiteConsole::constraints_file(s.dir.path()));
        return std::string((std::istreambuf_iterator<char>(in)), {});
    };
    EXPECT_EQ(constraints(), "kind,a,b\n" + fmt::format("must,{},Ada\nmust,{},Ada\nmust,{},Ada\ncannot,{},name:Ada\n"
                                                          "cannot,{},name:Ada\ncannot,{},name:Bob\n",
                                                          a[0], a[1], a[2], b[0], b[1], single));
    // One photo removed, then the person erased: gallery entries, the crops named for them and
    // every correction naming them are gone; others' corrections stay.
    const auto photo = s.console->people()["people"][0]["photos"][0]["id"].get<std::int64_t>();
    EXPECT_TRUE(s.console->remove_photo(photo));
    EXPECT_FALSE(s.console->remove_photo(photo));
    EXPECT_EQ(s.console->people()["people"][0]["photos"].size(), 2u);
    EXPECT_EQ(s.console->erase("Ada"), 2);
    EXPECT_EQ(constraints(), fmt::format("kind,a,b\ncannot,{},name:Bob\n", single));
    for (const auto id : a) EXPECT_FALSE(s.store->find(id)) << "crop " << id << " was named Ada";
    EXPECT_TRUE(s.store->find(b[0])) << "a crop only said not to be Ada is not hers";
    EXPECT_EQ(s.store->stats().crops, 3);
}

TEST(SiteConsole, RollbackValidatesTheVersion) {
    Site s;
    EXPECT_THROW(s.console->rollback(5), std::invalid_argument) << "not stored";
    EXPECT_THROW(s.console->rollback(0), std::invalid_argument) << "0 is current";
    const fs::path model = s.dir.path() / "m";
    std::ofstream(model) << "model";
    daemon::ModelRegistry registry(s.dir.path() / "models");
    const int v = registry.add(model, "train").version;
    registry.set_current(v);
    EXPECT_EQ(s.console->rollback(0), "started");
    EXPECT_EQ(s.rollbacks, std::vector<int>{0});
    const json m = s.console->models();
    EXPECT_EQ(m["current"], v);
    ASSERT_EQ(m["versions"].size(), 1u);
    EXPECT_EQ(m["versions"][0]["origin"], "train");
}

}  // namespace
