#include "faceadapt/daemon/training_cycle.hpp"

#include <cmath>
#include <map>
#include <set>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "faceadapt/common/durable_file.hpp"
#include "faceadapt/common/site_files.hpp"
#include "faceadapt/common/time.hpp"
#include "faceadapt/daemon/metrics.hpp"
#include "faceadapt/daemon/model_registry.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace faceadapt::daemon {
namespace {

constexpr std::pair<CycleStep, const char*> kStepNames[] = {
    {CycleStep::prepare, "prepare"}, {CycleStep::train, "train"},     {CycleStep::evaluate, "evaluate"},
    {CycleStep::gate, "gate"},       {CycleStep::release, "release"}, {CycleStep::done, "done"},
};

std::uint64_t fnv1a(const std::string& s) {
    std::uint64_t h = 1469598103934665603ull;
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
    return h;
}

// Members of a saved state (written by to_json below, so a problem is damage, not input).
const json& at(const json& j, const char* key) {
    const auto it = j.find(key);
    if (it == j.end()) throw std::runtime_error(fmt::format("cycle state: member '{}' missing", key));
    return *it;
}

json decision_to_json(const GateDecision& d) { return to_json(d); }

// Carries an exception thrown by Hooks::saved past the steps' own error handling.
struct SavedHookAbort {
    std::exception_ptr error;
};

GateDecision decision_from_json(const json& j) {
    GateDecision d;
    d.promote = at(j, "promote").get<bool>();
    d.checks = at(j, "checks").get<std::vector<std::string>>();
    d.reasons = at(j, "reasons").get<std::vector<std::string>>();
    return d;
}

}  // namespace

std::string_view to_string(CycleStep step) {
    for (const auto& [s, name] : kStepNames)
        if (s == step) return name;
    return "?";
}

CycleStep cycle_step_from_string(std::string_view name) {
    for (const auto& [s, n] : kStepNames)
        if (name == n) return s;
    throw std::invalid_argument("not a cycle step");
}

bool held_out(const std::string& camera, std::int64_t track, double holdout_fraction) {
    const auto cut = static_cast<std::uint64_t>(holdout_fraction * 1000.0);
    return track >= 0 && fnv1a(camera + "/group" + std::to_string(track / kHoldoutTrackGroup)) % 1000 < cut;
}

fs::path latest_clustering_file(const fs::path& models_dir) { return models_dir / "clustering.csv"; }

std::string track_label(const quality::CropRecord& r) { return r.camera + "/" + std::to_string(r.track_id); }

CycleSplit split_records(std::vector<quality::CropRecord> records, double holdout_fraction) {
    CycleSplit out;
    for (auto& r : records)
        (held_out(r.camera, r.track_id, holdout_fraction) ? out.holdout : out.training).push_back(std::move(r));
    return out;
}

FramePairs same_frame_pairs(const std::vector<quality::CropRecord>& records, std::size_t per_track,
                            std::size_t max_crops) {
    // (camera, frame time) -> the tracks seen in it.
    std::map<std::pair<std::string, std::int64_t>, std::set<std::int64_t>> frames;
    for (const auto& r : records)
        if (r.track_id >= 0)
            frames[{r.camera, std::chrono::duration_cast<std::chrono::milliseconds>(r.timestamp.time_since_epoch()).count()}]
                .insert(r.track_id);
    std::set<std::pair<std::string, std::string>> pairs;
    for (const auto& [key, tracks] : frames)
        for (auto a = tracks.begin(); a != tracks.end(); ++a)
            for (auto b = std::next(a); b != tracks.end(); ++b)
                pairs.emplace(key.first + "/" + std::to_string(*a), key.first + "/" + std::to_string(*b));
    FramePairs out;
    std::set<std::string> wanted;
    for (const auto& p : pairs) {
        wanted.insert(p.first);
        wanted.insert(p.second);
    }
    std::map<std::string, std::size_t> taken;
    for (const auto& r : records) {
        if (out.crops.size() >= max_crops) break;
        const std::string label = track_label(r);
        if (r.track_id < 0 || !wanted.count(label) || taken[label] >= per_track) continue;
        ++taken[label];
        out.crops.push_back(r);
    }
    for (const auto& p : pairs)
        if (taken.count(p.first) && taken[p.first] && taken.count(p.second) && taken[p.second]) out.pairs.push_back(p);
    return out;
}

int best_version_so_far(const ModelRegistry& registry, int current) {
    int best = 0;
    double best_frr = INFINITY;
    for (const auto& h : registry.history()) {
        if (h.value("event", "") != "gate" || !h.value("promote", false) || !h.contains("version")) continue;
        const auto door = h.find("candidate");
        if (door == h.end() || !door->is_object() || !door->contains("door")) continue;
        const auto& d = (*door)["door"];
        if (!d.is_object() || !d.contains("frr") || !d["frr"].is_number()) continue;
        const int v = h["version"].get<int>();
        const double frr = d["frr"].get<double>();
        if (v == current || frr >= best_frr) continue;
        try {
            (void)registry.get(v);  // retention may have removed it
        } catch (const std::exception&) {
            continue;
        }
        best = v;
        best_frr = frr;
    }
    return best;
}

json to_json(const CycleState& s) {
    json j{{"name", s.name},
           {"step", to_string(s.step)},
           {"started", s.started},
           {"parent_version", s.parent_version},
           {"version", s.version}};
    if (s.prepared)
        j["prepared"] = {{"data_dir", s.prepared->data_dir.string()},
                         {"holdout_file", s.prepared->holdout_file.string()},
                         {"training", s.prepared->training},
                         {"holdout", s.prepared->holdout},
                         {"max_crop_id", s.prepared->max_crop_id}};
    if (s.training)
        j["training"] = {{"model", s.training->model.string()},
                         {"provenance", s.training->provenance},
                         {"seconds", s.training->seconds},
                         {"clustered", s.training->clustered}};
    if (s.evaluation) {
        json refs = json::array();
        for (const auto& r : s.evaluation->references) refs.push_back({{"name", r.name}, {"figures", to_json(r.figures)}});
        j["evaluation"] = {{"current", to_json(s.evaluation->current)},
                           {"candidate", to_json(s.evaluation->candidate)},
                           {"gallery", to_json(s.evaluation->gallery)},
                           {"references", refs}};
        put_gallery_revision(j["evaluation"], s.evaluation->gallery);
    }
    if (s.decision) j["decision"] = decision_to_json(*s.decision);
    return j;
}

CycleState cycle_state_from_json(const json& j) {
    try {
        if (!j.is_object()) throw std::runtime_error("cycle state: not an object");
        CycleState s;
        if (!j.contains("step") && j.value("status", "") == "training") {
            // Written before the steps were saved ({"name", "status": "training", ...}): its
            // snapshot had no holdout.json, so the cycle starts again from prepare, same name.
            s.name = at(j, "name").get<std::string>();
            s.started = j.value("started", common::utc_timestamp());
            return s;
        }
        s.name = at(j, "name").get<std::string>();
        s.step = cycle_step_from_string(at(j, "step").get<std::string>());
        s.started = at(j, "started").get<std::string>();
        s.parent_version = at(j, "parent_version").get<int>();
        s.version = at(j, "version").get<int>();
        if (j.contains("prepared")) {
            const json& p = j["prepared"];
            s.prepared = PreparedData{at(p, "data_dir").get<std::string>(), at(p, "holdout_file").get<std::string>(),
                                      at(p, "training").get<std::size_t>(), at(p, "holdout").get<std::size_t>(),
                                      at(p, "max_crop_id").get<std::int64_t>()};
        }
        if (j.contains("training")) {
            const json& t = j["training"];
            s.training = TrainOutput{at(t, "model").get<std::string>(), at(t, "provenance"), at(t, "seconds").get<double>(),
                                     t.value("clustered", std::int64_t{-1})};
        }
        if (j.contains("evaluation")) {
            const json& e = j["evaluation"];
            s.evaluation = Evaluation{figures_from_json(at(e, "current")), figures_from_json(at(e, "candidate")),
                                      gallery_from_json(at(e, "gallery")), {}};
            s.evaluation->gallery.revision = get_gallery_revision(e);
            if (e.contains("references"))
                for (const auto& r : e["references"])
                    s.evaluation->references.push_back({at(r, "name").get<std::string>(), figures_from_json(at(r, "figures"))});
        }
        if (j.contains("decision")) s.decision = decision_from_json(j["decision"]);
        // Each step needs the outputs of the ones before it.
        const auto need = [&](bool has, CycleStep from, const char* what) {
            if (!has && s.step >= from && s.step != CycleStep::done)
                throw std::runtime_error(fmt::format("cycle state: step {} without {}", to_string(s.step), what));
        };
        need(s.prepared.has_value(), CycleStep::train, "'prepared'");
        need(s.training.has_value(), CycleStep::evaluate, "'training'");
        need(s.evaluation.has_value(), CycleStep::gate, "'evaluation'");
        need(s.decision.has_value() && s.version > 0, CycleStep::release, "'decision' and 'version'");
        return s;
    } catch (const json::exception& e) {
        throw std::runtime_error(std::string("cycle state: ") + e.what());
    } catch (const std::invalid_argument& e) {
        throw std::runtime_error(std::string("cycle state: ") + e.what());
    }
}

TrainingResult run_child_supervised(const std::vector<std::string>& argv, const ChildSupervision& sv) {
    TrainingChild child(argv, sv.limits, sv.on_progress, sv.on_output);
    for (;;) {
        if (auto r = child.poll()) return *r;
        if (sv.stop && sv.stop->load()) return child.terminate(sv.stop_grace);
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
}

// ---- one run of the cycle ----------------------------------------------------------------

struct TrainingCycle::Run {
    TrainingCycle& c;
    const config::Config& cfg;
    const std::atomic<bool>& stop;
    CycleState s;
    bool resumed = false;                   // s came from cycle.json
    std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
    fs::path dir;                           // <models>/candidates/<name>

    void status(const std::string& text) const {
        if (c.hooks_.status) c.hooks_.status(text);
    }

    void save() {
        common::write_file_atomic(c.state_file(), to_json(s).dump(2) + "\n");
        if (!c.hooks_.saved) return;
        try {
            c.hooks_.saved(s.step);
        } catch (...) {
            throw SavedHookAbort{std::current_exception()};
        }
    }

    // An ended cycle: its scratch data and its state are removed.
    Report end() {
        std::error_code ec;
        fs::remove_all(dir / "data", ec);
        fs::remove_all(dir / "holdout", ec);
        fs::remove(dir / "holdout.json", ec);
        fs::remove_all(dir / "checkpoint", ec);
        fs::remove(c.state_file(), ec);
        s.step = CycleStep::done;
        return {Outcome::ended, s};
    }

    double seconds() const {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    }

    // prepare: snapshot -> split -> chips for the children. Nothing is parsed back.
    void prepare() {
        status("snapshot");
        const fs::path data = dir / "data", holdout = dir / "holdout";
        fs::remove_all(data);
        fs::remove_all(holdout);
        fs::create_directories(holdout);
        CycleSplit split = split_records(c.store_.snapshot(), cfg.gate.holdout_fraction);
        const auto trained = c.store_.export_records(split.training, data);
        const auto held = c.store_.export_records(split.holdout, holdout);
        // The operator's corrections from the console (must/cannot links, docs/site-snapshot.md)
        // travel with the snapshot to the learner.
        const fs::path corrections = c.store_.root().parent_path() / "console" / "constraints.csv";
        if (fs::exists(corrections)) fs::copy_file(corrections, data / "constraints.csv", fs::copy_options::overwrite_existing);
        json crops = json::array();
        std::int64_t max_id = 0;
        for (const auto& r : trained) max_id = std::max(max_id, r.id);
        for (const auto& r : held) {
            max_id = std::max(max_id, r.id);
            crops.push_back({{"file", r.file.string()}, {"track", track_label(r)}});
        }
        // Same-frame pairs of held-out tracks only (both tracks held out, which the group rule of
        // held_out() keeps for tracks of one scene): impostor pairs for the calibration of the
        // current model and the candidate alike, on crops neither trained on (the split is the
        // same every cycle at one holdout_fraction; docs/operating-point.md, section 4: a model
        // calibrated on crops it trained on has pushed exactly those apart, and its threshold is
        // too loose for new faces).
        const FramePairs frames = same_frame_pairs(held);
        json frame_crops = json::array(), frame_pairs = json::array();
        for (const auto& r : frames.crops) frame_crops.push_back({{"file", r.file.string()}, {"track", track_label(r)}});
        for (const auto& [a, b] : frames.pairs) frame_pairs.push_back({a, b});
        const fs::path holdout_file = dir / "holdout.json";
        common::write_file_atomic(
            holdout_file,
            json{{"crops", crops}, {"frame_crops", frame_crops}, {"frame_pairs", frame_pairs}}.dump() + "\n");
        s.prepared = PreparedData{data, holdout_file, trained.size(), held.size(), max_id};
        s.step = CycleStep::train;
        save();
    }

    // train: the child. Returns false when the cycle ended or stopped (report in `out`).
    bool train(Report& out) {
        if (!s.prepared || !fs::is_directory(s.prepared->data_dir)) {  // scratch data lost: snapshot again
            s.step = CycleStep::prepare;
            return true;
        }
        const bool resume = resumed;
        s.parent_version = c.registry_.current_version();
        const fs::path candidate = dir / "candidate.model", checkpoint = dir / "checkpoint",
                       clustering = dir / "clustering.csv";
        std::vector<std::string> argv{c.options_.trainer.string(), "train", "--data", s.prepared->data_dir.string(),
                                      "--chips", "--out", candidate.string(),
                                      "--cycles", std::to_string(cfg.learner.cycles),
                                      "--iters", std::to_string(cfg.learner.iters),
                                      "--config", fs::absolute(c.options_.config_file).string(),
                                      "--checkpoint", checkpoint.string(),
                                      "--clustering", clustering.string(),
                                      "--protocol-fd", std::to_string(kChildProtocolFd)};
        if (s.parent_version > 0)
            argv.insert(argv.end(), {"--init", c.registry_.get(s.parent_version).model_file.string()});
        if (resume && fs::exists(checkpoint)) argv.push_back("--resume");
        else if (resume) spdlog::info("cycle {}: no checkpoint was written; training again from the start", s.name);
        spdlog::info("cycle {}: {} training on {} ({})", s.name, resume ? "resuming" : "starting",
                     s.prepared->data_dir.string(), fmt::join(argv, " "));
        status(resume ? "resuming" : "training");
        c.metrics_.set("faceadapt_training_running", {}, 1);
        const TrainingResult result = c.hooks_.run_child(s.name, argv);
        c.metrics_.set("faceadapt_training_running", {}, 0);
        const double secs = seconds();
        if (stop) {
            spdlog::info("cycle {}: stopped ({}); it resumes from its checkpoint at the next start", s.name,
                         result.describe());
            status("stopped");
            out = {Outcome::stopped, s};
            return false;
        }
        c.metrics_.add("faceadapt_training_cycle_seconds_total", {}, secs);
        c.metrics_.set("faceadapt_training_last_cycle_seconds", {}, secs);
        const ChildTrainResult* trained = nullptr;
        for (const auto& m : result.messages)
            if (const auto* r = std::get_if<ChildTrainResult>(&m)) trained = r;
        if (!result.ok() || !trained || !fs::exists(candidate)) {
            std::string why = result.ok() ? "no candidate model written" : result.describe();
            for (const auto& m : result.messages)
                if (const auto* e = std::get_if<ChildError>(&m)) why += ": " + e->message;
            spdlog::error("cycle {}: training failed: {}", s.name, why);
            for (const auto& l : result.last_lines) spdlog::error("cycle {}:   {}", s.name, l);
            c.metrics_.add("faceadapt_training_cycles_total", {{"result", "failed"}});
            c.registry_.append_history({{"event", "cycle"}, {"cycle", s.name}, {"result", "failed"}, {"error", why},
                                        {"seconds", secs}, {"output", result.last_lines}});
            out = end();
            return false;
        }
        if (result.protocol_errors)
            spdlog::warn("cycle {}: {} malformed protocol line(s) from the child, the first: {}", s.name,
                         result.protocol_errors, result.first_protocol_error);
        c.metrics_.add("faceadapt_training_cycles_total", {{"result", "ok"}});
        c.registry_.append_history({{"event", "cycle"}, {"cycle", s.name}, {"result", "ok"}, {"seconds", secs}});
        spdlog::info("cycle {}: trained in {:.1f} s; evaluating the candidate", s.name, secs);
        s.training = TrainOutput{candidate, trained->provenance.is_object() ? trained->provenance : json::object(), secs};
        s.training->clustered = keep_clustering(clustering);
        s.step = CycleStep::evaluate;
        save();
        return true;
    }

    // The child's clustering, checked (read back with its bounds) and kept as the latest one.
    // Returns its crops; -1 when there is none or it is malformed (logged: the cycle goes on,
    // the console keeps the clustering it had).
    std::int64_t keep_clustering(const fs::path& file) {
        if (!fs::exists(file)) {
            spdlog::info("cycle {}: the training child wrote no clustering", s.name);
            return -1;
        }
        try {
            const auto rows = common::read_clustering(file);
            common::write_clustering(latest_clustering_file(c.registry_.dir()), rows);
            spdlog::info("cycle {}: kept the clustering of {} crops for the console", s.name, rows.size());
            return static_cast<std::int64_t>(rows.size());
        } catch (const std::exception& e) {
            spdlog::warn("cycle {}: the child's clustering is not kept: {}", s.name, e.what());
            return -1;
        }
    }

    // A failure of evaluate/gate/release, as faceadaptd has always recorded it.
    Report gate_error(const std::string& what) {
        spdlog::error("cycle {}: gate/release failed: {}", s.name, what);
        c.registry_.append_history({{"event", "gate"}, {"cycle", s.name}, {"promote", false}, {"error", what}});
        c.metrics_.add("faceadapt_gate_decisions_total", {{"decision", "error"}});
        return end();
    }

    // evaluate: the second child measures both models.
    bool evaluate(Report& out) {
        status("gate");
        const fs::path current =
            s.parent_version > 0 ? c.registry_.get(s.parent_version).model_file : fs::path();
        std::vector<std::string> argv{c.options_.trainer.string(), "evaluate",
                                      "--protocol-fd", std::to_string(kChildProtocolFd),
                                      "--state-dir", cfg.site.state_dir.string(),
                                      "--candidate", s.training->model.string(),
                                      "--current", current.empty() ? std::string("source") : current.string(),
                                      "--holdout", s.prepared->holdout_file.string(),
                                      "--far", fmt::format("{}", cfg.gate.far),
                                      "--door-far", fmt::format("{}", target_door_far(cfg.gate)),
                                      "--device", cfg.learner.device};
        if (!cfg.gate.strangers_dir.empty()) argv.insert(argv.end(), {"--strangers", cfg.gate.strangers_dir.string()});
        if (!cfg.gate.strangers_dir.empty() && !c.options_.config_file.empty())  // its [enroll] checks the strangers
            argv.insert(argv.end(), {"--config", fs::absolute(c.options_.config_file).string()});
        if (s.parent_version > 0) argv.push_back("--source");  // the source model as a reference
        const int best = best_version_so_far(c.registry_, s.parent_version);
        if (best > 0) argv.insert(argv.end(), {"--best", c.registry_.get(best).model_file.string()});
        const TrainingResult result = c.hooks_.run_child(s.name, argv);
        if (stop) {
            out = {Outcome::stopped, s};
            return false;
        }
        const ChildEvaluation *cur = nullptr, *cand = nullptr;
        std::vector<GateReference> references;
        std::string child_error;
        for (const auto& m : result.messages) {
            if (const auto* e = std::get_if<ChildEvaluation>(&m)) {
                if (e->role == "current") cur = e;
                else if (e->role == "candidate") cand = e;
                else if (e->role == "source") references.push_back({"source model", e->figures});
                else references.push_back({fmt::format("best so far (version {})", best), e->figures});
            }
            if (const auto* e = std::get_if<ChildError>(&m)) child_error = e->message;
        }
        if (!result.ok() || !cur || !cand) {
            for (const auto& l : result.last_lines) spdlog::error("cycle {}:   {}", s.name, l);
            out = gate_error(fmt::format("evaluation child: {}{}", result.ok() ? "no figures" : result.describe(),
                                         child_error.empty() ? "" : ": " + child_error));
            return false;
        }
        s.evaluation = Evaluation{cur->figures, cand->figures, cand->gallery, references};
        s.step = CycleStep::gate;
        save();
        return true;
    }

    // gate: the decision; promoted -> registered and current.
    bool gate(Report& out) {
        const ModelFigures& cur = s.evaluation->current;
        const ModelFigures& cand = s.evaluation->candidate;
        const GateDecision d = decide(cur, cand, cfg.gate, s.evaluation->references);
        for (const auto& [model, f] : {std::pair{"current", &cur}, std::pair{"candidate", &cand}}) {
            c.metrics_.set("faceadapt_gate_figure", {{"model", model}, {"figure", "gallery_tar"}}, f->gallery.tar);
            c.metrics_.set("faceadapt_gate_figure", {{"model", model}, {"figure", "gallery_rank1"}}, f->gallery.rank1);
            c.metrics_.set("faceadapt_gate_figure", {{"model", model}, {"figure", "site_consistency"}}, f->site.consistency);
            c.metrics_.set("faceadapt_gate_figure", {{"model", model}, {"figure", "site_compactness"}}, f->site.compactness);
            if (!f->door) continue;
            const auto& p = f->door->point;
            for (const auto& [figure, value] :
                 {std::pair{"threshold", p.threshold}, std::pair{"frr", p.frr}, std::pair{"measured_far", f->door->measured_far()},
                  std::pair{"far_bound", p.far_kind == calib::FarKind::door ? p.door_far_bound : p.pair_far_bound},
                  std::pair{"min_resolvable_far", p.min_resolvable_far},
                  std::pair{"smallest_impostor_distance", p.smallest_impostor_distance},
                  std::pair{"impostor_pairs", static_cast<double>(p.impostor_pairs)},
                  std::pair{"calibrated", p.calibrated ? 1.0 : 0.0}})
                if (std::isfinite(value)) c.metrics_.set("faceadapt_gate_figure", {{"model", model}, {"figure", figure}}, value);
        }
        c.metrics_.add("faceadapt_gate_decisions_total", {{"decision", d.promote ? "promoted" : "refused"}});
        json record{{"event", "gate"},       {"cycle", s.name},          {"promote", d.promote},
                    {"current_version", s.parent_version}, {"current", to_json(cur)}, {"candidate", to_json(cand)},
                    {"checks", d.checks},    {"reasons", d.reasons}};
        for (const auto& r : s.evaluation->references) record["references"][r.name] = to_json(r.figures);
        for (const auto& line : d.checks) spdlog::info("gate {}: {}", s.name, line);
        s.decision = d;
        if (!d.promote) {
            for (const auto& r : d.reasons) spdlog::warn("gate {}: refused: {}", s.name, r);
            c.registry_.append_history(record);
            out = end();
            return false;
        }
        const json gate_numbers{{"candidate", to_json(cand)}, {"current", to_json(cur)}};
        const ModelVersion added = c.registry_.add(s.training->model, "train",
                                                   {{"cycle", s.name},
                                                    {"parent_version", s.parent_version},
                                                    {"training_seconds", s.training->seconds},
                                                    {"training", s.training->provenance},
                                                    {"gate", gate_numbers}});
        record["version"] = added.version;
        c.registry_.append_history(record);
        c.registry_.set_current(added.version);
        c.metrics_.set("faceadapt_model_version", {}, added.version);
        spdlog::info("gate {}: promoted as version {} (was {})", s.name, added.version, s.parent_version);
        s.version = added.version;
        s.step = CycleStep::release;
        save();
        return true;
    }

    void release() {
        status("publishing");
        EmbeddedGallery gallery = s.evaluation->gallery;  // the package ships the candidate's operating point
        if (s.evaluation->candidate.door) gallery.operating_point = s.evaluation->candidate.door->point;
        c.hooks_.release(s.version, gallery);
    }

    // evaluate, gate and release: an exception ends the cycle as a gate/release failure, as it
    // always has; a stop during one of them leaves the state for the next run. (prepare and
    // train let theirs through to the caller, the state as saved before the step.)
    template <typename Step>
    std::optional<Report> guarded(Step step) {
        try {
            step();
            return std::nullopt;
        } catch (const SavedHookAbort&) {
            throw;
        } catch (const std::exception& e) {
            if (stop) return Report{Outcome::stopped, s};
            return gate_error(e.what());
        }
    }

    Report steps() {
        Report out;
        for (;;) {
            std::optional<Report> r;
            bool more = true;
            switch (s.step) {
            case CycleStep::prepare:
                prepare();
                break;
            case CycleStep::train:
                more = train(out);
                break;
            case CycleStep::evaluate:
                r = guarded([&] { more = evaluate(out); });
                break;
            case CycleStep::gate:
                r = guarded([&] { more = gate(out); });
                break;
            case CycleStep::release:
                r = guarded([&] { release(); });
                if (!r) return end();
                break;
            case CycleStep::done:
                return end();
            }
            if (r) return *r;
            if (!more) return out;
            resumed = false;  // later steps of this run are fresh, not resumed
        }
    }

    Report go() {
        try {
            return steps();
        } catch (const SavedHookAbort& abort) {
            std::rethrow_exception(abort.error);
        }
    }
};

TrainingCycle::TrainingCycle(const quality::CropStore& store, ModelRegistry& registry, MetricsRegistry& metrics,
                             Options options, Hooks hooks)
    : store_(store), registry_(registry), metrics_(metrics), options_(std::move(options)), hooks_(std::move(hooks)) {
    if (!hooks_.run_child || !hooks_.release) throw std::invalid_argument("TrainingCycle: run_child and release are required");
    using T = MetricType;
    metrics_.describe("faceadapt_training_running", T::gauge, "1 while a training child runs");
    metrics_.describe("faceadapt_training_cycles_total", T::counter, "Training cycles by result");
    metrics_.describe("faceadapt_training_cycle_seconds_total", T::counter, "Wall time spent in training cycles");
    metrics_.describe("faceadapt_training_last_cycle_seconds", T::gauge, "Duration of the last training cycle");
    metrics_.describe("faceadapt_model_version", T::gauge, "Model version in use (0 = pretrained source)");
    metrics_.describe("faceadapt_gate_decisions_total", T::counter, "Promotion gate decisions");
    metrics_.describe("faceadapt_gate_figure", T::gauge, "Last gate figures per model");
}

fs::path TrainingCycle::state_file() const { return registry_.dir() / "cycle.json"; }

std::optional<CycleState> TrainingCycle::saved_state() const {
    std::error_code ec;
    if (!fs::exists(state_file(), ec)) return std::nullopt;
    try {
        return cycle_state_from_json(json::parse(common::read_file(state_file())));
    } catch (const std::exception& e) {
        spdlog::warn("cycle: ignoring unreadable {}: {}", state_file().string(), e.what());
        return std::nullopt;
    }
}

TrainingCycle::Report TrainingCycle::run(const config::Config& config, const std::atomic<bool>& stop) {
    Run r{*this, config, stop, {}, false, std::chrono::steady_clock::now(), {}};
    if (auto saved = saved_state()) {
        r.s = std::move(*saved);
        r.resumed = true;
        spdlog::info("cycle {}: resuming at its {} step", r.s.name, to_string(r.s.step));
    } else {
        r.s.name = "cycle-" + common::utc_compact();
        r.s.started = common::utc_timestamp();
    }
    r.dir = registry_.candidate_dir(r.s.name);
    return r.go();
}

EmbeddedGallery TrainingCycle::embed_gallery(const config::Config& config, const fs::path& model_file) {
    std::vector<std::string> argv{options_.trainer.string(), "evaluate",
                                        "--protocol-fd", std::to_string(kChildProtocolFd),
                                        "--state-dir", config.site.state_dir.string(),
                                        "--candidate", model_file.string(),
                                        "--far", fmt::format("{}", config.gate.far),
                                        "--door-far", fmt::format("{}", target_door_far(config.gate)),
                                        "--device", config.learner.device};
    if (!config.gate.strangers_dir.empty()) argv.insert(argv.end(), {"--strangers", config.gate.strangers_dir.string()});
    if (!config.gate.strangers_dir.empty() && !options_.config_file.empty())  // its [enroll] checks the strangers
        argv.insert(argv.end(), {"--config", fs::absolute(options_.config_file).string()});
    const TrainingResult result = hooks_.run_child("release", argv);
    for (const auto& m : result.messages)
        if (const auto* e = std::get_if<ChildEvaluation>(&m); e && result.ok()) {
            EmbeddedGallery g = e->gallery;
            if (e->figures.door) g.operating_point = e->figures.door->point;
            return g;
        }
    throw std::runtime_error(fmt::format("gallery embedding by {}: the evaluation child gave no gallery ({})",
                                         model_file.string(), result.describe()));
}

}  // namespace faceadapt::daemon
