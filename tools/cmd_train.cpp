// The train command (Learner II): unsupervised site adaptation of the face model.
//   train --data DIR|FILE.chips [--chips] --out MODEL [--method mmt|naive] [--cycles N] [--iters M]
//         [--seed S] [--device cpu|cuda] [--resume] [--checkpoint FILE] [--config FILE] [--merge|--no-merge]
//         [--init MODEL] [--views quality|tensor]
//   DIR holds 150x150 chips (--chips) or photos (detected and aligned first, the largest face
//   of each), in subfolders or flat; labels are never read. A FILE.chips (FACHIPS1 raw tensor
//   file) is read as chips. Progress lines go to stdout; SIGTERM/SIGINT write the checkpoint and
//   exit with code 3 (resume with --resume). With --protocol-fd N (faceadaptd's training child)
//   the progress, the result (model file + provenance) and a failure's message are also written
//   to descriptor N as the JSON lines of daemon/child_protocol.hpp.
#include <csignal>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <spdlog/spdlog.h>

#include "commands.hpp"
#include "faceadapt/config/config.hpp"
#include "faceadapt/daemon/child_protocol.hpp"
#include "faceadapt/ingest/face_aligner.hpp"
#include "faceadapt/ingest/face_batch.hpp"
#include "faceadapt/ingest/face_landmarks.hpp"
#include "faceadapt/learner/cotrainer.hpp"
#include "faceadapt/learner/model_file.hpp"
#include "faceadapt/learner/weights_import.hpp"
#include "faceadapt/quality/enhancer.hpp"

namespace faceadapt::tools {
namespace {
namespace fs = std::filesystem;

// Set by the SIGTERM/SIGINT handler; the trainer polls it between steps. (A signal handler can
// only reach static storage.)
std::atomic<bool> g_stop{false};
extern "C" void on_stop_signal(int) { g_stop.store(true); }

struct TrainArgs {
    fs::path data, out, config, checkpoint, init;
    bool chips = false, resume = false, merge = false, no_merge = false;
    std::string method, device, views = "quality";
    int cycles = 0, iters = 0;
    int64_t seed = -1;
    int protocol_fd = -1;  // >= 0: also write child_protocol.hpp messages there
};

struct BadInput : std::invalid_argument {
    using std::invalid_argument::invalid_argument;
};

// uint8 [N,150,150,3] RGB from a folder: chips as they are, or photos through the aligner.
torch::Tensor load_training_chips(const fs::path& data, bool chips_only) {
    if (fs::is_regular_file(data)) return learner::load_chips_file(data);
    if (!fs::is_directory(data)) throw BadInput("--data: no such folder or chips file: " + data.string());
    std::vector<fs::path> files;
    for (const auto& e : fs::recursive_directory_iterator(data))
        if (e.is_regular_file() && ingest::has_image_extension(e.path())) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    if (files.empty()) throw BadInput("--data: no images under " + data.string());
    std::vector<cv::Mat> out(files.size());
    std::atomic<size_t> next{0}, missing{0};
    std::mutex error_mutex;
    std::string error;
    std::shared_ptr<const ingest::LandmarkModel> landmarks;
    if (!chips_only) landmarks = std::make_shared<const ingest::LandmarkModel>(ingest::LandmarkModel::default_path());
    std::vector<std::thread> threads;
    for (unsigned w = 0; w < std::max(1u, std::thread::hardware_concurrency()); ++w)
        threads.emplace_back([&] {
            std::unique_ptr<ingest::FaceAligner> aligner;
            if (landmarks) aligner = std::make_unique<ingest::FaceAligner>(landmarks);
            for (size_t i = next++; i < files.size(); i = next++) {
                cv::Mat bgr = cv::imread(files[i].string(), cv::IMREAD_COLOR), rgb;
                if (bgr.empty()) {
                    std::lock_guard lock(error_mutex);
                    error = files[i].string() + ": not a readable image";
                    continue;
                }
                if (aligner) {
                    auto faces = aligner->detect(bgr);
                    if (faces.empty()) {
                        ++missing;
                        continue;
                    }
                    out[i] = faces.front().chip;
                } else {
                    if (bgr.rows != learner::kChipSize || bgr.cols != learner::kChipSize) {
                        std::lock_guard lock(error_mutex);
                        error = files[i].string() + ": a chip must be 150x150 (without --chips photos are aligned)";
                        continue;
                    }
                    cv::cvtColor(bgr, out[i], cv::COLOR_BGR2RGB);
                }
            }
        });
    for (auto& t : threads) t.join();
    if (!error.empty()) throw BadInput(error);
    std::vector<torch::Tensor> rows;
    for (auto& m : out)
        if (!m.empty()) rows.push_back(torch::from_blob(m.data, {learner::kChipSize, learner::kChipSize, 3}, torch::kUInt8).clone());
    spdlog::info("train: {} chips from {} files under {} ({} without a face)", rows.size(), files.size(),
                 data.string(), missing.load());
    if (rows.size() < 2) throw BadInput("--data: fewer than 2 usable faces under " + data.string());
    return torch::stack(rows);
}

// The two training sets of claim 2 through quality's OpenCV Enhancer (two different pipelines).
std::pair<torch::Tensor, torch::Tensor> quality_views(const torch::Tensor& chips) {
    const auto first = quality::Enhancer::first_view(), second = quality::Enhancer::second_view();
    auto set1 = torch::empty_like(chips), set2 = torch::empty_like(chips);
    const int64_t n = chips.size(0);
    std::atomic<int64_t> next{0};
    std::vector<std::thread> threads;
    for (unsigned w = 0; w < std::max(1u, std::thread::hardware_concurrency()); ++w)
        threads.emplace_back([&] {
            for (int64_t i = next++; i < n; i = next++) {
                cv::Mat in(learner::kChipSize, learner::kChipSize, CV_8UC3, chips[i].data_ptr<uint8_t>());
                first.apply(in).copyTo(cv::Mat(learner::kChipSize, learner::kChipSize, CV_8UC3, set1[i].data_ptr<uint8_t>()));
                second.apply(in).copyTo(cv::Mat(learner::kChipSize, learner::kChipSize, CV_8UC3, set2[i].data_ptr<uint8_t>()));
            }
        });
    for (auto& t : threads) t.join();
    return {set1, set2};
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
    const auto chips = load_training_chips(a.data, a.chips);
    torch::Tensor set1, set2;
    if (a.views == "quality") {
        std::tie(set1, set2) = quality_views(chips);
    } else if (a.views == "tensor") {
        set1 = learner::enhance_chips(chips, learner::kFirstViewSpec);
        set2 = learner::enhance_chips(chips, learner::kSecondViewSpec);
    } else {
        throw BadInput("--views: '" + a.views + "' is not quality or tensor");
    }

    learner::CoTrainer trainer(source, set1, o.method == "mmt" ? set2 : torch::Tensor(), o);
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
    if (!result.finished) {
        std::printf("stopped: checkpoint written to %s (continue with --resume)\n", o.checkpoint.string().c_str());
        return 3;
    }
    nlohmann::json prov = {{"method", o.method}, {"cycles", o.cycles}, {"iters", o.iters}, {"seed", o.seed},
                           {"chosen", result.chosen}, {"convergence1", result.convergence1},
                           {"convergence2", result.convergence2}, {"images", chips.size(0)},
                           {"clustering", o.cluster.method}, {"eps_rule", o.cluster.eps_rule},
                           {"l2sp_alpha", o.l2sp_alpha}, {"views", a.views}};
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
    learner::save_model(model, meta, a.out);
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
    cmd->add_option("--protocol-fd", args->protocol_fd,
                    "Also write progress and the result as JSON lines (daemon/child_protocol.hpp) to this descriptor")
        ->check(CLI::Range(3, 1023));
    cmd->callback([args, &result] {
        run_guarded_child(result, args->protocol_fd, [&](daemon::ProtocolWriter* protocol) { return run_train(*args, protocol); });
    });
}

}  // namespace faceadapt::tools
