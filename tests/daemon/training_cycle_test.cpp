// TrainingCycle step by step, without cameras or a broker: a real crop store and model registry
// in a temp folder, the children as a small shell script that speaks the real protocol on fd 3
// (the real `faceadapt train|evaluate` is covered by daemon_e2e_test), the release recorded.
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <gtest/gtest.h>
#include <opencv2/core.hpp>

#include "faceadapt/common/durable_file.hpp"
#include "faceadapt/common/site_files.hpp"
#include "faceadapt/daemon/console_backend.hpp"
#include "faceadapt/daemon/metrics.hpp"
#include "faceadapt/daemon/model_registry.hpp"
#include "faceadapt/daemon/release.hpp"
#include "faceadapt/daemon/retention.hpp"
#include "faceadapt/daemon/training_cycle.hpp"
#include "faceadapt/ingest/tracker.hpp"
#include "faceadapt/publish/keys.hpp"
#include "faceadapt/publish/operating_point_json.hpp"
#include "faceadapt/publish/package.hpp"
#include "mosquitto_fixture.hpp"
#include "test_helpers.hpp"
#include "test_support.hpp"

using namespace faceadapt;
using namespace faceadapt::daemon;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// The children as the cycle sees them. Behaviour switches are files in the test folder.
const char* kFakeFaceadapt = R"SH(#!/bin/sh
dir="$(dirname "$0")"
cmd="$1"; shift
echo "$cmd $*" >> "$dir/calls.log"
out=''; data=''; holdout=''; ckpt=''; resume=no; clustering=''

while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift;;
    --data) data="$2"; shift;;
    --holdout) holdout="$2"; shift;;
    --checkpoint) ckpt="$2"; shift;;
    --clustering) clustering="$2"; shift;;
    --resume) resume=yes;;
  esac
  shift
done
if [ "$cmd" = train ]; then
  if [ -e "$dir/train-fails" ]; then
    echo 'train: fewer than 2 usable faces' >&2
    echo '{"type":"error","message":"fewer than 2 usable faces"}' >&3
    exit 2
  fi
  find "$data" -name '*.png' | wc -l > "$dir/train-chips"
  [ -e "$data/constraints.csv" ] && cp "$data/constraints.csv" "$dir/seen-constraints.csv"
  # The clustering as `faceadapt train --clustering` writes it: the snapshot's crop ids, here
  # cluster = id mod 3 (or a malformed file when asked).
  if [ -n "$clustering" ] && [ ! -e "$dir/no-clustering" ]; then
    if [ -e "$dir/bad-clustering" ]; then echo 'crop,cluster' > "$clustering"; echo '1,-7' >> "$clustering"
    else { echo 'crop,cluster'; tail -n +2 "$data/index.csv" | cut -d, -f1 | while read id; do echo "$id,$((id % 3))"; done; } > "$clustering"; fi
  fi
  if [ -e "$dir/train-waits" ]; then
    rm "$dir/train-waits"
    trap 'echo saved > "$ckpt"; exit 3' TERM
    echo training
    while true; do sleep 0.05; done
  fi
  echo 'cycle 1/1 iter 1/1'
  echo '{"type":"progress","phase":"train","cycle":1,"cycles":1,"iter":1,"iters":1,"loss":0.5}' >&3
  if [ -e "$dir/big-model" ]; then head -c 1000000 /dev/zero > "$out"; else echo model > "$out"; fi
  echo '{"type":"result","model":"'"$out"'","provenance":{"method":"mmt","resumed":"'"$resume"'"}}' >&3
  exit 0
fi
if [ "$cmd" = evaluate ]; then
  [ -e "$dir/evaluate-fails" ] && exit 1
  [ -n "$holdout" ] && cp "$holdout" "$dir/seen-holdout.json"
  cand=0.95
  [ -e "$dir/worse" ] && cand=0.5
  door=''
  [ -e "$dir/door.json" ] && door=',"door":'"$(cat "$dir/door.json")"
  fig() { echo '{"gallery":{"evaluated":true,"people":2,"images":4,"far":0.001,"tar":'$1',"rank1":'$1'},"site":{"evaluated":true,"crops":8,"groups":2,"consistency":'$1',"compactness":0.3}'"$door"'}'; }
  gallery='[{"name":"alice","embedding":['"$(seq -s, 1 128)"']},{"name":"bob","embedding":['"$(seq -s, 2 129)"']}]'
  echo '{"type":"evaluation","role":"current","model":"","figures":'"$(fig 0.9)"',"gallery":'"$gallery"'}' >&3
  echo '{"type":"evaluation","role":"candidate","model":"c","figures":'"$(fig $cand)"',"gallery":'"$gallery"'}' >&3
  exit 0
fi
exit 64
)SH";

struct Killed {};

class TrainingCycleTest : public ::testing::Test {
protected:
    void SetUp() override {
        state = dir.path() / "state";
        fs::create_directories(state);
        trainer = dir.path() / "faceadapt";
        std::ofstream(trainer) << kFakeFaceadapt;
        fs::permissions(trainer, fs::perms::owner_all);
        cfg.site.state_dir = state;
        cfg.gate.holdout_fraction = 0.5;
        store = std::make_unique<quality::CropStore>(state, cfg.store, quality::CropStore::Options{false});
        // Tracks 0..9 of one camera (ids 8 apart: each in a holdout group of its own, ids 0, 8,
        // ..., 72), 2 crops each, and 2 untracked crops.
        for (int track = -1; track < 10; ++track)
            for (int k = 0; k < 2; ++k) {
                quality::CropInput in;
                in.camera = "cam";
                in.track_id = track < 0 ? -1 : track * kHoldoutTrackGroup;
                in.chip = cv::Mat(150, 150, CV_8UC3, cv::Scalar(20 * (track + 1), 7 * k, 90));
                cv::randu(in.chip(cv::Rect(0, 0, 150, 20 + k)), 0, 255);
                in.score = 0.6 + 0.01 * k;
                ASSERT_EQ(store->insert(in).outcome, quality::InsertOutcome::stored);
            }
        registry = std::make_unique<ModelRegistry>(state / "models");
    }

    std::unique_ptr<TrainingCycle> make_cycle() {
        TrainingCycle::Hooks hooks;
        hooks.run_child = [this](const std::string&, const std::vector<std::string>& argv) {
            ChildSupervision sv;
            sv.stop = &stop;
            sv.stop_grace = 10s;
            sv.on_output = [this](const std::string& line) {
                if (line == "training") stop = true;  // a SIGTERM to the daemon while the child trains
            };
            return run_child_supervised(argv, sv);
        };
        hooks.release = [this](int version, const EmbeddedGallery& g) {
            released_gallery = g;
            if (on_release) on_release(version);
            releases.push_back(version);
        };
        hooks.saved = [this](CycleStep next) {
            saves.push_back(next);
            if (next == kill_at) throw Killed{};
        };
        return std::make_unique<TrainingCycle>(*store, *registry, metrics,
                                               TrainingCycle::Options{trainer, dir.path() / "site.toml"}, std::move(hooks));
    }

    std::vector<std::string> calls(const std::string& command) const {
        std::vector<std::string> out;
        std::ifstream in(dir.path() / "calls.log");
        for (std::string line; std::getline(in, line);)
            if (line.rfind(command + " ", 0) == 0) out.push_back(line);
        return out;
    }

    std::vector<json> events(const std::string& event) const {
        std::vector<json> out;
        for (const auto& h : registry->history())
            if (h.value("event", "") == event) out.push_back(h);
        return out;
    }

    void touch(const std::string& name) const { std::ofstream(dir.path() / name) << "x"; }

    test::TempDir dir;
    fs::path state, trainer;
    config::Config cfg;
    std::unique_ptr<quality::CropStore> store;
    std::unique_ptr<ModelRegistry> registry;
    MetricsRegistry metrics;
    std::atomic<bool> stop{false};
    std::vector<int> releases;
    EmbeddedGallery released_gallery;
    std::vector<CycleStep> saves;
    std::function<void(int)> on_release;  // what release_version would leave (a package)
    CycleStep kill_at = CycleStep::done;  // never saved as next: no kill
};

quality::CropRecord record(std::int64_t id, const std::string& camera, std::int64_t track) {
    quality::CropRecord r;
    r.id = id;
    r.camera = camera;
    r.track_id = track;
    return r;
}

}  // namespace

TEST(CycleSplit, HoldsOutWholeTracksByAStableHashAndTrainsOnTheRest) {
    // Groups 0..11 of 8 neighbouring track ids, two tracks (8g and 8g + 3) of 3 crops in each.
    std::vector<quality::CropRecord> rows;
    for (int k = 0; k < 3; ++k) rows.push_back(record(k, "cam", -1));
    for (int g = 0; g < 12; ++g)
        for (int track : {8 * g, 8 * g + 3})
            for (int k = 0; k < 3; ++k) rows.push_back(record(100 * (track + 2) + k, "cam", track));
    const CycleSplit half = split_records(rows, 0.5);
    EXPECT_EQ(half.training.size() + half.holdout.size(), rows.size());
    std::set<std::int64_t> held_tracks, trained_tracks;
    for (const auto& r : half.holdout) held_tracks.insert(r.track_id);
    for (const auto& r : half.training) trained_tracks.insert(r.track_id);
    for (auto t : held_tracks) EXPECT_FALSE(trained_tracks.count(t)) << "track " << t << " is split";
    EXPECT_TRUE(trained_tracks.count(-1)) << "untracked crops always train";
    EXPECT_FALSE(held_tracks.count(-1));
    // The rule: FNV-1a 64 of "cam/group<track / 8>" mod 1000 below 500 ("cam/group0" -> 178,
    // "cam/group1" -> 389, "cam/group2" -> 756, "cam/group9" -> 77, "cam/group10" -> 815).
    EXPECT_TRUE(held_out("cam", 0, 0.5));
    EXPECT_TRUE(held_out("cam", 7, 0.5)) << "the same group as track 0";
    EXPECT_TRUE(held_out("cam", 8, 0.5));
    EXPECT_FALSE(held_out("cam", 8, 0.38));
    EXPECT_FALSE(held_out("cam", 16, 0.5));
    EXPECT_TRUE(held_out("cam", 72, 0.08));
    EXPECT_FALSE(held_out("cam", 80, 0.5));
    EXPECT_FALSE(held_out("cam", -1, 1.0));
    // Whole groups: both tracks of groups 0, 1, 4, 7 and 9 ("cam/group4" -> 334, "cam/group7" -> 123).
    EXPECT_EQ(held_tracks, (std::set<std::int64_t>{0, 3, 8, 11, 32, 35, 56, 59, 72, 75}));
    // Input order is kept within each set; the same input splits the same way.
    for (std::size_t i = 1; i < half.training.size(); ++i) EXPECT_LT(half.training[i - 1].id, half.training[i].id);
    const CycleSplit again = split_records(rows, 0.5);
    ASSERT_EQ(again.holdout.size(), half.holdout.size());
    for (std::size_t i = 0; i < again.holdout.size(); ++i) EXPECT_EQ(again.holdout[i].id, half.holdout[i].id);
    EXPECT_TRUE(split_records(rows, 0.0).holdout.empty());
    EXPECT_EQ(split_records(rows, 1.0).training.size(), 3u);  // only the untracked ones
    EXPECT_EQ(track_label(record(1, "door_cam", 42)), "door_cam/42");
}

// Issue 18: a real IouTracker and crop store, both restarted three times (as a daemon or camera
// restart does), the tracker's ids offset by the store's run base as faceadaptd does: the two
// people of each run get track ids no earlier run used, none of their crops is refused as
// track_full, and no held-out (or training) track of split_records spans two runs.
TEST(CycleSplit, TracksOfRestartedTrackersNeverSpanTwoRuns) {
    test::TempDir dir;
    config::StoreConfig limits;
    limits.best_per_track = 4;
    std::map<std::int64_t, int> run_of_track;  // stored track id -> the run (0..3) that stored it
    const auto t0 = std::chrono::system_clock::now();
    for (int run = 0; run < 4; ++run) {
        quality::CropStore store(dir.path(), limits, quality::CropStore::Options{false});
        const std::int64_t base = store.begin_track_run("cam");
        ingest::IouTracker tracker(0.3, 2s);
        for (int frame = 0; frame < 6; ++frame) {  // two people walking, the same path every run
            const auto ts = t0 + std::chrono::milliseconds(200 * frame + 10'000 * run);
            const std::vector<cv::Rect> boxes{{20 + 5 * frame, 40, 80, 80}, {300 - 5 * frame, 40, 80, 80}};
            const auto ids = tracker.update(boxes, ts);
            for (std::size_t b = 0; b < ids.size(); ++b) {
                EXPECT_LE(ids[b], 2) << "the tracker restarts its numbering; the base keeps it unique";
                quality::CropInput in;
                in.camera = "cam";
                in.timestamp = ts;
                in.track_id = base + ids[b];
                in.chip = cv::Mat(24, 24, CV_8UC3, cv::Scalar(run, frame, int(b)));
                in.score = 0.9 - 0.01 * frame;  // later frames score worse: a full track would refuse
                const auto r = store.insert(in);
                if (frame < limits.best_per_track) {
                    EXPECT_EQ(r.outcome, quality::InsertOutcome::stored) << "run " << run << " frame " << frame;
                }
                auto [it, fresh] = run_of_track.emplace(in.track_id, run);
                EXPECT_EQ(it->second, run) << "track " << in.track_id << " reused by a later run";
            }
        }
        EXPECT_EQ(run_of_track.size(), static_cast<std::size_t>(2 * (run + 1)));
    }
    quality::CropStore store(dir.path(), limits, quality::CropStore::Options{false});
    const auto records = store.snapshot();
    EXPECT_EQ(records.size(), 4u * 2u * static_cast<std::size_t>(limits.best_per_track));
    const CycleSplit split = split_records(records, 0.5);
    std::map<std::string, std::set<int>> runs_of_label;
    for (const auto* part : {&split.holdout, &split.training})
        for (const auto& r : *part) runs_of_label[track_label(r)].insert(run_of_track.at(r.track_id));
    EXPECT_EQ(runs_of_label.size(), 8u);
    for (const auto& [label, runs] : runs_of_label) EXPECT_EQ(runs.size(), 1u) << label << " spans runs";
}

TEST(CycleState, RoundTripsThroughJson) {
    CycleState s;
    s.name = "cycle-20261127T010203Z";
    s.step = CycleStep::release;
    s.started = "2026-11-27T01:02:03Z";
    s.parent_version = 3;
    s.version = 4;
    s.prepared = PreparedData{"/s/data", "/s/holdout.json", 10, 4, 99};
    s.training = TrainOutput{"/s/candidate.model", {{"seed", 7}}, 12.5};
    s.evaluation = Evaluation{};
    s.evaluation->candidate.site = {8, 2, true, 0.75, 0.25};
    s.evaluation->gallery.names = {"alice"};
    s.evaluation->gallery.embeddings.push_back({});
    s.evaluation->gallery.embeddings[0][3] = 0.5f;
    s.decision = GateDecision{true, {"site consistency: ok"}, {}};
    const CycleState back = cycle_state_from_json(json::parse(to_json(s).dump()));
    EXPECT_EQ(to_json(back), to_json(s));
    EXPECT_EQ(back.step, CycleStep::release);
    EXPECT_EQ(back.prepared->max_crop_id, 99);
    EXPECT_EQ(back.evaluation->gallery.embeddings[0][3], 0.5f);
    json broken = to_json(s);
    broken["step"] = "celebrate";
    EXPECT_THROW(cycle_state_from_json(broken), std::runtime_error);
    broken = to_json(s);
    broken.erase("name");
    EXPECT_THROW(cycle_state_from_json(broken), std::runtime_error);
    broken = to_json(s);
    broken.erase("evaluation");  // a release step needs the gallery the evaluation embedded
    EXPECT_THROW(cycle_state_from_json(broken), std::runtime_error);
    // The cycle.json of the release before: that cycle again from its prepare step.
    const CycleState old = cycle_state_from_json(
        json{{"name", "cycle-20261101T000000Z"}, {"status", "training"}, {"max_crop_id", 40}, {"started", "x"}});
    EXPECT_EQ(old.name, "cycle-20261101T000000Z");
    EXPECT_EQ(old.step, CycleStep::prepare);
    EXPECT_FALSE(old.prepared);
}

TEST_F(TrainingCycleTest, ACycleRunsEachStepOncePromotesAndReleasesTheCandidate) {
    auto cycle = make_cycle();
    const TrainingCycle::Report r = cycle->run(cfg, stop);
    EXPECT_EQ(r.outcome, TrainingCycle::Outcome::ended);
    EXPECT_EQ(r.state.step, CycleStep::done);
    EXPECT_EQ(saves, (std::vector<CycleStep>{CycleStep::train, CycleStep::evaluate, CycleStep::gate, CycleStep::release}));
    ASSERT_EQ(calls("train").size(), 1u);
    ASSERT_EQ(calls("evaluate").size(), 1u);
    EXPECT_NE(calls("train")[0].find("--protocol-fd 3"), std::string::npos);
    EXPECT_EQ(calls("train")[0].find("--resume"), std::string::npos);
    EXPECT_EQ(calls("train")[0].find("--init"), std::string::npos) << "no version yet: from the source model";
    EXPECT_NE(calls("evaluate")[0].find("--current source"), std::string::npos);
    // prepare: the held-out tracks (0, 1, 4, 7, 9 at 0.5: ids 0, 8, 32, 56, 72) for the
    // evaluation, the rest to train.
    std::ifstream chips(dir.path() / "train-chips");
    int trained = 0;
    chips >> trained;
    EXPECT_EQ(trained, 12);  // tracks 2, 3, 5, 6, 8 and the untracked, 2 crops each
    const json holdout = json::parse(std::ifstream(dir.path() / "seen-holdout.json"));
    ASSERT_EQ(holdout["crops"].size(), 10u);
    std::set<std::string> labels;
    for (const auto& c : holdout["crops"]) labels.insert(c["track"].get<std::string>());
    EXPECT_EQ(labels, (std::set<std::string>{"cam/0", "cam/8", "cam/32", "cam/56", "cam/72"}));
    EXPECT_EQ(r.state.prepared->max_crop_id, 22);
    // gate -> registry -> release, with the candidate's embedded gallery.
    EXPECT_EQ(registry->current_version(), 1);
    EXPECT_EQ(registry->get(1).meta["training"]["method"], "mmt");
    EXPECT_EQ(registry->get(1).meta["gate"]["candidate"]["gallery"]["tar"], 0.95);
    EXPECT_EQ(releases, std::vector<int>{1});
    EXPECT_EQ(released_gallery.names, (std::vector<std::string>{"alice", "bob"}));
    EXPECT_EQ(released_gallery.embeddings[1][127], 129.0f);
    ASSERT_EQ(events("gate").size(), 1u);
    EXPECT_TRUE(events("gate")[0]["promote"].get<bool>());
    EXPECT_EQ(events("gate")[0]["version"], 1);
    EXPECT_EQ(events("cycle")[0]["result"], "ok");
    EXPECT_EQ(metrics.value("faceadapt_gate_decisions_total", {{"decision", "promoted"}}), 1.0);
    EXPECT_EQ(metrics.value("faceadapt_training_cycles_total", {{"result", "ok"}}), 1.0);
    EXPECT_EQ(metrics.value("faceadapt_model_version"), 1.0);
    // An ended cycle leaves no scratch data and no state.
    const fs::path cand = registry->candidate_dir(r.state.name);
    EXPECT_FALSE(fs::exists(cand / "data"));
    EXPECT_FALSE(fs::exists(cand / "holdout"));
    EXPECT_FALSE(fs::exists(cand / "holdout.json"));
    EXPECT_FALSE(fs::exists(cycle->state_file()));
    EXPECT_FALSE(cycle->saved_state());

    // The next cycle trains from version 1 and compares with it.
    saves.clear();
    EXPECT_EQ(make_cycle()->run(cfg, stop).outcome, TrainingCycle::Outcome::ended);
    ASSERT_EQ(calls("train").size(), 2u);
    EXPECT_NE(calls("train")[1].find("--init " + registry->get(1).model_file.string()), std::string::npos);
    EXPECT_NE(calls("evaluate")[1].find("--current " + registry->get(1).model_file.string()), std::string::npos);
    EXPECT_EQ(registry->current_version(), 2);
}

// The training step keeps the child's clustering (crop -> final pseudo-identity) as the latest
// one, in <models>/clustering.csv, whatever the gate then decides; a malformed one is not kept.
TEST_F(TrainingCycleTest, TheTrainingStepKeepsTheChildsClusteringAsTheLatest) {
    touch("worse");  // the gate refuses: the clustering is kept all the same
    const TrainingCycle::Report r = make_cycle()->run(cfg, stop);
    EXPECT_EQ(registry->current_version(), 0);
    ASSERT_EQ(calls("train").size(), 1u);
    const fs::path candidate_clustering = registry->candidate_dir(r.state.name) / "clustering.csv";
    EXPECT_NE(calls("train")[0].find("--clustering " + candidate_clustering.string()), std::string::npos);
    const fs::path latest = latest_clustering_file(registry->dir());
    ASSERT_TRUE(fs::exists(latest));
    const auto rows = common::read_clustering(latest);
    ASSERT_EQ(rows.size(), 12u) << "the crops the child trained on";
    for (const auto& a : rows) EXPECT_EQ(a.cluster, a.crop % 3);
    ASSERT_TRUE(r.state.training);
    EXPECT_EQ(r.state.training->clustered, 12);
    EXPECT_EQ(cycle_state_from_json(to_json(r.state)).training->clustered, 12) << "saved with the state";
    // A malformed clustering leaves the latest one as it was; none at all, too.
    touch("bad-clustering");
    const TrainingCycle::Report bad = make_cycle()->run(cfg, stop);
    EXPECT_EQ(bad.state.training->clustered, -1);
    EXPECT_EQ(common::read_clustering(latest), rows);
    fs::remove(dir.path() / "bad-clustering");
    touch("no-clustering");
    EXPECT_EQ(make_cycle()->run(cfg, stop).state.training->clustered, -1);
    EXPECT_EQ(common::read_clustering(latest), rows);
}

// The operator's corrections, as the console writes them (name, not this person, merge), are
// copied into the cycle's snapshot folder, where the trainer reads them (data/constraints.csv).
TEST_F(TrainingCycleTest, ConsoleCorrectionsAreCopiedIntoTheSnapshotTheTrainerReads) {
    SiteConsoleHooks hooks;
    hooks.config = [this] { return cfg; };
    SiteConsole console(state, *store, metrics, hooks);
    const auto crops = store->snapshot();
    ASSERT_GE(crops.size(), 4u);
    ASSERT_TRUE(console.name_crops("Ada", {crops[0].id}, "op")[0].ok);
    EXPECT_EQ(console.not_person("Ada", {crops[1].id}), 1);
    EXPECT_EQ(console.merge_groups({crops[2].id, crops[3].id}), 1);
    const auto written = common::read_constraints(SiteConsole::constraints_file(state));
    ASSERT_EQ(written.rows(), 3);
    make_cycle()->run(cfg, stop);
    ASSERT_TRUE(fs::exists(dir.path() / "seen-constraints.csv")) << "the trainer found no constraints.csv in --data";
    EXPECT_EQ(common::read_constraints(dir.path() / "seen-constraints.csv"), written);
    EXPECT_EQ(common::read_file(dir.path() / "seen-constraints.csv"),
              common::read_file(SiteConsole::constraints_file(state)));
}

TEST_F(TrainingCycleTest, AKillAfterAnyStepResumesAtTheNextWithoutRepeatingFinishedOnes) {
    for (CycleStep at : {CycleStep::train, CycleStep::evaluate, CycleStep::gate, CycleStep::release}) {
        SCOPED_TRACE(std::string(to_string(at)));
        const std::size_t trains = calls("train").size(), evaluations = calls("evaluate").size();
        const std::size_t versions = registry->list().size(), gates = events("gate").size();
        releases.clear();
        kill_at = at;
        EXPECT_THROW(make_cycle()->run(cfg, stop), Killed);
        auto cycle = make_cycle();
        const auto saved = cycle->saved_state();
        ASSERT_TRUE(saved);
        EXPECT_EQ(saved->step, at);
        kill_at = CycleStep::done;
        const TrainingCycle::Report r = cycle->run(cfg, stop);
        EXPECT_EQ(r.outcome, TrainingCycle::Outcome::ended);
        EXPECT_EQ(r.state.name, saved->name) << "the same cycle resumed";
        EXPECT_EQ(calls("train").size(), trains + 1) << "trained once";
        EXPECT_EQ(calls("evaluate").size(), evaluations + 1) << "evaluated once";
        EXPECT_EQ(registry->list().size(), versions + 1) << "registered once";
        EXPECT_EQ(events("gate").size(), gates + 1);
        EXPECT_EQ(releases, std::vector<int>{registry->current_version()}) << "released once";
        EXPECT_FALSE(cycle->saved_state());
    }
}

TEST_F(TrainingCycleTest, AStopDuringTrainingKeepsTheStateAndTheNextRunResumesFromTheCheckpoint) {
    touch("train-waits");
    const TrainingCycle::Report stopped = make_cycle()->run(cfg, stop);
    EXPECT_EQ(stopped.outcome, TrainingCycle::Outcome::stopped);
    EXPECT_EQ(stopped.state.step, CycleStep::train);
    EXPECT_TRUE(fs::exists(registry->candidate_dir(stopped.state.name) / "checkpoint")) << "the child checkpointed";
    EXPECT_TRUE(events("cycle").empty()) << "a stop is not a result";
    stop = false;
    const TrainingCycle::Report r = make_cycle()->run(cfg, stop);
    EXPECT_EQ(r.outcome, TrainingCycle::Outcome::ended);
    ASSERT_EQ(calls("train").size(), 2u);
    EXPECT_NE(calls("train")[1].find("--resume"), std::string::npos);
    EXPECT_EQ(registry->get(1).meta["training"]["resumed"], "yes");
    EXPECT_EQ(releases, std::vector<int>{1});
}

// The evaluation child gets the site config with [gate] strangers_dir, so that its [enroll]
// checks the strangers' photos (tools/people_folder.hpp).
TEST_F(TrainingCycleTest, TheEvaluationChildChecksTheStrangersWithTheSiteConfig) {
    cfg.gate.strangers_dir = dir.path() / "strangers";
    fs::create_directories(cfg.gate.strangers_dir);
    EXPECT_EQ(make_cycle()->run(cfg, stop).outcome, TrainingCycle::Outcome::ended);
    ASSERT_FALSE(calls("evaluate").empty());
    const std::string e = calls("evaluate")[0];
    EXPECT_NE(e.find("--strangers " + cfg.gate.strangers_dir.string()), std::string::npos) << e;
    EXPECT_NE(e.find("--config " + fs::absolute(dir.path() / "site.toml").string()), std::string::npos) << e;
}

TEST_F(TrainingCycleTest, AFailedTrainingChildEndsTheCycleWithItsReasonAndNothingRegistered) {
    touch("train-fails");
    const TrainingCycle::Report r = make_cycle()->run(cfg, stop);
    EXPECT_EQ(r.outcome, TrainingCycle::Outcome::ended);
    EXPECT_TRUE(calls("evaluate").empty());
    const auto failed = events("cycle");
    ASSERT_EQ(failed.size(), 1u);
    EXPECT_EQ(failed[0]["result"], "failed");
    const std::string error = failed[0]["error"];
    EXPECT_NE(error.find("exit 2"), std::string::npos) << error;
    EXPECT_NE(error.find("fewer than 2 usable faces"), std::string::npos) << error;
    EXPECT_EQ(failed[0]["output"][0], "train: fewer than 2 usable faces");
    EXPECT_EQ(metrics.value("faceadapt_training_cycles_total", {{"result", "failed"}}), 1.0);
    EXPECT_TRUE(registry->list().empty());
    EXPECT_TRUE(releases.empty());
    EXPECT_FALSE(fs::exists(make_cycle()->state_file()));
}

TEST_F(TrainingCycleTest, AFailedEvaluationChildIsAGateErrorAndNothingIsPromoted) {
    touch("evaluate-fails");
    EXPECT_EQ(make_cycle()->run(cfg, stop).outcome, TrainingCycle::Outcome::ended);
    const auto gate = events("gate");
    ASSERT_EQ(gate.size(), 1u);
    EXPECT_FALSE(gate[0]["promote"].get<bool>());
    EXPECT_NE(gate[0]["error"].get<std::string>().find("exit 1"), std::string::npos) << gate[0].dump();
    EXPECT_EQ(metrics.value("faceadapt_gate_decisions_total", {{"decision", "error"}}), 1.0);
    EXPECT_TRUE(registry->list().empty());
    EXPECT_TRUE(releases.empty());
}

TEST_F(TrainingCycleTest, AGateRefusalRecordsWhyAndNeitherRegistersNorReleases) {
    touch("worse");
    const TrainingCycle::Report r = make_cycle()->run(cfg, stop);
    EXPECT_EQ(r.outcome, TrainingCycle::Outcome::ended);
    ASSERT_TRUE(r.state.decision);
    EXPECT_FALSE(r.state.decision->promote);
    const auto gate = events("gate");
    ASSERT_EQ(gate.size(), 1u);
    EXPECT_FALSE(gate[0]["promote"].get<bool>());
    EXPECT_FALSE(gate[0].contains("version"));
    EXPECT_EQ(gate[0]["candidate"]["gallery"]["tar"], 0.5);
    EXPECT_EQ(gate[0]["current"]["gallery"]["tar"], 0.9);
    ASSERT_FALSE(gate[0]["reasons"].empty());
    EXPECT_NE(gate[0]["reasons"][0].get<std::string>().find("dropped from 0.9000 to 0.5000"), std::string::npos);
    EXPECT_EQ(metrics.value("faceadapt_gate_decisions_total", {{"decision", "refused"}}), 1.0);
    EXPECT_EQ(metrics.value("faceadapt_gate_figure", {{"model", "candidate"}, {"figure", "site_consistency"}}), 0.5);
    EXPECT_TRUE(registry->list().empty());
    EXPECT_EQ(registry->current_version(), 0);
    EXPECT_TRUE(releases.empty());
    EXPECT_FALSE(fs::exists(make_cycle()->state_file()));
}

TEST_F(TrainingCycleTest, TheGalleryForARepublishComesFromTheEvaluationChild) {
    auto cycle = make_cycle();
    const EmbeddedGallery g = cycle->embed_gallery(cfg, state / "some.model");
    EXPECT_EQ(g.names, (std::vector<std::string>{"alice", "bob"}));
    ASSERT_EQ(calls("evaluate").size(), 1u);
    EXPECT_NE(calls("evaluate")[0].find("--candidate " + (state / "some.model").string()), std::string::npos);
    EXPECT_EQ(calls("evaluate")[0].find("--holdout"), std::string::npos);
    touch("evaluate-fails");
    EXPECT_THROW(cycle->embed_gallery(cfg, state / "some.model"), std::runtime_error);
}

// Issue 18, item 5: ten tiny cycles (1 MB models), every other one refused, each release leaving
// a package as release_version does, retention applied after each as faceadaptd does: what stays
// is the promoted versions, the newest packages and the small bookkeeping files, nothing else.
TEST_F(TrainingCycleTest, AfterTenCyclesTheStateHoldsOnlyWhatRetentionKeeps) {
    touch("big-model");
    const RetentionPolicy policy{3, 10};
    const fs::path models = registry->dir();
    for (int i = 0; i < 10; ++i) {
        const bool refuse = i % 2 == 1;
        if (refuse) touch("worse");
        else fs::remove(dir.path() / "worse");
        on_release = [&](int version) {
            fs::create_directories(models / "packages");
            std::ofstream(models / "packages" / (std::to_string(version) + ".fapkg")) << std::string(1000, 'p');
        };
        auto cycle = make_cycle();
        const auto r = cycle->run(cfg, stop);
        ASSERT_EQ(r.outcome, TrainingCycle::Outcome::ended);
        // Before retention the cycle's candidate model is there (a refused one too).
        ASSERT_TRUE(fs::exists(models / "candidates" / r.state.name / "candidate.model")) << r.state.name;
        apply_retention(*registry, policy, "");
    }
    EXPECT_EQ(registry->current_version(), 5);
    EXPECT_EQ(registry->list().size(), 5u) << "every promoted version stays (rollback to any)";
    EXPECT_EQ(events("gate").size(), 10u);
    // candidates/: nothing of the ended cycles (refused ones' models included).
    std::size_t left = 0;
    if (fs::exists(models / "candidates"))
        for (const auto& e : fs::directory_iterator(models / "candidates")) { ++left; ADD_FAILURE() << e.path(); }
    EXPECT_EQ(left, 0u);
    // packages/: the newest 3.
    std::set<std::string> packages;
    for (const auto& e : fs::directory_iterator(models / "packages")) packages.insert(e.path().filename().string());
    EXPECT_EQ(packages, (std::set<std::string>{"3.fapkg", "4.fapkg", "5.fapkg"}));
    // The whole models/ folder: 5 models of 1 MB, 3 packages of 1 kB, and bookkeeping under 100 kB.
    const std::uint64_t bytes = folder_bytes(models);
    EXPECT_GE(bytes, 5'000'000u + 3'000u);
    EXPECT_LT(bytes, 5'000'000u + 3'000u + 100'000u) << bytes;
    // A stray temp file and a package of a version not current are removed; the current one's stays.
    std::ofstream(models / "current.tmp") << "x";
    std::ofstream(models / "packages" / "1.fapkg") << "old";
    const RetentionReport again = apply_retention(*registry, RetentionPolicy{1}, "");
    EXPECT_EQ(again.temp_files_removed, 1);
    EXPECT_EQ(again.packages_removed, 3);  // 1, 3, 4
    EXPECT_TRUE(fs::exists(models / "packages" / "5.fapkg"));
    EXPECT_FALSE(fs::exists(models / "current.tmp"));

    // Versions: the newest 2 (+ current 5 and previous 4, here the same) once a third is too many;
    // a half-removed folder of a crash is removed too; the version numbers are never reused.
    fs::create_directories(models / "versions" / ".1.removing.tmp");
    std::ofstream(models / "versions" / ".1.removing.tmp" / "model") << "half";
    const RetentionReport versions = apply_retention(*registry, RetentionPolicy{5, 2}, "");
    EXPECT_EQ(versions.versions_removed, 3);
    std::vector<int> kept;
    for (const auto& v : registry->list()) kept.push_back(v.version);
    EXPECT_EQ(kept, (std::vector<int>{4, 5}));
    EXPECT_FALSE(fs::exists(models / "versions" / ".1.removing.tmp"));
    EXPECT_EQ(apply_retention(*registry, RetentionPolicy{5, 2}, "cycle-running").versions_removed, 0);
    EXPECT_EQ(registry->add(registry->get(5).model_file, "rollback of 5").version, 6);
    EXPECT_EQ(registry->get(4).model_file.filename(), "model");
}

// Issue 12: two tracks seen in one frame of one camera are two people; the same frame time on
// another camera, or another time, makes no pair.
TEST(CycleSplit, SameFramePairsComeFromTracksOfOneFrameOfOneCamera) {
    std::vector<quality::CropRecord> rs;
    auto at = [&](std::int64_t id, const std::string& cam, std::int64_t track, std::int64_t ms) {
        auto r = record(id, cam, track);
        r.timestamp = std::chrono::system_clock::time_point(std::chrono::milliseconds(ms));
        rs.push_back(r);
    };
    at(1, "a", 1, 1000);
    at(2, "a", 2, 1000);
    at(3, "a", 3, 2000);
    at(4, "b", 4, 1000);
    at(5, "a", 1, 1040);  // track 1 again, another frame: one more crop of it
    at(6, "a", -1, 1000); // untracked: never paired
    at(7, "a", 2, 1000);  // track 2 twice in one frame (a store quirk): still one pair
    const FramePairs f = same_frame_pairs(rs, 8, 100);
    ASSERT_EQ(f.pairs.size(), 1u);
    EXPECT_EQ(f.pairs[0], (std::pair<std::string, std::string>{"a/1", "a/2"}));
    std::set<std::int64_t> ids;
    for (const auto& r : f.crops) ids.insert(r.id);
    EXPECT_EQ(ids, (std::set<std::int64_t>{1, 2, 5, 7}));
    EXPECT_EQ(same_frame_pairs(rs, 1, 100).crops.size(), 2u);  // one crop per track
}

// Issue 12, held-out calibration: an adapted candidate is calibrated on same-frame pairs of
// crops it did not train on (both tracks held out). 3 cameras x 400 scenes of two people seen
// together, their tracks numbered one after the other (as a tracker numbers tracks that start
// together): holding out whole groups of neighbouring ids keeps a pair for about the holdout
// fraction of the scenes; a hash per track would keep it for its square (0.01 at 0.1).
TEST(CycleSplit, SameFramePairsSurviveTheHoldoutWhenNeighbouringTracksShareAFrame) {
    std::vector<quality::CropRecord> rs;
    std::int64_t id = 0;
    for (const std::string cam : {"a", "b", "c"})
        for (int scene = 0; scene < 400; ++scene)
            for (int t : {0, 1})
                for (int k = 0; k < 2; ++k) {
                    auto r = record(++id, cam, 2 * scene + t);
                    r.timestamp = std::chrono::system_clock::time_point(std::chrono::milliseconds(1'000'000 + 1000 * scene + 40 * k));
                    rs.push_back(r);
                }
    const std::size_t all = same_frame_pairs(rs, 8, rs.size()).pairs.size();
    ASSERT_EQ(all, 1200u);
    const CycleSplit split = split_records(rs, 0.1);
    const FramePairs held = same_frame_pairs(split.holdout, 8, rs.size());
    const double pair_share = double(held.pairs.size()) / double(all);
    const double crop_share = double(split.holdout.size()) / double(rs.size());
    EXPECT_GT(crop_share, 0.05);
    EXPECT_LT(crop_share, 0.15);
    // Tracks 2s and 2s + 1 are always in one group of 8: every held-out track keeps its pair.
    EXPECT_DOUBLE_EQ(pair_share, crop_share);
    std::set<std::string> held_labels;
    for (const auto& r : split.holdout) held_labels.insert(track_label(r));
    for (const auto& [a, b] : held.pairs) EXPECT_TRUE(held_labels.count(a) && held_labels.count(b)) << a << " " << b;
}

// The cycle's prepare hands the evaluation child the same-frame pairs of held-out tracks only:
// a pair of two training tracks, or of a training and a held-out track, calibrates neither
// model (the candidate trained on one of its crops).
TEST_F(TrainingCycleTest, PrepareCalibratesOnSameFramePairsOfHeldOutTracksOnly) {
    // One frame each (hours ago, so that no crop of the fixture shares its time): two held-out
    // tracks (groups 12 and 13: "cam/group12" -> 237, "cam/group13" -> 26), two training tracks
    // of the fixture (ids 16, 24: groups 2 and 3, 756 and 967), and a held-out with a training one.
    const auto t0 = std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
    auto add = [&](std::int64_t track, std::int64_t ms) {
        quality::CropInput in;
        in.camera = "cam";
        in.track_id = track;
        in.timestamp = t0 - std::chrono::milliseconds(ms);
        in.chip = cv::Mat(150, 150, CV_8UC3, cv::Scalar(30, 60, static_cast<double>(track)));
        cv::randu(in.chip(cv::Rect(0, 0, 150, 30)), 0, 255);
        in.score = 0.7;
        ASSERT_EQ(store->insert(in).outcome, quality::InsertOutcome::stored);
    };
    ASSERT_TRUE(held_out("cam", 96, 0.5) && held_out("cam", 104, 0.5));
    ASSERT_FALSE(held_out("cam", 16, 0.5) || held_out("cam", 24, 0.5));
    add(96, 3'600'000), add(104, 3'600'000);
    add(16, 7'200'000), add(24, 7'200'000);
    add(96, 10'800'000), add(16, 10'800'000);
    make_cycle()->run(cfg, stop);
    const json holdout = json::parse(std::ifstream(dir.path() / "seen-holdout.json"));
    std::set<std::string> held_labels;
    for (const auto& c : holdout["crops"]) held_labels.insert(c["track"].get<std::string>());
    EXPECT_TRUE(held_labels.count("cam/96") && held_labels.count("cam/104"));
    std::set<std::pair<std::string, std::string>> pairs;
    for (const auto& p : holdout["frame_pairs"]) {
        pairs.emplace(p[0].get<std::string>(), p[1].get<std::string>());
        EXPECT_TRUE(held_labels.count(p[0].get<std::string>()) && held_labels.count(p[1].get<std::string>())) << p.dump();
    }
    EXPECT_TRUE(pairs.count({"cam/104", "cam/96"}) || pairs.count({"cam/96", "cam/104"}));
    for (const auto& c : holdout["frame_crops"]) EXPECT_TRUE(held_labels.count(c["track"].get<std::string>())) << c.dump();
    for (const auto& [a, b] : pairs) EXPECT_TRUE(a != "cam/16" && b != "cam/16" && a != "cam/24" && b != "cam/24");
}

// Issue 12 acceptance: the package of an adapted model carries the candidate's calibrated
// operating point, not 0.6, through the real release_version (a real mosquitto, a signed
// package file read back).
TEST_F(TrainingCycleTest, ThePackageOfAnAdaptedModelCarriesItsCalibratedThresholdNotTheLegacyOne) {
    std::vector<double> impostor;
    for (int i = 1; i <= 30000; ++i) impostor.push_back(0.8 + i / 30000.0);
    faceadapt::calib::CalibrationRequest r;
    r.target_far = 1e-2;
    r.comparisons = 2;
    DoorFigures door;
    door.point = faceadapt::calib::calibrate(impostor, {0.2, 0.5, 0.9}, r);
    ASSERT_TRUE(door.point.calibrated);
    door.sources.same_frame_impostor = 30000;
    std::ofstream(dir.path() / "door.json") << to_json(door).dump();

    faceadapt::test::Mosquitto broker;
    cfg.mqtt = broker.mqtt_config();
    cfg.site.id = "lab";
    cfg.quality.threshold = 0.35;  // a site whose crop store keeps more: its doors must too
    cfg.quality.max_deviation_deg = 30;
    faceadapt::publish::SigningKey::generate().save(state / "keys");
    const auto exporter = [](const fs::path&, int, const std::string&, const fs::path& out) {
        common::write_file_atomic(out, faceadapt::test::fake_onnx_model_file(2048, 3));
    };
    on_release = [&](int version) {
        const ReleaseReport rep = release_version(cfg, *registry, version, released_gallery, exporter, nullptr, {},
                                                  std::chrono::milliseconds(10));
        EXPECT_TRUE(rep.published) << rep.error;
    };
    const TrainingCycle::Report rr = make_cycle()->run(cfg, stop);
    ASSERT_EQ(releases, std::vector<int>{1}) << json(events("gate")).dump(1);
    // The site's [quality] rides along: the door asks to retry the faces this site's store drops.
    const auto released = faceadapt::publish::Package::read(registry->dir() / "packages" / "1.fapkg");
    ASSERT_TRUE(released.manifest.quality);
    EXPECT_EQ(*released.manifest.quality, cfg.quality);
    ASSERT_TRUE(released_gallery.operating_point);
    EXPECT_EQ(released_gallery.operating_point->threshold, door.point.threshold);
    EXPECT_NE(calls("evaluate")[0].find("--door-far 0.001"), std::string::npos) << calls("evaluate")[0];
    const auto pkg = faceadapt::publish::Package::read(registry->dir() / "packages" / "1.fapkg");
    EXPECT_NE(pkg.manifest.match_threshold, 0.6);
    EXPECT_EQ(pkg.manifest.match_threshold, door.point.threshold);
    ASSERT_TRUE(pkg.manifest.operating_point);
    EXPECT_TRUE(pkg.manifest.calibrated());
    EXPECT_EQ(pkg.manifest.operating_point->impostor_pairs, 30000u);
    // The gate's record has the door figures; /metrics the threshold.
    const auto gate = events("gate");
    ASSERT_EQ(gate.size(), 1u);
    EXPECT_EQ(gate[0]["candidate"]["door"]["threshold"].get<double>(), door.point.threshold);
    EXPECT_EQ(metrics.value("faceadapt_gate_figure", {{"model", "candidate"}, {"figure", "threshold"}}), door.point.threshold);
    EXPECT_EQ(events("publish").at(0)["threshold"].get<double>(), door.point.threshold);
    EXPECT_EQ(events("publish").at(0)["calibrated"], true);
    (void)rr;
}
