// The train command (Learner II): unsupervised site adaptation of the face model.
//   train --data DIR|FILE.chips [--chips] --out MODEL [--method mmt|naive] [--cycles N] [--iters M]
//         [--seed S] [--device cpu|cuda] [--resume] [--checkpoint FILE] [--config FILE] [--merge|--no-merge]
//         [--init MODEL] [--views quality|tensor] [--no-constraints] [--clustering FILE]
//   DIR holds 150x150 chips (--chips) or photos (detected and aligned first, the largest face
//   of each), in subfolders or flat; labels are never read. A FILE.chips (FACHIPS1 raw tensor
//   file) is read as chips. Progress lines go to stdout; SIGTERM/SIGINT write the checkpoint and
//   exit with code 3 (resume with --resume). With --protocol-fd N (faceadaptd's training child)
//   the progress, the result (model file + provenance) and a failure's message are also written
//   to descriptor N as the JSON lines of daemon/child_protocol.hpp. A store snapshot's site
//   structure (tracks, shared frames, constraints.csv: docs/site-snapshot.md) shapes the
//   pseudo-labels unless --no-constraints. --clustering FILE writes each chip's final
//   pseudo-identity as common/site_files.hpp's clustering.csv ("crop,cluster"; a store
//   snapshot's crop ids; faceadaptd keeps the latest for the console's Unknown faces).
//   One run per checkpoint: a second run on the same --out/--checkpoint exits 2 (CHECKPOINT.lock).
#include <fcntl.h>
#include <sys/file.h>

#include <csignal>
#include <cstring>

#include <atomic>
#include <chrono>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "commands.hpp"
#include "train_data.hpp"
#include "faceadapt/common/durable_file.hpp"
#include "faceadapt/common/site_files.hpp"
#include "faceadapt/config/config.hpp"
#include "faceadapt/daemon/child_protocol.hpp"
#include "faceadapt/learner/cotrainer.hpp"
#include "faceadapt/learner/model_file.hpp"
#include "faceadapt/learner/weights_import.hpp"

namespace faceadapt::tools {
namespace {
namespace fs = std::filesystem;

// Set by the SIGTERM/SIGINT handler; the trainer polls it between steps. (A signal handler can
// only reach static storage.)
std::atomic<bool> g_stop{false};
extern "C" void on_stop_signal(int) { g_stop.store(true); }

struct TrainArgs {
    fs::path data, out, config, checkpoint, init, clustering;
    bool chips = false, resume = false, merge = false, no_merge = false;
    std::string method, device, views = "quality";
    bool hold_in_memory = false;
    bool no_constraints = false;
    int64_t max_crops = 0;
    int cycles = 0, iters = 0;
    int64_t seed = -1;
    int protocol_fd = -1;  // >= 0: also write child_protocol.hpp messages there
};

// Debris of an interrupted atomic write of `target` (a kill during a checkpoint save leaves
// ".<name>.<token>.tmp" next to it; common/durable_file.hpp): the owner removes it when it starts.
// Returns how many were removed.
int remove_write_debris(const fs::path& target) {
    const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
    const std::string prefix = "." + target.filename().string() + ".";
    int removed = 0;
    std::error_code ec;
    for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (name.starts_with(prefix) && name.ends_with(common::kTempSuffix) && it->is_regular_file()) {
            std::error_code rec;
            if (fs::remove(it->path(), rec)) ++removed;
        }
    }
    return removed;
}

// Removes the scratch view files when the run ends, however it ends.
struct ScratchFiles {
    std::vector<fs::path> files;
    ~ScratchFiles() {
        for (const auto& f : files) {
            std::error_code ec;
            fs::remove(f, ec);
        }
    }
};

// One run per checkpoint: a second `faceadapt train` with the same --out (or --checkpoint) would
// truncate the first one's scratch views under it and, on exit, delete them. An exclusive flock on
// CHECKPOINT.lock, held for the run; the kernel drops it when the process ends however it ends, so
// a killed run leaves no stale lock (the small file stays: removing it could race a waiting run).
// throws BadInput naming the checkpoint when another run holds it; std::runtime_error when the
// lock file cannot be opened.
common::UniqueFd lock_checkpoint(const fs::path& checkpoint) {
    const fs::path lock = checkpoint.string() + ".lock";
    common::UniqueFd fd(::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    if (!fd.valid()) throw std::runtime_error(lock.string() + ": cannot open: " + std::strerror(errno));
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0)
        throw BadInput("--out: another faceadapt train is running on checkpoint " + checkpoint.string() +
                       " (it holds " + lock.string() + "); wait for it to end or give another --out");
    return fd;
}

// Prints one phase's wall time and the peak resident set so far ("phase NAME: S s, peak RSS M MB").
void print_phase(const char* name, double seconds) {
    std::printf("phase %s: %.1f s, peak RSS %.0f MB\n", name, seconds, peak_rss_mb());
    std::fflush(stdout);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The training data: the bounded stratified sample of --data and its two views in scratch chip
// files next to the checkpoint (streamed by the co-trainer; --hold-in-memory reads them into RAM).
PreparedViews load_training_views(const TrainArgs& a, const fs::path& checkpoint, size_t max_crops, bool second_view,
                                  ScratchFiles& scratch, learner::SiteStructure& structure,
                                  std::vector<int64_t>& crop_ids) {
    using Clock = std::chrono::steady_clock;
    ViewOptions vo;
    vo.chips_only = a.chips;
    vo.views = a.views;
    vo.second_view = second_view;
    vo.view1 = checkpoint.string() + ".view1.chips";
    vo.view2 = checkpoint.string() + ".view2.chips";
    scratch.files = {vo.view1, vo.view2};
    auto t0 = Clock::now();
    PreparedViews views;
    size_t listed = 0, sampled = 0;
    if (fs::is_regular_file(a.data)) {
        const learner::ChipFile chips(a.data);
        listed = static_cast<size_t>(chips.size());
        const auto sample = learner::stratified_sample(std::vector<learner::CropKey>(listed), max_crops);
        sampled = sample.size();
        print_phase("list", seconds_since(t0));
        t0 = Clock::now();
        views = prepare_training_views(chips, sample, vo);
    } else {
        if (!fs::is_directory(a.data)) throw BadInput("--data: no such folder or chips file: " + a.data.string());
        std::vector<TrainingInput> inputs;
        try {
            inputs = list_training_inputs(a.data);
        } catch (const std::invalid_argument& e) {
            throw BadInput(e.what());
        }
        listed = inputs.size();
        std::vector<learner::CropKey> keys;
        keys.reserve(inputs.size());
        for (const auto& in : inputs) keys.push_back(in.key);
        const auto sample = learner::stratified_sample(keys, max_crops);
        std::vector<TrainingInput> chosen;
        chosen.reserve(sample.size());
        for (size_t i : sample) chosen.push_back(std::move(inputs[i]));
        sampled = chosen.size();
        print_phase("list", seconds_since(t0));
        t0 = Clock::now();
        views = prepare_training_views(chosen, vo);
        crop_ids.reserve(views.used_inputs.size());
        for (const int64_t i : views.used_inputs) crop_ids.push_back(chosen[static_cast<size_t>(i)].row.id);
        if (fs::is_regular_file(a.data / "index.csv") && !a.no_constraints) {
            learner::StructureCounts c;
            try {
                structure = training_structure(chosen, views, a.data / "constraints.csv", &c);
            } catch (const std::invalid_argument& e) {
                throw BadInput(e.what());
            }
            std::printf("site structure: %lld tracks, %lld shared frames, %lld must-linked crops, %lld cannot-linked "
                        "crop pairs (%lld constraint rows name crops not in the snapshot)%s\n",
                        (long long)c.tracks, (long long)c.shared_frames, (long long)c.must, (long long)c.cannot_pairs,
                        (long long)c.unknown_ids, structure.empty() ? "; nothing to constrain" : "");
        }
    }
    for (const auto& e : views.first_errors) spdlog::warn("train: skipped {}", e);
    spdlog::info("train: {} chips from {} of {} inputs under {} (sample bound {}; {} unreadable or refused, {} "
                 "without a face)",
                 views.used, sampled, listed, a.data.string(), max_crops, views.unreadable, views.no_face);
    std::printf("data: %zu inputs, %zu sampled (max_train_crops %zu), %lld used, %lld unreadable skipped, %lld without "
                "a face\n",
                listed, sampled, max_crops, (long long)views.used, (long long)views.unreadable,
                (long long)views.no_face);
    print_phase("decode+views", seconds_since(t0));
    if (views.used < 2) throw BadInput("--data: fewer than 2 usable faces under " + a.data.string());
    return views;
}

learner::CoTrainOptions options_from(const config::LearnerConfig& c) {
    learner::CoTrainOptions o;
    o.method = c.method;
    o.cycles = c.cycles;
    o.iters = c.iters;
    o.batch_ids = c.batch_ids;
    o.batch_per_id = c.batch_per_id;
    o.lr_backbone = c.lr_backbone;
    o.lr_classifier = c.lr_classifier;
    o.ema = {c.ema, c.ema_lambda};
    o.cluster.method = c.clustering;
    o.cluster.kmeans_k = c.kmeans_k;
    o.cluster.eps_rule = c.eps_rule;
    o.cluster.eps = c.eps;
    o.cluster.min_samples = c.min_samples;
    o.cluster.k1 = c.k1;
    o.cluster.k2 = c.k2;
    o.soft_ce_weight = c.soft_ce_weight;
    o.soft_triplet_weight = c.soft_triplet_weight;
    o.label_smoothing = c.label_smoothing;
    o.l2sp_alpha = c.l2sp_alpha;
    o.merge = c.merge;
    o.merge_convergence = c.merge_convergence;
    o.source_mix = c.source_mix;
    o.constraints.max_violation_rate = c.max_violation_rate;
    o.seed = static_cast<uint64_t>(c.seed);
    o.device = c.device;
    return o;
}

int run_train(const TrainArgs& a, daemon::ProtocolWriter* protocol) {
    config::LearnerConfig lc;
    if (!a.config.empty()) lc = config::load_config(a.config).learner;
    auto o = options_from(lc);
    if (!a.method.empty()) o.method = a.method;
    if (a.cycles > 0) o.cycles = a.cycles;
    if (a.iters > 0) o.iters = a.iters;
    if (a.seed >= 0) o.seed = static_cast<uint64_t>(a.seed);
    if (!a.device.empty()) o.device = a.device;
    if (a.merge) o.merge = true;
    if (a.no_merge) o.merge = false;
    o.checkpoint = a.checkpoint.empty() ? fs::path(a.out.string() + ".ckpt") : a.checkpoint;
    o.validate();
    if (!a.out.parent_path().empty() && !fs::is_directory(a.out.parent_path()))
        throw BadInput("--out: folder " + a.out.parent_path().string() + " does not exist");
    const common::UniqueFd run_lock = lock_checkpoint(o.checkpoint);  // before touching any file of the run
    if (const int n = remove_write_debris(o.checkpoint) + remove_write_debris(a.out))
        spdlog::info("train: removed {} temp file(s) of an interrupted write next to {}", n, o.checkpoint.string());

    const auto model_t0 = std::chrono::steady_clock::now();
    learner::FaceResNet source{nullptr};
    int64_t parent_version = -1;
    if (!a.init.empty()) {
        auto loaded = learner::load_model(a.init);
        source = loaded.net;
        parent_version = loaded.meta.version;
    } else {
        source = lc.weights_dir.empty() ? learner::load_source_model() : learner::import_face_api_weights(lc.weights_dir);
        parent_version = 0;
    }
    print_phase("load-model", seconds_since(model_t0));
    ScratchFiles scratch;
    learner::SiteStructure structure;
    std::vector<int64_t> crop_ids;  // per chip: its store crop id (-1: not from a store snapshot)
    const auto views = load_training_views(a, o.checkpoint, static_cast<size_t>(a.max_crops > 0 ? a.max_crops : lc.max_train_crops),
                                           o.method == "mmt", scratch, structure, crop_ids);
    std::shared_ptr<const learner::ChipSource> set1 = views.set1, set2 = views.set2;
    if (a.hold_in_memory) {  // the comparison the bench makes: the same views, all in RAM
        set1 = std::make_shared<learner::TensorChips>(learner::load_chips_file(views.set1->path()));
        if (set2) set2 = std::make_shared<learner::TensorChips>(learner::load_chips_file(views.set2->path()));
    }
    learner::CoTrainer trainer(source, set1, set2, o);
    // --no-constraints says "none" explicitly: resuming a run made with constraints is refused.
    if (!structure.empty() || a.no_constraints) trainer.set_structure(std::move(structure));
    trainer.set_log([](const std::string& line) { std::printf("%s\n", line.c_str()), std::fflush(stdout); });
    if (protocol)
        trainer.set_progress([protocol](const learner::TrainProgress& p) {
            daemon::ChildProgress m;
            m.phase = "train";
            m.cycle = p.cycle;
            m.cycles = p.cycles;
            m.iter = p.iter;
            m.iters = p.iters;
            if (p.iter > 0) {
                m.loss = p.loss;
                m.images_per_s = p.images_per_s;
                m.eta_s = p.eta_s;
            }
            protocol->write(m);
        });
    if (a.resume) {
        if (fs::exists(o.checkpoint)) trainer.resume();
        else spdlog::warn("train: --resume but no checkpoint at {}: starting from the beginning", o.checkpoint.string());
    }
    g_stop = false;
    struct sigaction sa{};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    struct sigaction old_term{}, old_int{};
    sigaction(SIGTERM, &sa, &old_term);
    sigaction(SIGINT, &sa, &old_int);
    const auto result = trainer.run(&g_stop);
    sigaction(SIGTERM, &old_term, nullptr);
    sigaction(SIGINT, &old_int, nullptr);
    print_phase("embed", result.phases.embed);
    print_phase("cluster", result.phases.cluster);
    print_phase("train", result.phases.train);
    print_phase("checkpoint", result.phases.checkpoint);
    print_phase("merge", result.phases.merge);
    if (!result.finished) {
        std::printf("stopped: checkpoint written to %s (continue with --resume)\n", o.checkpoint.string().c_str());
        return 3;
    }
    nlohmann::json prov = {{"method", o.method}, {"cycles", o.cycles}, {"iters", o.iters}, {"seed", o.seed},
                           {"chosen", result.chosen}, {"convergence1", result.convergence1},
                           {"convergence2", result.convergence2}, {"images", views.used},
                           {"clustering", o.cluster.method}, {"eps_rule", o.cluster.eps_rule},
                           {"l2sp_alpha", o.l2sp_alpha}, {"views", a.views},
                           {"site_constraints", !trainer.structure().empty()}};
    for (const auto& r : result.cycles)
        prov["cycle_reports"].push_back({{"cycle", r.cycle + 1}, {"clusters", r.clusters}, {"noise", r.noise},
                                         {"eps", r.eps}, {"convergence1", r.convergence1},
                                         {"convergence2", r.convergence2}, {"loss1", r.loss1}, {"loss2", r.loss2},
                                         {"images_per_s", r.images_per_s}});
    learner::ModelMetadata meta;
    meta.version = parent_version + 1;
    meta.parent_version = parent_version;
    meta.provenance = prov;
    auto model = result.model;
    const auto save_t0 = std::chrono::steady_clock::now();
    learner::save_model(model, meta, a.out);
    print_phase("save", seconds_since(save_t0));
    if (!a.clustering.empty()) {
        // The final pseudo-identities of the chips that came from store crops (ids >= 0).
        std::vector<common::ClusterAssignment> rows;
        for (size_t i = 0; i < result.final_labels.size() && i < crop_ids.size(); ++i)
            if (crop_ids[i] >= 0) rows.push_back({crop_ids[i], std::max<int64_t>(-1, result.final_labels[i])});
        common::write_clustering(a.clustering, rows);
        std::printf("clustering: %zu crops written to %s\n", rows.size(), a.clustering.string().c_str());
    }
    if (protocol) protocol->write(daemon::ChildTrainResult{fs::absolute(a.out), prov});
    std::printf("wrote %s (%s, convergence %.4f / %.4f)\n", a.out.string().c_str(), result.chosen.c_str(),
                result.convergence1, result.convergence2);
    return 0;
}

}  // namespace

void register_train_command(CLI::App& app, CommandResult& result) {
    auto args = std::make_shared<TrainArgs>();
    auto* cmd = app.add_subcommand("train", "Adapt the face model to the site's unlabeled faces (mutual mean-teaching)");
    cmd->add_option("--data", args->data, "Folder of chips/photos (subfolders or flat), or a .chips tensor file")->required();
    cmd->add_flag("--chips", args->chips, "The images are 150x150 chips already (no detection)");
    cmd->add_option("--out,-o", args->out, "Output model file")->required();
    cmd->add_option("--method", args->method, "mmt (default) or naive")->check(CLI::IsMember({"mmt", "naive"}));
    cmd->add_option("--cycles", args->cycles, "Clustering/training cycles")->check(CLI::Range(1, 1000));
    cmd->add_option("--iters", args->iters, "Iterations per cycle")->check(CLI::Range(1, 100000));
    cmd->add_option("--seed", args->seed, "Random seed")->check(CLI::NonNegativeNumber);
    cmd->add_option("--device", args->device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
    cmd->add_flag("--resume", args->resume, "Continue from the checkpoint");
    cmd->add_option("--checkpoint", args->checkpoint, "Checkpoint file (default: <out>.ckpt)");
    cmd->add_option("--config", args->config, "Site config (TOML); its [learner] table gives the defaults");
    auto* merge = cmd->add_flag("--merge", args->merge, "Output the convergence-weighted merge of both mean models (claim 6; the default)");
    cmd->add_flag("--no-merge", args->no_merge, "Output the more convergent mean model (claim 1)")->excludes(merge);
    cmd->add_option("--init", args->init, "Start from this model file instead of the pretrained source weights");
    cmd->add_option("--views", args->views, "Enhancement of the two training sets: quality (OpenCV) or tensor");
    cmd->add_option("--max-crops", args->max_crops, "At most this many crops, a stratified sample (default: [learner] max_train_crops)")
        ->check(CLI::Range(int64_t{2}, int64_t{100'000'000}));
    cmd->add_flag("--no-constraints", args->no_constraints,
                  "Ignore the snapshot's site structure (tracks, shared frames, constraints.csv)");
    cmd->add_option("--clustering", args->clustering,
                    "Write each crop's final pseudo-identity here (clustering.csv: crop,cluster; -1 noise)");
    cmd->add_flag("--hold-in-memory", args->hold_in_memory,
                  "Hold both views in RAM instead of streaming them from the scratch files (for comparison)");
    cmd->add_option("--protocol-fd", args->protocol_fd,
                    "Also write progress and the result as JSON lines (daemon/child_protocol.hpp) to this descriptor")
        ->check(CLI::Range(3, 1023));
    cmd->callback([args, &result] {
        run_guarded_child(result, args->protocol_fd, [&](daemon::ProtocolWriter* protocol) { return run_train(*args, protocol); });
    });
}

}  // namespace faceadapt::tools
