// SiteConsole (daemon/console_backend.hpp) over a real crop store, gallery and model registry in
// a temp state folder, and a real metrics registry.
#include <fstream>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

#include "faceadapt/common/site_files.hpp"
#include "faceadapt/common/time.hpp"
#include "faceadapt/daemon/console_backend.hpp"
#include "faceadapt/daemon/metrics.hpp"
#include "faceadapt/daemon/model_registry.hpp"
#include "faceadapt/daemon/training_cycle.hpp"
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
    std::map<std::string, daemon::CameraFrame> frames;  // what the cameras' snapshot keeper holds
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
        hooks.frame = [this](const std::string& camera) -> std::optional<daemon::CameraFrame> {
            const auto it = frames.find(camera);
            if (it == frames.end()) return std::nullopt;
            return it->second;
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
    // The snapshot is the camera's latest full frame, not a face crop: none until the ingest
    // side has one, though "gate" has crops.
    EXPECT_FALSE(s.console->snapshot_jpeg("gate"));
    EXPECT_TRUE(s.console->overview()["cameras"][0]["snapshot"].is_null());
    std::vector<uchar> frame_jpeg;
    cv::imencode(".jpg", cv::Mat(360, 640, CV_8UC3, cv::Scalar(10, 200, 30)), frame_jpeg);
    const auto t = std::chrono::system_clock::now();
    s.frames["gate"] = {std::string(frame_jpeg.begin(), frame_jpeg.end()), t};
    const auto snap = s.console->snapshot_jpeg("gate");
    ASSERT_TRUE(snap);
    const cv::Mat full = cv::imdecode(std::vector<uchar>(snap->begin(), snap->end()), cv::IMREAD_COLOR);
    EXPECT_EQ(full.cols, 640);
    EXPECT_EQ(full.rows, 360);
    EXPECT_EQ(s.console->overview()["cameras"][0]["snapshot"], common::utc_timestamp(t));
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

// The latest cycle's clustering (a clustering.csv written as the training child writes it)
// groups the crops: each track goes whole to its majority cluster, crops newer than the
// clustering or in its noise fall back to their track, and an operator's merge joins two groups
// (stored as a "same" row for the learner).
TEST(SiteConsole, UnknownFacesGroupedByTheLatestClusteringAndMerged) {
    Site s;
    auto add = [&](const char* camera, std::int64_t track, int shade) {
        return s.store->insert({camera, std::chrono::system_clock::now(), track, chip(shade), 0.9, ""}).id;
    };
    std::vector<std::int64_t> t1, t2, t3, t4, fresh;
    for (int i = 0; i < 3; ++i) t1.push_back(add("gate", 1, i));      // cluster 0
    for (int i = 0; i < 2; ++i) t2.push_back(add("yard", 7, 10 + i)); // cluster 0 too (another camera)
    for (int i = 0; i < 3; ++i) t3.push_back(add("gate", 2, 20 + i)); // 2 crops in cluster 1, 1 in cluster 0
    for (int i = 0; i < 2; ++i) t4.push_back(add("gate", 3, 30 + i)); // noise
    const auto single = add("gate", -1, 40);                           // untracked, cluster 1
    std::vector<common::ClusterAssignment> clustering;
    for (auto id : t1) clustering.push_back({id, 0});
    for (auto id : t2) clustering.push_back({id, 0});
    clustering.push_back({t3[0], 1});
    clustering.push_back({t3[1], 0});
    clustering.push_back({t3[2], 1});
    for (auto id : t4) clustering.push_back({id, -1});
    clustering.push_back({single, 1});
    clustering.push_back({999999, 4});  // a crop no longer stored
    fs::create_directories(s.dir.path() / "models");
    common::write_clustering(daemon::latest_clustering_file(s.dir.path() / "models"), clustering);
    for (int i = 0; i < 2; ++i) fresh.push_back(add("gate", 5, 50 + i));  // newer than the clustering

    json u = s.console->unknown_faces(10);
    ASSERT_TRUE(u["clustering"].is_object()) << u.dump();
    EXPECT_EQ(u["clustering"]["crops"], clustering.size());
    EXPECT_EQ(u["crops"], 13);
    ASSERT_EQ(u["groups"].size(), 4u) << u.dump();
    auto ids_of = [](const json& g) {
        std::vector<std::int64_t> v = g["crops"].get<std::vector<std::int64_t>>();
        std::sort(v.begin(), v.end());
        return v;
    };
    auto sorted = [](std::vector<std::int64_t> v) {
        std::sort(v.begin(), v.end());
        return v;
    };
    // Cluster 0: tracks 1 (gate) and 7 (yard): 5 crops, the largest.
    EXPECT_EQ(u["groups"][0]["key"], "cluster 0");
    EXPECT_EQ(u["groups"][0]["count"], 5);
    EXPECT_EQ(u["groups"][0]["tracks"], 2);
    EXPECT_EQ(u["groups"][0]["camera"], "gate, yard");
    EXPECT_EQ(ids_of(u["groups"][0]), sorted({t1[0], t1[1], t1[2], t2[0], t2[1]}));
    // Cluster 1: track 2 whole (its crop the clustering put in cluster 0 stays with it) and the
    // untracked crop.
    EXPECT_EQ(u["groups"][1]["key"], "cluster 1");
    EXPECT_EQ(ids_of(u["groups"][1]), sorted({t3[0], t3[1], t3[2], single}));
    // Noise and crops newer than the clustering: their own tracks (the newer one first).
    EXPECT_EQ(u["groups"][2]["key"], "gate/5");
    EXPECT_EQ(ids_of(u["groups"][2]), sorted(fresh));
    EXPECT_EQ(u["groups"][3]["key"], "gate/3");
    EXPECT_EQ(ids_of(u["groups"][3]), sorted(t4));

    // Merge cluster 1 with the noise track: one group, and a "same" row for the learner.
    EXPECT_THROW(s.console->merge_groups({t3[0]}), std::invalid_argument) << "two groups at least";
    EXPECT_THROW(s.console->merge_groups({t3[0], 123456}), std::invalid_argument) << "no such crop";
    EXPECT_EQ(s.console->merge_groups({u["groups"][1]["ref"].get<std::int64_t>(), u["groups"][3]["ref"].get<std::int64_t>()}), 1);
    const auto stored = common::read_constraints(daemon::SiteConsole::constraints_file(s.dir.path()));
    ASSERT_EQ(stored.same.size(), 1u);
    u = s.console->unknown_faces(10);
    ASSERT_EQ(u["groups"].size(), 3u) << u.dump();
    EXPECT_EQ(u["groups"][0]["count"], 6);
    EXPECT_TRUE(u["groups"][0]["merged"].get<bool>());
    EXPECT_NE(u["groups"][0]["track_label"].get<std::string>().find("merged"), std::string::npos);
    EXPECT_EQ(u["groups"][1]["count"], 5);
    EXPECT_FALSE(u["groups"][1]["merged"].get<bool>());
    EXPECT_EQ(u["group_count"], 3);

    // A newer clustering replaces it (read again when the file changes): everything in one cluster.
    for (auto& a : clustering) a.cluster = 3;
    for (auto id : fresh) clustering.push_back({id, 3});
    const auto path = daemon::latest_clustering_file(s.dir.path() / "models");
    common::write_clustering(path, clustering);
    fs::last_write_time(path, fs::last_write_time(path) + std::chrono::seconds(2));
    u = s.console->unknown_faces(10);
    ASSERT_EQ(u["groups"].size(), 1u) << u.dump();
    EXPECT_EQ(u["groups"][0]["count"], 13);
    EXPECT_EQ(u["groups"][0]["crops"].size(), 8u) << "sample crops, at most 8";
    // Malformed: the console falls back to tracks and says so.
    std::ofstream(path) << "crop,cluster\nnot a row\n";
    fs::last_write_time(path, fs::last_write_time(path) + std::chrono::seconds(4));
    u = s.console->unknown_faces(10);
    EXPECT_TRUE(u["clustering"].is_null());
    EXPECT_EQ(u["groups"][0]["count"], 5) << "tracks 2 and 3, merged: " << u.dump();
    EXPECT_EQ(u["groups"][1]["key"], "gate/1");
}

// Erasing a person also drops the merges of the crops named for them (they are gone).
TEST(SiteConsole, EraseDropsTheMergesOfTheErasedCrops) {
    Site s;
    const auto a = s.store->insert({"gate", std::chrono::system_clock::now(), 1, chip(1), 0.9, ""}).id;
    const auto b = s.store->insert({"gate", std::chrono::system_clock::now(), 2, chip(2), 0.9, ""}).id;
    const auto c = s.store->insert({"gate", std::chrono::system_clock::now(), 3, chip(3), 0.9, ""}).id;
    ASSERT_TRUE(s.console->name_crops("Ada", {a}, "op")[0].ok);
    EXPECT_EQ(s.console->merge_groups({a, b}), 1);
    EXPECT_EQ(s.console->merge_groups({b, c}), 1);
    EXPECT_EQ(s.console->erase("Ada"), 1);
    const auto left = common::read_constraints(daemon::SiteConsole::constraints_file(s.dir.path()));
    EXPECT_TRUE(left.must.empty());
    EXPECT_EQ(left.same, (std::vector<std::pair<std::int64_t, std::int64_t>>{{b, c}}));
    EXPECT_FALSE(s.store->find(a));
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
