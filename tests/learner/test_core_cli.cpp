// The `faceadapt embed` and `faceadapt eval` commands, run as a user would.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "faceadapt/common/site_files.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using faceadapt::test::run_command;

namespace {

fs::path faceadapt_exe() { return faceadapt::test::binary_dir() / "tools/faceadapt"; }
fs::path reference_dir() { return faceadapt::test::shared_dir() / "reference/embeddings"; }
fs::path manifest() {
    return faceadapt::test::weights_dir() / "model/face_recognition_model-weights_manifest.json";
}
// The line of `output` that holds the JSON object (stderr log lines are mixed in).
nlohmann::json json_line(const std::string& output) {
    std::istringstream in(output);
    for (std::string line; std::getline(in, line);)
        if (!line.empty() && line.front() == '{') return nlohmann::json::parse(line);
    ADD_FAILURE() << "no JSON line in: " << output;
    return nlohmann::json::object();
}
std::string env_prefix() { return "FACEADAPT_WEIGHTS_DIR='" + faceadapt::test::weights_dir().string() + "' "; }

}  // namespace

TEST(EmbedCli, ChipsMatchReferenceEmbeddings) {
    FACEADAPT_REQUIRE_PATH(reference_dir() / "embeddings.json");
    FACEADAPT_REQUIRE_PATH(manifest());
    faceadapt::test::TempDir tmp;
    const fs::path out = tmp.path() / "emb.jsonl";
    std::string output;
    const int rc = run_command(env_prefix() + faceadapt_exe().string() + " embed --chips '" +
                                   (reference_dir() / "chips").string() + "' --out '" + out.string() + "'",
                               &output);
    ASSERT_EQ(rc, 0) << output;
    std::map<std::string, std::vector<double>> got;
    std::ifstream in(out);
    for (std::string line; std::getline(in, line);) {
        const auto j = nlohmann::json::parse(line);
        got[fs::path(j.at("path").get<std::string>()).filename().string()] = j.at("embedding").get<std::vector<double>>();
    }
    std::ifstream ref(reference_dir() / "embeddings.json");
    const auto expected = nlohmann::json::parse(ref);
    ASSERT_EQ(got.size(), expected.at("chips").size());
    double worst = 0.0;
    for (const auto& c : expected.at("chips")) {
        const auto name = fs::path(c.at("chip").get<std::string>()).filename().string();
        ASSERT_TRUE(got.count(name)) << name;
        const auto e = c.at("embedding").get<std::vector<double>>();
        ASSERT_EQ(got[name].size(), 128u);
        for (std::size_t k = 0; k < 128; ++k) worst = std::max(worst, std::abs(got[name][k] - e[k]));
    }
    EXPECT_LT(worst, 1e-3) << "max abs difference to embeddings.json";
}

TEST(EmbedCli, BadInputExitsWithTwo) {
    faceadapt::test::TempDir tmp;
    std::string output;
    // no such folder
    EXPECT_EQ(run_command(faceadapt_exe().string() + " embed --chips '" + (tmp.path() / "absent").string() +
                              "' --out '" + (tmp.path() / "o.jsonl").string() + "'",
                          &output),
              2)
        << output;
    EXPECT_NE(output.find("absent"), std::string::npos) << output;
    // a chip that is not 150x150
    FACEADAPT_REQUIRE_PATH(faceadapt::test::weights_dir() / "demo/sample1.jpg");
    FACEADAPT_REQUIRE_PATH(manifest());
    fs::create_directories(tmp.path() / "chips");
    fs::copy_file(faceadapt::test::weights_dir() / "demo/sample1.jpg", tmp.path() / "chips/sample1.jpg");
    EXPECT_EQ(run_command(env_prefix() + faceadapt_exe().string() + " embed --chips '" + (tmp.path() / "chips").string() +
                              "' --out '" + (tmp.path() / "o.jsonl").string() + "'",
                          &output),
              2)
        << output;
    EXPECT_NE(output.find("150x150"), std::string::npos) << output;
    // both sources at once
    EXPECT_NE(run_command(faceadapt_exe().string() + " embed --chips a --images b --out c", &output), 0);
}

TEST(EvalCli, JsonKeysOnASmallFolder) {
    FACEADAPT_REQUIRE_PATH(reference_dir() / "chips");
    FACEADAPT_REQUIRE_PATH(manifest());
    // identity folders from the reference chips: s1_1.png -> s1/1.png (8 identities x 3 chips)
    faceadapt::test::TempDir tmp;
    for (const auto& e : fs::directory_iterator(reference_dir() / "chips")) {
        const std::string name = e.path().filename().string();
        const auto cut = name.rfind('_');
        fs::create_directories(tmp.path() / name.substr(0, cut));
        fs::copy_file(e.path(), tmp.path() / name.substr(0, cut) / name.substr(cut + 1));
    }
    std::string output;
    const int rc = run_command(env_prefix() + faceadapt_exe().string() + " eval --chips --json --data '" +
                                   tmp.path().string() + "'",
                               &output);
    ASSERT_EQ(rc, 0) << output;
    const auto j = json_line(output);
    EXPECT_EQ(j.at("images").get<int>(), 24);
    EXPECT_EQ(j.at("identities").get<int>(), 8);
    for (const char* key : {"tar_at_far_1e-3", "tar_at_far_1e-4", "pair_accuracy", "rank1", "pairwise_f", "bcubed_f", "nmi"}) {
        ASSERT_TRUE(j.contains(key)) << key << " missing in " << output;
        EXPECT_GE(j.at(key).get<double>(), 0.0) << key;
        EXPECT_LE(j.at(key).get<double>(), 1.0) << key;
    }
    EXPECT_TRUE(j.contains("clusters"));
    EXPECT_FALSE(j.contains("pairs_accuracy")) << "only with --pairs";
    // the source model separates these 8 well-lit identities
    EXPECT_GE(j.at("rank1").get<double>(), 0.9);

    // --pairs in LFW format over the same folder: s1 1 2 (same), s1 1 s2 1 (different), ...
    // (LFW naming: images/<name>/<name>_NNNN.<ext>)
    const fs::path pairs = tmp.path() / "pairs.txt";
    const fs::path lfw = tmp.path() / "lfw";
    std::ofstream p(pairs);
    p << "20\n";
    std::vector<std::string> ids;
    for (const auto& e : fs::directory_iterator(tmp.path()))
        if (e.is_directory() && e.path().filename() != "lfw") ids.push_back(e.path().filename().string());
    std::sort(ids.begin(), ids.end());
    ASSERT_EQ(ids.size(), 8u);
    for (const auto& id : ids) {
        fs::create_directories(lfw / "images" / id);
        std::vector<fs::path> files;
        for (const auto& f : fs::directory_iterator(tmp.path() / id)) files.push_back(f.path());
        std::sort(files.begin(), files.end());
        ASSERT_EQ(files.size(), 3u) << id;
        for (std::size_t k = 0; k < files.size(); ++k) {
            char buf[32];
            std::snprintf(buf, sizeof buf, "_%04zu.png", k + 1);
            fs::copy_file(files[k], lfw / "images" / id / (id + buf));
        }
    }
    for (std::size_t i = 0; i < ids.size(); ++i) {
        p << ids[i] << "\t1\t2\n" << ids[i] << "\t2\t3\n";
        p << ids[i] << "\t1\t" << ids[(i + 1) % ids.size()] << "\t1\n" << ids[i] << "\t3\t" << ids[(i + 3) % ids.size()] << "\t2\n";
    }
    p << "Nobody\t1\t2\n";  // a pair whose images are absent: counted as skipped
    p.close();
    ASSERT_EQ(run_command(env_prefix() + faceadapt_exe().string() + " eval --chips --json --data '" + lfw.string() +
                              "' --pairs '" + pairs.string() + "'",
                          &output),
              0)
        << output;
    const auto k = json_line(output);
    ASSERT_TRUE(k.contains("pairs_accuracy")) << output;
    EXPECT_EQ(k.at("pairs_used").get<int>(), 32);
    EXPECT_EQ(k.at("pairs_skipped").get<int>(), 1);
    EXPECT_GE(k.at("pairs_accuracy").get<double>(), 0.8);
    // a missing data folder is bad input
    EXPECT_EQ(run_command(faceadapt_exe().string() + " eval --data '" + (tmp.path() / "absent").string() + "'", &output),
              2);
}

TEST(TrainCli, BadInputExitsWithTwoAndNamesWhatIsWrong) {
    faceadapt::test::TempDir tmp;
    const std::string exe = faceadapt_exe().string() + " train";
    const std::string out = " --out '" + (tmp.path() / "m.fam").string() + "'";
    std::string output;
    EXPECT_EQ(run_command(exe + " --data '" + (tmp.path() / "absent").string() + "'" + out, &output), 2) << output;
    EXPECT_NE(output.find("absent"), std::string::npos) << output;
    fs::create_directories(tmp.path() / "empty");
    const std::string data = " --data '" + (tmp.path() / "empty").string() + "'";
    EXPECT_EQ(run_command(exe + data + " --chips" + out, &output), 2) << output;
    EXPECT_NE(output.find("no images"), std::string::npos) << output;
    EXPECT_EQ(run_command(exe + data + " --chips --out '" + (tmp.path() / "no/such/m.fam").string() + "'", &output), 2)
        << output;
    EXPECT_NE(output.find("does not exist"), std::string::npos) << output;
    EXPECT_EQ(run_command(exe + data + out + " --method bogus", &output), 2) << output;
    EXPECT_NE(output.find("bogus"), std::string::npos) << output;
    // Claim 6 (merge) and claim 1 (pick) at once.
    EXPECT_EQ(run_command(exe + data + out + " --merge --no-merge", &output), 2) << output;
    EXPECT_NE(output.find("--no-merge"), std::string::npos) << output;
    EXPECT_FALSE(fs::exists(tmp.path() / "m.fam"));
}

// Two runs on one --out used to destroy each other's scratch views (the second truncated them, the
// first deleted them on exit). A run holding the checkpoint's lock (here: this test) makes a second
// one exit 2 before it touches any file, naming the checkpoint; once the lock is dropped it runs.
TEST(TrainCli, ASecondRunOnTheSameCheckpointIsRefusedWhileTheFirstHoldsIt) {
    faceadapt::test::TempDir tmp;
    const fs::path model = tmp.path() / "m.fam";
    const fs::path debris = tmp.path() / "m.fam.ckpt.tmp";  // what a run would clean up first
    std::ofstream(debris) << "the first run's half-written checkpoint";
    const int fd = ::open((model.string() + ".ckpt.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
    fs::create_directories(tmp.path() / "empty");
    const std::string cmd = faceadapt_exe().string() + " train --chips --data '" + (tmp.path() / "empty").string() +
                            "' --out '" + model.string() + "'";
    std::string output;
    EXPECT_EQ(run_command(cmd, &output), 2) << output;
    EXPECT_NE(output.find("another faceadapt train is running on checkpoint"), std::string::npos) << output;
    EXPECT_TRUE(fs::exists(debris)) << "the refused run touched the running one's files";
    ::close(fd);
    // The lock released, the same command runs (and stops at the empty folder, as it should).
    EXPECT_EQ(run_command(cmd, &output), 2) << output;
    EXPECT_NE(output.find("no images"), std::string::npos) << output;
    EXPECT_EQ(output.find("another faceadapt train"), std::string::npos) << output;
}

// Issue 13 class 11: one bad file among the training chips, a PNG bomb (15000x15000 in 220 KB),
// a PNG cut in half and junk named .png, used to abort the whole run (the bomb decoded in full
// first); now each is refused from its header or on decoding, skipped and counted.
TEST(TrainCli, UnreadableAndOversizedInputsAreSkippedAndCounted) {
    FACEADAPT_REQUIRE_PATH(reference_dir() / "chips");
    FACEADAPT_REQUIRE_PATH(manifest());
    faceadapt::test::TempDir tmp;
    const fs::path data = tmp.path() / "data";
    fs::create_directories(data / "cam");
    std::vector<fs::path> chips;
    for (const auto& e : fs::directory_iterator(reference_dir() / "chips")) chips.push_back(e.path());
    std::sort(chips.begin(), chips.end());
    for (const auto& c : chips) fs::copy_file(c, data / "cam" / c.filename());  // 24 (clustering needs > 20)
    faceadapt::test::write_zero_png(data / "cam/bomb.png", 15000, 15000);
    std::ifstream good(chips[0], std::ios::binary);
    const std::string bytes{std::istreambuf_iterator<char>(good), {}};
    std::ofstream(data / "cam/cut.png", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
    std::ofstream(data / "cam/junk.png", std::ios::binary) << std::string(500, 'j');
    const fs::path model = tmp.path() / "m.fam";
    std::string output;
    EXPECT_EQ(run_command(env_prefix() + faceadapt_exe().string() + " train --chips --data '" + data.string() +
                              "' --out '" + model.string() + "' --method naive --cycles 1 --iters 1",
                          &output),
              0)
        << output;
    EXPECT_NE(output.find("27 inputs, 27 sampled"), std::string::npos) << output;
    EXPECT_NE(output.find("24 used, 3 unreadable skipped"), std::string::npos) << output;
    EXPECT_NE(output.find("15000x15000"), std::string::npos) << output;  // named in the log, not decoded
    EXPECT_TRUE(fs::exists(model));
    // The scratch views are gone, the checkpoint stays.
    EXPECT_FALSE(fs::exists(model.string() + ".ckpt.view1.chips"));
    EXPECT_TRUE(fs::exists(model.string() + ".ckpt"));
}

// Issue 15: `faceadapt simulate-site` on a small generated labelled set (the 24 reference chips
// in one folder per identity) writes a snapshot whose tracks and frames `faceadapt train --data`
// uses; --no-constraints ignores them.
TEST(SimulateSiteCli, SnapshotOfTracksAndFramesIsTrainedWithItsConstraints) {
    FACEADAPT_REQUIRE_PATH(reference_dir() / "chips");
    FACEADAPT_REQUIRE_PATH(manifest());
    faceadapt::test::TempDir tmp;
    const fs::path labelled = tmp.path() / "labelled";
    int64_t chips = 0;
    for (const auto& e : fs::directory_iterator(reference_dir() / "chips")) {
        const auto name = e.path().filename().string();
        const auto id = name.substr(0, name.find('_'));
        fs::create_directories(labelled / id);
        fs::copy_file(e.path(), labelled / id / name);
        ++chips;
    }
    std::ofstream(labelled / "s1" / "notes.txt") << "not an image";
    const fs::path snap = tmp.path() / "snap";
    const std::string simulate = faceadapt_exe().string() + " simulate-site --chips --data '" + labelled.string() +
                                 "' --switch-rate 0.3 --seed 4 --out '";
    std::string output;
    ASSERT_EQ(run_command(simulate + snap.string() + "'", &output), 0) << output;
    EXPECT_NE(output.find("24 crops of 8 identities"), std::string::npos) << output;
    std::ifstream index(snap / "index.csv");
    std::string line;
    std::getline(index, line);
    EXPECT_EQ(line, "id,camera,unix_ms,track,score,file");
    int64_t rows = 0;
    std::map<std::string, int> per_frame;
    while (std::getline(index, line)) {
        ++rows;
        std::vector<std::string> f;
        std::stringstream ss(line);
        for (std::string x; std::getline(ss, x, ',');) f.push_back(x);
        ASSERT_EQ(f.size(), 6u) << line;
        EXPECT_TRUE(fs::exists(f[5])) << line;
        ++per_frame[f[1] + "@" + f[2]];
    }
    EXPECT_EQ(rows, chips);
    EXPECT_TRUE(std::any_of(per_frame.begin(), per_frame.end(), [](const auto& p) { return p.second >= 2; }));
    EXPECT_TRUE(fs::exists(snap / "truth.csv"));
    // The same seed gives the same snapshot.
    ASSERT_EQ(run_command(simulate + (tmp.path() / "snap2").string() + "'", &output), 0) << output;
    auto text = [](const fs::path& p) {
        std::ifstream in(p);
        return std::string{std::istreambuf_iterator<char>(in), {}};
    };
    EXPECT_EQ(text(snap / "index.csv"), text(tmp.path() / "snap2/index.csv"));
    // An operator's corrections beside the tracks and frames (a name, a "not", a merge).
    std::ofstream(snap / "constraints.csv") << "kind,a,b\nmust,1,Ann\ncannot,2,name:Ann\nsame,3,4\n";
    const std::string train = env_prefix() + faceadapt_exe().string() + " train --chips --data '" + snap.string() +
                              "' --out '" + (tmp.path() / "m.fam").string() + "' --method naive --cycles 1 --iters 1";
    const fs::path clustering = tmp.path() / "clustering.csv";
    ASSERT_EQ(run_command(train + " --clustering '" + clustering.string() + "'", &output), 0) << output;
    // --clustering: each crop's final pseudo-identity, by its store id (what faceadaptd keeps).
    std::set<int64_t> clustered;
    for (const auto& a : faceadapt::common::read_clustering(clustering)) clustered.insert(a.crop);
    EXPECT_EQ(static_cast<int64_t>(clustered.size()), chips) << output;
    EXPECT_EQ(*clustered.begin(), 1);
    EXPECT_NE(output.find("clustering: " + std::to_string(chips) + " crops written"), std::string::npos) << output;
    EXPECT_NE(output.find("site structure:"), std::string::npos) << output;
    EXPECT_NE(output.find("1 cannot-linked crop pairs"), std::string::npos) << output;
    EXPECT_NE(output.find("site constraints:"), std::string::npos) << output;
    EXPECT_NE(output.find(" after: "), std::string::npos) << output;
    EXPECT_NE(output.find("0 after"), std::string::npos) << output;
    ASSERT_EQ(run_command(train + " --no-constraints --checkpoint '" + (tmp.path() / "n.ckpt").string() + "'", &output), 0)
        << output;
    EXPECT_EQ(output.find("site constraints:"), std::string::npos) << output;
    // A malformed constraints file is bad input, named.
    std::ofstream(snap / "constraints.csv") << "kind,a,b\nperhaps,1,2\n";
    EXPECT_EQ(run_command(train, &output), 2) << output;
    EXPECT_NE(output.find("constraints.csv: line 2"), std::string::npos) << output;
}
