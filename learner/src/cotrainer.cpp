// Dual-network mean-teacher co-training; see cotrainer.hpp.
#include "faceadapt/learner/cotrainer.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <utility>

#include "faceadapt/common/durable_file.hpp"
#include "faceadapt/learner/eval.hpp"
#include "faceadapt/learner/losses.hpp"
#include "faceadapt/learner/mean_teacher_adam.hpp"
#include "torch_archive_check.hpp"

namespace faceadapt::learner {
namespace F = torch::nn::functional;
using Clock = std::chrono::steady_clock;

namespace {

// 2: content fingerprint of the chips (1 summed them as int64), CoTrainState.
constexpr int64_t kCheckpointFormat = 2;
// Four nets and two Adam states (twice a net each) of a model file's largest weights (1 GiB,
// model_file.cpp): anything bigger is not a checkpoint this trainer wrote.
constexpr std::uintmax_t kMaxCheckpointBytes = std::uintmax_t{8} << 30;

std::string fmt(const char* f, auto... args) {
    char buf[512];
    std::snprintf(buf, sizeof buf, f, args...);
    return buf;
}

std::string duration_text(double s) {
    if (!std::isfinite(s) || s < 0) return "?";
    const auto t = static_cast<int64_t>(s + 0.5);
    if (t >= 3600) return fmt("%lldh%02lldm", (long long)(t / 3600), (long long)(t % 3600 / 60));
    return fmt("%lldm%02llds", (long long)(t / 60), (long long)(t % 60));
}

torch::Tensor labels_tensor(const std::vector<int64_t>& v) { return torch::tensor(v, torch::kInt64); }
std::vector<int64_t> labels_vector(const torch::Tensor& t) {
    const auto c = t.contiguous();
    return {c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel()};
}

// Pseudo-label stability between cycles: NMI of the two labelings, noise points singletons.
double stability(const std::vector<int64_t>& prev, const std::vector<int64_t>& cur) {
    if (prev.size() != cur.size() || prev.empty()) return 0.0;
    const auto a = noise_as_singletons(prev), b = noise_as_singletons(cur);
    return clustering_quality(std::vector<int>(a.begin(), a.end()), std::vector<int>(b.begin(), b.end())).nmi;
}

std::vector<torch::Tensor> detached_clones(const std::vector<torch::Tensor>& v) {
    std::vector<torch::Tensor> out;
    for (const auto& t : v) out.push_back(t.detach().clone());
    return out;
}

// Seconds since the previous lap (or construction): times the parts of one step in sequence.
class LapClock {
public:
    double lap() {
        const auto now = Clock::now();
        const double s = std::chrono::duration<double>(now - last_).count();
        last_ = now;
        return s;
    }

private:
    Clock::time_point last_ = Clock::now();
};

// zero_grad, backward, then each student's fused L2-SP + Adam + EMA step (on the worker during
// backward when `overlap` is set; finish_step() does what is left). Returns each student's L2-SP
// penalty ||w - w0||^2 before the step (0 without anchors).
std::pair<double, double> backward_and_update(const torch::Tensor& loss, MeanTeacherAdam* opt1, MeanTeacherAdam* opt2,
                                              OverlappedUpdates* overlap, StepTimes& times, LapClock& lap) {
    for (auto* opt : {opt1, opt2})
        if (opt) {
            opt->zero_grad();
            opt->begin_step();
        }
    loss.backward();
    times.backward += lap.lap();
    if (overlap) overlap->wait();
    times.update_wait += lap.lap();
    const double pen1 = opt1->finish_step();
    times.update1 += lap.lap();
    times.overlapped += opt1->last_update_seconds();
    double pen2 = 0.0;
    if (opt2) {
        pen2 = opt2->finish_step();
        times.update2 += lap.lap();
        times.overlapped += opt2->last_update_seconds();
    }
    return {pen1, pen2};
}

}  // namespace

double StepTimes::total() const { return data + forward + losses + backward + update_wait + update1 + update2 + other; }

std::string StepTimes::text(int steps) const {
    const double k = steps > 0 ? 1e3 / steps : 0.0;
    return fmt("data %.1f, forward %.1f, losses %.1f, backward %.1f, update wait %.1f, update net1+mean1 %.1f, "
               "update net2+mean2 %.1f, other %.1f; total %.1f ms/step over %d steps (the L2-SP+Adam+EMA passes took "
               "%.1f, on CPU on the worker thread during backward)",
               data * k, forward * k, losses * k, backward * k, update_wait * k, update1 * k, update2 * k, other * k,
               total() * k, steps, overlapped * k);
}

void CoTrainOptions::validate() const {
    auto bad = [](const std::string& m) { throw std::invalid_argument("co-training options: " + m); };
    if (method != "mmt" && method != "naive") bad("method '" + method + "' is not mmt or naive");
    if (cycles < 1) bad("cycles must be >= 1");
    if (iters < 1) bad("iters must be >= 1");
    if (batch_ids < 2 || batch_per_id < 1) bad("batch_ids must be >= 2 and batch_per_id >= 1");
    if (!(lr_backbone >= 0) || !(lr_classifier >= 0)) bad("learning rates must be >= 0");
    if (soft_ce_weight < 0 || soft_ce_weight > 1 || soft_triplet_weight < 0 || soft_triplet_weight > 1)
        bad("soft_ce_weight and soft_triplet_weight must be in [0, 1]");
    if (label_smoothing < 0 || label_smoothing >= 1) bad("label_smoothing must be in [0, 1)");
    if (l2sp_alpha < 0 || naive_l2sp_alpha < 0 || distill_weight < 0) bad("l2sp_alpha / distill_weight must be >= 0");
    if (track_positive_weight < 0) bad("track_positive_weight must be >= 0");
    if (!(source_mix > 0 && source_mix <= 1)) bad("source_mix must be in (0, 1]");
    if (!(constraints.switch_quantile >= 0 && constraints.switch_quantile <= 1) || constraints.min_track_links < 1)
        bad("constraints.switch_quantile must be in [0, 1] and constraints.min_track_links >= 1");
    if (!(constraints.max_violation_rate > 0 && constraints.max_violation_rate <= 1) || constraints.min_rate_pairs < 1)
        bad("constraints.max_violation_rate must be in (0, 1] and constraints.min_rate_pairs >= 1");
    if (device != "cpu" && device != "cuda") bad("device '" + device + "' is not cpu or cuda");
    if (extract_batch < 1 || workers < 1 || prefetch < 1) bad("extract_batch, workers and prefetch must be >= 1");
    ema.at(0);  // throws for a bad rule / lambda
}

namespace {

std::shared_ptr<const ChipSource> tensor_source(const torch::Tensor& chips) {
    if (!chips.defined()) return nullptr;
    if (chips.dim() != 4 || chips.size(3) != 3 || chips.scalar_type() != torch::kUInt8)
        throw std::invalid_argument("CoTrainer: sets must be uint8 [N,150,150,3]");
    return std::make_shared<TensorChips>(chips.cpu().contiguous());
}

}  // namespace

CoTrainer::CoTrainer(const FaceResNet& source, torch::Tensor set1, torch::Tensor set2, CoTrainOptions options)
    : CoTrainer(source, tensor_source(set1), tensor_source(set2), std::move(options)) {}

CoTrainer::CoTrainer(const FaceResNet& source, std::shared_ptr<const ChipSource> set1,
                     std::shared_ptr<const ChipSource> set2, CoTrainOptions options)
    : o_(std::move(options)), device_(o_.device == "cuda" ? torch::kCUDA : torch::kCPU) {
    o_.validate();
    if (o_.device == "cuda" && !torch::cuda::is_available())
        throw std::invalid_argument("co-training options: device cuda requested but this libtorch sees no CUDA device");
    if (!set1 || set1->height() != kChipSize || set1->width() != kChipSize)
        throw std::invalid_argument("CoTrainer: set1 must be uint8 [N,150,150,3]");
    if (set1->size() < 2) throw std::invalid_argument("CoTrainer: needs at least 2 chips");
    if (!set2) set2 = set1;
    if (set2->size() != set1->size() || set2->height() != set1->height() || set2->width() != set1->width())
        throw std::invalid_argument("CoTrainer: set2 must have the shape of set1");
    set1_ = std::move(set1);
    set2_ = std::move(set2);
    if (!o_.checkpoint.empty()) data_fingerprint_ = content_fingerprint(*set1_);

    source_ = clone_face_resnet(source);
    source_->to(device_);
    source_->eval();
    net1_ = clone_face_resnet(source_);
    net1_->set_embedding_dropout(o_.dropout1);
    net1_->set_classifier_scale(o_.classifier_scale);
    start1_ = detached_clones(net1_->backbone_parameters());
    if (o_.method == "mmt") {
        net2_ = clone_face_resnet(source_);
        perturb_parameters(*net2_, o_.perturb_scale, mix_seed({o_.seed, 0xE7ull}));
        net2_->set_embedding_dropout(o_.dropout2);
        net2_->set_classifier_scale(o_.classifier_scale);
        start2_ = detached_clones(net2_->backbone_parameters());
        mean1_ = clone_face_resnet(net1_);
        mean2_ = clone_face_resnet(net2_);
        mean1_->eval();
        mean2_->eval();
    }
    if (o_.distill_weight > 0) {
        source_feat1_ = extract(source_, *set1_).to(device_);
        source_feat2_ = o_.method == "mmt" ? extract(source_, *set2_).to(device_) : source_feat1_;
    }
}

void CoTrainer::log(const std::string& line) const {
    if (log_) log_(line);
}

FaceResNet CoTrainer::net(int which) const {
    switch (which) {
        case 1: return net1_;
        case 2: return net2_;
        case 3: return mean1_;
        case 4: return mean2_;
        default: throw std::out_of_range("CoTrainer::net: 1..4");
    }
}

torch::Tensor CoTrainer::extract(FaceResNet& net, const ChipSource& set) {
    const auto t0 = Clock::now();
    torch::NoGradGuard ng;
    const bool was_training = net->is_training();
    net->eval();
    auto out = torch::empty({set.size(), kEmbeddingDim}, torch::kFloat32);
    for (int64_t s = 0; s < set.size(); s += o_.extract_batch) {
        const int64_t e = std::min(set.size(), s + o_.extract_batch);
        const auto x = chips_to_input(set.read_range(s, e)).to(device_);
        out.slice(0, s, e).copy_(F::normalize(net->forward(x), F::NormalizeFuncOptions().dim(1)).cpu());
    }
    net->train(was_training);
    phases_.embed += std::chrono::duration<double>(Clock::now() - t0).count();
    return out;
}

void CoTrainer::set_structure(SiteStructure structure) {
    if (structure.size() == 0 && structure.cannot.empty()) structure = SiteStructure{};  // explicitly none
    else structure.validate(set1_->size());
    structure_ = std::move(structure);
    structure_given_ = true;
}

std::vector<int64_t> CoTrainer::cluster_labels(const torch::Tensor& features, double* eps, bool constrained,
                                               bool* eps_lowered) {
    auto copt = o_.cluster;
    copt.seed = mix_seed({o_.seed, 0xC1ull, static_cast<uint64_t>(s_.cycle)});
    const auto t0 = Clock::now();
    ClusterResult r;
    if (constrained && !structure_.empty()) {
        EpsChoice c;
        r = cluster_within_cannot_links(features, copt, structure_, o_.constraints, &c);
        if (eps_lowered) *eps_lowered = c.steps > 0;
        if (c.steps > 0)
            log(fmt("eps lowered from %.3f to %.3f for the cannot-links: %lld -> %lld of %lld cannot-linked pairs in one "
                    "cluster (at most %.1f%% allowed)",
                    c.rule_eps, c.eps, (long long)c.rule_violations, (long long)c.violations, (long long)c.pairs,
                    100.0 * o_.constraints.max_violation_rate));
    } else {
        r = cluster_features(features, copt);
        if (eps_lowered) *eps_lowered = false;
    }
    phases_.cluster += std::chrono::duration<double>(Clock::now() - t0).count();
    if (eps) *eps = r.eps;
    return constrained ? constrain(features, std::move(r.labels)) : r.labels;
}

std::vector<int64_t> CoTrainer::constrain(const torch::Tensor& features, std::vector<int64_t> labels) {
    if (structure_.empty()) return labels;
    const auto t0 = Clock::now();
    ClusterResult r;
    r.labels = std::move(labels);
    r = apply_constraints(features, structure_, r, o_.constraints, &constraint_report_);
    const auto& c = constraint_report_;
    log(fmt("site constraints: %lld cannot-linked pairs (%lld in one cluster before, %lld after: %lld clusters split); "
            "%lld track cuts (switch threshold %.3f); %lld cluster joins; %lld noise adopted; %lld must-links refused",
            (long long)c.cannot_pairs, (long long)c.violations_before,
            (long long)count_violations(r.labels, cannot_link_pairs(structure_)), (long long)c.clusters_split,
            (long long)c.track_cuts, c.switch_threshold, (long long)c.clusters_joined, (long long)c.noise_adopted,
            (long long)c.refused_unions));
    phases_.cluster += std::chrono::duration<double>(Clock::now() - t0).count();
    return r.labels;
}

void CoTrainer::reset_classifiers(const torch::Tensor& features, const std::vector<int64_t>& labels) {
    int64_t c = 0;
    for (auto l : labels) c = std::max(c, l + 1);
    if (c == 0) throw std::runtime_error("co-training: clustering left every sample as noise");
    auto sums = torch::zeros({c, features.size(1)});
    std::vector<int64_t> keep, lab;
    for (size_t i = 0; i < labels.size(); ++i)
        if (labels[i] >= 0) keep.push_back(static_cast<int64_t>(i)), lab.push_back(labels[i]);
    sums.index_add_(0, labels_tensor(lab), features.index_select(0, labels_tensor(keep)));
    const auto centroids = F::normalize(sums, F::NormalizeFuncOptions().dim(1));
    for (auto* n : {&net1_, &net2_, &mean1_, &mean2_})
        if (*n) {
            (*n)->reset_classifier(centroids);
            // The old gradient has the old row count; libtorch's zero_grad() keeps it allocated.
            for (auto& p : (*n)->classifier_parameters()) p.mutable_grad() = torch::Tensor();
        }
}

void CoTrainer::build_optimisers() {
    const double alpha = o_.method == "mmt" ? o_.l2sp_alpha : o_.naive_l2sp_alpha;
    auto make = [&](FaceResNet& n, const std::vector<torch::Tensor>& start, FaceResNet& mean) {
        std::vector<torch::optim::OptimizerParamGroup> groups;
        groups.emplace_back(n->backbone_parameters(), std::make_unique<torch::optim::AdamOptions>(o_.lr_backbone));
        groups.emplace_back(n->classifier_parameters(), std::make_unique<torch::optim::AdamOptions>(o_.lr_classifier));
        // L2-SP anchors for the backbone (none when alpha is 0: nothing to read), none for the classifier.
        std::vector<torch::Tensor> anchors, means;
        if (alpha > 0) {
            anchors = start;
            anchors.resize(anchors.size() + n->classifier_parameters().size());
        }
        if (mean) {
            means = mean->backbone_parameters();
            for (const auto& p : mean->classifier_parameters()) means.push_back(p);
        }
        return std::make_unique<MeanTeacherAdam>(std::move(groups), torch::optim::AdamOptions(o_.lr_backbone),
                                                 std::move(anchors), std::move(means));
    };
    opt1_ = make(net1_, start1_, mean1_);
    opt2_ = net2_ ? make(net2_, start2_, mean2_) : nullptr;
}

void CoTrainer::start_cycle() {
    const auto t0 = Clock::now();
    CycleReport r;
    r.cycle = s_.cycle;
    const bool mmt = o_.method == "mmt";
    torch::Tensor features;
    std::vector<int64_t> own1, own2;
    double eps_own = 0;
    bool eps_lowered = false;
    if (mmt) {
        const auto f1 = extract(mean1_, *set1_), f2 = extract(mean2_, *set2_);
        features = F::normalize(f1 + f2, F::NormalizeFuncOptions().dim(1));
        own1 = cluster_labels(f1, &eps_own);
        own2 = cluster_labels(f2, &eps_own);
        s_.labels = cluster_labels(features, &r.eps, true, &eps_lowered);
    } else {
        // The merge fine-tune hands over the features it has just computed with these weights.
        features = known_features_.defined() ? std::exchange(known_features_, torch::Tensor()) : extract(net1_, *set1_);
        own1 = cluster_labels(features, &r.eps);
        s_.labels = constrain(features, own1);
    }
    if (!s_.own1.empty()) r.convergence1 = stability(s_.own1, own1);
    if (mmt && !s_.own2.empty()) r.convergence2 = stability(s_.own2, own2);
    s_.own1 = std::move(own1);
    s_.own2 = std::move(own2);
    for (auto l : s_.labels) r.clusters = std::max(r.clusters, l + 1);
    r.noise = std::count(s_.labels.begin(), s_.labels.end(), int64_t{-1});
    r.clustered = static_cast<int64_t>(s_.labels.size()) - r.noise;
    reset_classifiers(features, s_.labels);
    build_optimisers();
    r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    s_.reports.push_back(r);
    log(fmt("cycle %d/%d: %lld pseudo-identities over %lld images, %lld noise dropped, eps %.3f (%s); "
            "convergence (pseudo-label NMI vs previous cycle) net1 %.3f net2 %.3f; clustering took %.1f s",
            s_.cycle + 1, o_.cycles, (long long)r.clusters, (long long)r.clustered, (long long)r.noise, r.eps,
            o_.cluster.method == "kmeans" ? "kmeans"
            : eps_lowered                 ? (o_.cluster.eps_rule + ", lowered for the cannot-links").c_str()
                                          : o_.cluster.eps_rule.c_str(),
            r.convergence1, r.convergence2,
            r.seconds));
    if (progress_) progress_(TrainProgress{s_.cycle + 1, o_.cycles, 0, o_.iters});
}

double CoTrainer::train_steps(const std::atomic<bool>* stop, CycleReport& report) {
    const bool mmt = o_.method == "mmt";
    // The site's structure in the batches (constraints.hpp): cannot-linked pairs as negatives,
    // track pairs as positives across views.
    const bool linked = !structure_.empty() && o_.constraint_batches;
    SampleLinks links;
    if (linked) links = {structure_.track, cannot_link_pairs(structure_)};
    PkSampler sampler(s_.labels, o_.batch_ids, o_.batch_per_id, mix_seed({o_.seed, 0x5Aull}), linked ? &links : nullptr);
    const bool track_pull = mmt && !structure_.empty() && o_.track_positive_weight > 0;
    BatchPrefetcher prefetch(set1_, mmt ? set2_ : nullptr, s_.labels, sampler, o_.augment, o_.seed, s_.cycle,
                             s_.iter, o_.iters, o_.workers, o_.prefetch);
    net1_->train();
    if (net2_) net2_->train();
    const double a = o_.soft_ce_weight, b = o_.soft_triplet_weight;
    const double alpha = mmt ? o_.l2sp_alpha : o_.naive_l2sp_alpha;
    // On CPU the optimiser/EMA pass of each parameter runs on a worker thread as soon as backward
    // has its gradient, overlapping the rest of the backward pass (the second core is otherwise
    // only used by the prefetch workers). Bit-identical to running it after backward.
    std::unique_ptr<OverlappedUpdates> overlap;
    if (device_.is_cpu()) {
        std::vector<MeanTeacherAdam*> opts{opt1_.get()};
        if (opt2_) opts.push_back(opt2_.get());
        overlap = std::make_unique<OverlappedUpdates>(std::move(opts));
    }
    double sum1 = 0, sum2 = 0, step_seconds = 0;
    int done = 0;
    const auto cycle_t0 = Clock::now();
    while (s_.iter < o_.iters) {
        if (stop && stop->load()) return step_seconds;
        const auto t0 = Clock::now();
        LapClock lap;
        auto& times = report.step_times;
        auto batch = prefetch.next();
        torch::manual_seed(mix_seed({o_.seed, 0xD0ull, static_cast<uint64_t>(s_.cycle), static_cast<uint64_t>(s_.iter)}));
        const double lambda = mmt ? o_.ema.at(s_.step) : 1.0;
        opt1_->configure(alpha, lambda);
        if (opt2_) opt2_->configure(alpha, lambda);
        const auto y = batch.targets.to(device_);
        const auto x1 = batch.input1.to(device_);
        const auto x2 = mmt ? batch.input2.to(device_) : torch::Tensor();
        times.data += lap.lap();
        const auto f1 = net1_->forward(x1);
        const auto p1 = net1_->classify(f1);
        torch::Tensor loss1, loss2;
        std::string detail;
        // Similarity distillation (autograd). L2-SP is not in the graph: MeanTeacherAdam adds its
        // gradient 2 alpha (w - w0) and reports the penalty of the weights before the step.
        auto distillation = [&](const torch::Tensor& f, const torch::Tensor& src_feat) {
            if (o_.distill_weight <= 0) return torch::zeros({}, f.options());
            return o_.distill_weight * similarity_distillation(f, src_feat.index_select(0, batch.indices.to(device_)));
        };
        // One value read-out for all (one device sync on CUDA).
        auto values = [](std::initializer_list<torch::Tensor> ts) {
            const auto v = torch::stack(std::vector<torch::Tensor>(ts)).to(torch::kCPU, torch::kFloat64).contiguous();
            return std::vector<double>(v.data_ptr<double>(), v.data_ptr<double>() + v.numel());
        };
        double value1 = 0, value2 = 0;  // the step's total losses, L2-SP included
        if (mmt) {
            const auto f2 = net2_->forward(x2);
            const auto p2 = net2_->classify(f2);
            torch::Tensor f1m, p1m, f2m, p2m;
            {
                torch::NoGradGuard ng;
                f1m = mean1_->forward(x1);
                p1m = mean1_->classify(f1m);
                f2m = mean2_->forward(x2);
                p2m = mean2_->classify(f2m);
            }
            times.forward += lap.lap();
            const auto ce1 = label_smoothed_ce(p1, y, o_.label_smoothing), ce2 = label_smoothed_ce(p2, y, o_.label_smoothing);
            const auto sce1 = soft_ce(p1, p2m), sce2 = soft_ce(p2, p1m);
            const auto tri1 = softmax_triplet(f1, y, o_.triplet_scale), tri2 = softmax_triplet(f2, y, o_.triplet_scale);
            const auto stri1 = soft_triplet(f1, f2m, y, o_.triplet_scale), stri2 = soft_triplet(f2, f1m, y, o_.triplet_scale);
            const auto dis1 = distillation(f1, source_feat1_), dis2 = distillation(f2, source_feat2_);
            loss1 = (1 - a) * ce1 + a * sce1 + (1 - b) * tri1 + b * stri1 + dis1;
            loss2 = (1 - a) * ce2 + a * sce2 + (1 - b) * tri2 + b * stri2 + dis2;
            if (track_pull) {  // crops of one track and one pseudo-identity: net k's view against the other mean's
                std::vector<int64_t> first, second;
                const auto idx = batch.indices.contiguous();
                const auto tgt = batch.targets.contiguous();
                const int64_t* ip = idx.data_ptr<int64_t>();
                const int64_t* tp = tgt.data_ptr<int64_t>();
                for (int64_t u = 0; u < idx.numel(); ++u)
                    for (int64_t v = 0; v < idx.numel(); ++v)
                        if (ip[u] != ip[v] && tp[u] == tp[v] && structure_.track[ip[u]] >= 0 &&
                            structure_.track[ip[u]] == structure_.track[ip[v]])
                            first.push_back(u), second.push_back(v);
                if (!first.empty()) {
                    const auto fa = labels_tensor(first).to(device_), fb = labels_tensor(second).to(device_);
                    loss1 = loss1 + o_.track_positive_weight * cross_view_pull(f1, f2m, fa, fb);
                    loss2 = loss2 + o_.track_positive_weight * cross_view_pull(f2, f1m, fa, fb);
                }
            }
            times.losses += lap.lap();
            const auto [pen1, pen2] = backward_and_update(loss1 + loss2, opt1_.get(), opt2_.get(), overlap.get(), times, lap);
            copy_buffers(*mean1_, *net1_);  // none in FaceResNet; the EMA averages parameters only
            copy_buffers(*mean2_, *net2_);
            const auto v = values({loss1, loss2, ce1, sce1, tri1, stri1, dis1});
            const double reg1 = alpha * pen1 + v[6];
            value1 = v[0] + alpha * pen1;
            value2 = v[1] + alpha * pen2;
            detail = fmt("ce %.3f sce %.3f tri %.3f stri %.3f reg %.4f", v[2], v[3], v[4], v[5], reg1);
            sum2 += value2;
        } else {
            times.forward += lap.lap();
            const auto ce = label_smoothed_ce(p1, y, o_.label_smoothing);
            const auto tri = softmax_triplet(f1, y, o_.triplet_scale);
            const auto dis = distillation(f1, source_feat1_);
            loss1 = ce + tri + dis;
            times.losses += lap.lap();
            const double pen = backward_and_update(loss1, opt1_.get(), nullptr, overlap.get(), times, lap).first;
            const auto v = values({loss1, ce, tri, dis});
            value1 = v[0] + alpha * pen;
            detail = fmt("ce %.3f tri %.3f reg %.4f", v[1], v[2], alpha * pen + v[3]);
        }
        sum1 += value1;
        ++s_.step;
        ++s_.iter;
        ++done;
        const double this_step = std::chrono::duration<double>(Clock::now() - t0).count();
        step_seconds += this_step;
        report.step_seconds.push_back(this_step);
        const double ips = static_cast<double>(done * sampler.batch_size()) / step_seconds;
        if (s_.iter == o_.iters || s_.iter % std::max(1, o_.iters / 10) == 0) {
            const double per_iter = std::chrono::duration<double>(Clock::now() - cycle_t0).count() / done;
            const double left = per_iter * ((o_.iters - s_.iter) + double(o_.cycles - s_.cycle - 1) * o_.iters);
            const double l1 = value1, l2 = value2;
            log(fmt("cycle %d/%d iter %d/%d loss %.4f (net1 %.4f: %s%s) %.1f images/s ETA %s", s_.cycle + 1, o_.cycles,
                    s_.iter, o_.iters, l1 + l2, l1, detail.c_str(), mmt ? fmt("; net2 %.4f", l2).c_str() : "", ips,
                    duration_text(left).c_str()));
            if (progress_) progress_(TrainProgress{s_.cycle + 1, o_.cycles, s_.iter, o_.iters, l1 + l2, ips, left});
        }
        times.other += lap.lap();
        ++report.steps_timed;
    }
    report.loss1 = done ? sum1 / done : 0;
    report.loss2 = done ? sum2 / done : 0;
    report.images_per_s = step_seconds > 0 ? done * sampler.batch_size() / step_seconds : 0;
    report.prefetch_wait_s = prefetch.wait_seconds();
    return step_seconds;
}

TrainResult CoTrainer::run(const std::atomic<bool>* stop) {
    TrainResult result;
    const bool mmt = o_.method == "mmt";
    while (s_.cycle < o_.cycles) {
        if (stop && stop->load()) break;
        if (s_.iter == 0) start_cycle();
        const auto t0 = Clock::now();
        train_steps(stop, s_.reports.back());
        const double trained = std::chrono::duration<double>(Clock::now() - t0).count();
        s_.reports.back().seconds += trained;
        phases_.train += trained;
        if (s_.iter < o_.iters) break;  // stopped mid-cycle
        log(fmt("cycle %d/%d done: mean loss net1 %.3f net2 %.3f, co-training step %.1f images/s (prefetch wait %.2f s)",
                s_.cycle + 1, o_.cycles, s_.reports.back().loss1, s_.reports.back().loss2, s_.reports.back().images_per_s,
                s_.reports.back().prefetch_wait_s));
        ++s_.cycle;
        s_.iter = 0;
        if (!o_.checkpoint.empty()) save_checkpoint();
    }
    result.cycles = s_.reports;
    result.phases = phases_;
    if (s_.cycle < o_.cycles) {
        if (!o_.checkpoint.empty()) save_checkpoint();
        log(fmt("stopped at cycle %d iter %d; checkpoint %s", s_.cycle + 1, s_.iter, o_.checkpoint.string().c_str()));
        return result;
    }
    // Final convergence: the last mean models' own clustering against the previous one.
    if (mmt) {
        const auto f1 = extract(mean1_, *set1_), f2 = extract(mean2_, *set2_);
        const auto l1 = cluster_labels(f1, nullptr), l2 = cluster_labels(f2, nullptr);
        result.convergence1 = stability(s_.own1, l1);
        result.convergence2 = stability(s_.own2, l2);
        result.final_labels = cluster_labels(F::normalize(f1 + f2, F::NormalizeFuncOptions().dim(1)), nullptr, true);
        log(fmt("final convergence (pseudo-label NMI vs last cycle): mean1 %.4f mean2 %.4f", result.convergence1,
                result.convergence2));
        if (o_.merge) {
            const auto t0 = Clock::now();
            const auto before = phases_;
            result.model = merge_and_finetune(result.convergence1, result.convergence2, result.final_labels);
            result.chosen = "merged";
            // The merge's own embedding and clustering count as the merge.
            phases_.embed = before.embed;
            phases_.cluster = before.cluster;
            phases_.merge += std::chrono::duration<double>(Clock::now() - t0).count();
        } else {
            const bool first = result.convergence1 >= result.convergence2;
            result.model = clone_face_resnet(first ? mean1_ : mean2_);
            result.chosen = first ? "mean1" : "mean2";
        }
    } else {
        const auto f = extract(net1_, *set1_);
        result.final_labels = cluster_labels(f, nullptr);
        result.convergence1 = stability(s_.own1, result.final_labels);
        result.final_labels = constrain(f, std::move(result.final_labels));
        result.model = clone_face_resnet(net1_);
        result.chosen = "naive";
        log(fmt("final convergence (pseudo-label NMI vs last cycle): %.4f", result.convergence1));
    }
    if (o_.source_mix < 1) {
        result.model->to(device_);
        mix_toward(*result.model, *source_, o_.source_mix);
        result.chosen += fmt(", mixed %.2f toward the source", o_.source_mix);
        log(fmt("the result is the source + %.2f x (adapted - source)", o_.source_mix));
    }
    result.model->to(torch::kCPU);
    result.model->eval();
    result.finished = true;
    result.phases = phases_;
    return result;
}

FaceResNet CoTrainer::merge_and_finetune(double c1, double c2, const std::vector<int64_t>& last_labels) {
    const double w1 = c1 + c2 > 0 ? c1 / (c1 + c2) : 0.5;
    log(fmt("merge (claim 6): w1 = c1/(c1+c2) = %.3f, w2 = %.3f", w1, 1 - w1));
    auto merged = clone_face_resnet(mean1_);
    ema_update(*merged, *mean2_, w1);  // merged = w1 * mean1 + (1 - w1) * mean2
    // Claim 6 trains the merged model on the last pseudo-labelled set UNTIL its convergence
    // exceeds the preset value, so the condition is checked first: the merged model's own
    // clustering against the last pseudo-labels. Fine-tuning (the merged net alone, hard
    // pseudo-labels, L2-SP toward the merged weights) runs only while it falls short: on Yale B
    // one such round cost 2.4 LFW points and 0.8 rank-1 points (docs/learner.md).
    auto features = extract(merged, *set1_);
    auto labels = cluster_labels(features, nullptr, true);
    double conv = stability(last_labels, labels);
    log(fmt("merged model: convergence %.4f against the last pseudo-labels (target %.3f)", conv, o_.merge_convergence));
    if (conv >= o_.merge_convergence) return merged;
    CoTrainOptions fo = o_;
    fo.method = "naive";
    fo.naive_l2sp_alpha = o_.l2sp_alpha;
    fo.cycles = o_.merge_max_cycles;
    fo.checkpoint.clear();
    fo.merge = false;
    CoTrainer tuner(merged, set1_, std::shared_ptr<const ChipSource>(), fo);
    tuner.set_log(log_);
    tuner.structure_ = structure_;
    for (int c = 0; c < fo.cycles && conv < o_.merge_convergence; ++c) {
        tuner.s_.own1 = labels;
        // The tuner's net is (still) the net these features came from: its embedding pass at
        // the start of the round would compute them again.
        tuner.known_features_ = features;
        tuner.start_cycle();
        CycleReport r;
        tuner.train_steps(nullptr, r);
        tuner.s_.iter = 0;
        ++tuner.s_.cycle;
        features = extract(tuner.net1_, *set1_);
        auto now = cluster_labels(features, nullptr, true);
        conv = stability(labels, now);
        log(fmt("merged fine-tune round %d: convergence %.4f (target %.3f)", c + 1, conv, o_.merge_convergence));
        labels = std::move(now);
    }
    return clone_face_resnet(tuner.net1_);
}

int64_t CoTrainState::classes() const {
    int64_t c = 0;
    for (auto l : labels) c = std::max(c, l + 1);
    return c;
}

namespace {
constexpr int64_t kReportFields = 12;
}

void CoTrainState::save(torch::serialize::OutputArchive& ar) const {
    auto scalar = [&](const char* k, int64_t v) { ar.write(k, torch::tensor(v, torch::kInt64)); };
    scalar("cycle", cycle);
    scalar("iter", iter);
    scalar("step", step);
    scalar("classes", classes());
    ar.write("labels", labels_tensor(labels));
    ar.write("own1", labels_tensor(own1));
    ar.write("own2", labels_tensor(own2));
    std::vector<double> rep;
    for (const auto& r : reports)
        rep.insert(rep.end(), {double(r.cycle), double(r.clusters), double(r.noise), double(r.clustered), r.eps,
                               r.convergence1, r.convergence2, r.loss1, r.loss2, r.images_per_s, r.prefetch_wait_s,
                               r.seconds});
    ar.write("reports", torch::tensor(rep, torch::kFloat64));
}

void CoTrainState::load(torch::serialize::InputArchive& ar, const std::string& where) {
    auto tensor = [&](const char* k) {
        torch::Tensor t;  // a fresh tensor: read() into a defined one keeps its dtype
        if (!ar.try_read(k, t)) throw std::runtime_error("resume: checkpoint " + where + " lacks '" + k + "'");
        return t;
    };
    auto scalar = [&](const char* k) { return tensor(k).item<int64_t>(); };
    CoTrainState s;
    s.cycle = static_cast<int>(scalar("cycle"));
    s.iter = static_cast<int>(scalar("iter"));
    s.step = scalar("step");
    s.labels = labels_vector(tensor("labels"));
    s.own1 = labels_vector(tensor("own1"));
    s.own2 = labels_vector(tensor("own2"));
    const auto rep = tensor("reports").to(torch::kFloat64).contiguous();
    if (rep.numel() % kReportFields != 0)
        throw std::runtime_error("resume: checkpoint " + where + " has malformed cycle reports");
    for (int64_t i = 0; i + kReportFields <= rep.numel(); i += kReportFields) {
        const double* r = rep.data_ptr<double>() + i;
        s.reports.push_back({static_cast<int>(r[0]), static_cast<int64_t>(r[1]), static_cast<int64_t>(r[2]),
                             static_cast<int64_t>(r[3]), r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], StepTimes{}, 0, {}});
    }
    if (s.cycle < 0 || s.iter < 0 || s.step < 0 || scalar("classes") != s.classes())
        throw std::runtime_error("resume: checkpoint " + where + " has an inconsistent state");
    *this = std::move(s);
}

namespace {

// Streams the archive into a temp file next to `target`, fsyncs it, renames it over the target
// and fsyncs the folder: common::write_file_atomic's protocol, without first building the whole
// archive (four nets and two optimisers, about 200 MB) in memory.
void save_archive_durably(torch::serialize::OutputArchive& ar, const std::filesystem::path& target) {
    const auto dir = target.has_parent_path() ? target.parent_path() : std::filesystem::path(".");
    const auto tmp = dir / ("." + target.filename().string() + "." + common::unique_token() +
                            std::string(common::kTempSuffix));
    common::UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!fd.valid()) throw std::runtime_error("cannot write checkpoint " + tmp.string() + ": " + std::strerror(errno));
    int error = 0;
    try {
        ar.save_to([&](const void* data, size_t n) -> size_t {
            const auto* p = static_cast<const char*>(data);
            size_t left = n;
            while (left > 0 && error == 0) {
                const ssize_t put = ::write(fd.get(), p, left);
                if (put < 0 && errno == EINTR) continue;
                if (put <= 0) error = put < 0 ? errno : EIO;
                else p += put, left -= static_cast<size_t>(put);
            }
            return error ? 0 : n;
        });
        if (error == 0 && ::fsync(fd.get()) != 0) error = errno;
    } catch (const std::exception& e) {
        fd.reset();
        std::filesystem::remove(tmp);
        throw std::runtime_error("cannot write checkpoint " + tmp.string() + ": " + e.what());
    }
    fd.reset();
    std::error_code ec;
    if (error == 0) std::filesystem::rename(tmp, target, ec);
    if (error != 0 || ec) {
        std::filesystem::remove(tmp);
        throw std::runtime_error("cannot write checkpoint " + target.string() + ": " +
                                 (error ? std::strerror(error) : ec.message()));
    }
    common::sync_directory(dir);
}

}  // namespace

void CoTrainer::save_checkpoint() const {
    const auto t0 = Clock::now();
    torch::serialize::OutputArchive ar;
    auto scalar = [&](const char* k, int64_t v) { ar.write(k, torch::tensor(v, torch::kInt64)); };
    scalar("format", kCheckpointFormat);
    scalar("seed", static_cast<int64_t>(o_.seed));
    scalar("mmt", o_.method == "mmt");
    scalar("data", static_cast<int64_t>(data_fingerprint_));
    s_.save(ar);
    if (!structure_.empty()) {  // the site structure the run's pseudo-labels obey (absent: none)
        ar.write("site_track", labels_tensor(structure_.track));
        ar.write("site_time", labels_tensor(structure_.time_ms));
        ar.write("site_frame", labels_tensor(structure_.frame));
        ar.write("site_named", labels_tensor(structure_.named));
        std::vector<int64_t> flat;
        for (const auto& [a, b] : structure_.cannot) flat.insert(flat.end(), {a, b});
        ar.write("site_cannot", labels_tensor(flat));
    }
    auto put_net = [&](const char* k, const FaceResNet& n) {
        if (!n) return;
        torch::serialize::OutputArchive a;
        n->save(a);
        ar.write(k, a);
    };
    put_net("net1", net1_);
    put_net("net2", net2_);
    put_net("mean1", mean1_);
    put_net("mean2", mean2_);
    // MeanTeacherAdam writes torch::optim::Adam's archive: checkpoints of either load in both.
    auto put_opt = [&](const char* k, const std::unique_ptr<MeanTeacherAdam>& opt) {
        if (!opt) return;
        torch::serialize::OutputArchive a;
        opt->save(a);
        ar.write(k, a);
    };
    put_opt("opt1", opt1_);
    put_opt("opt2", opt2_);
    save_archive_durably(ar, o_.checkpoint);
    phases_.checkpoint += std::chrono::duration<double>(Clock::now() - t0).count();
}

void CoTrainer::resume() {
    const auto& path = o_.checkpoint;
    if (path.empty() || !std::filesystem::exists(path))
        throw std::runtime_error("resume: checkpoint '" + path.string() + "' does not exist");
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    if (ec || size > kMaxCheckpointBytes)
        throw std::runtime_error("resume: checkpoint " + path.string() + ": " +
                                 (ec ? ec.message() : std::to_string(size) + " bytes (at most " +
                                                          std::to_string(kMaxCheckpointBytes) + ")"));
    // libtorch trusts the archive's lengths and counts (a pickle string length is allocated as
    // read): checked first, and the checked bytes are what is loaded (torch_archive_check.hpp).
    const std::string bytes = common::read_file(path);
    try {
        detail::check_torch_archive(bytes);
    } catch (const std::exception& e) {
        throw std::runtime_error("resume: checkpoint " + path.string() + " is refused: " + e.what());
    }
    torch::serialize::InputArchive ar;
    try {
        ar.load_from(bytes.data(), bytes.size());
    } catch (const std::exception& e) {
        throw std::runtime_error("resume: cannot read checkpoint " + path.string() + ": " + e.what());
    }
    auto scalar = [&](const char* k) {
        torch::Tensor t;
        if (!ar.try_read(k, t)) throw std::runtime_error("resume: checkpoint " + path.string() + " lacks '" + k + "'");
        return t.item<int64_t>();
    };
    if (scalar("format") != kCheckpointFormat)
        throw std::runtime_error("resume: checkpoint " + path.string() + " has an unknown format");
    if (scalar("seed") != static_cast<int64_t>(o_.seed) || scalar("mmt") != (o_.method == "mmt") ||
        scalar("data") != static_cast<int64_t>(data_fingerprint_))
        throw std::runtime_error("resume: checkpoint " + path.string() +
                                 " was made with another seed, method or data set");
    SiteStructure saved;
    if (torch::Tensor t; ar.try_read("site_track", t)) {
        auto vec = [&](const char* k) {
            torch::Tensor v;
            if (!ar.try_read(k, v)) throw std::runtime_error("resume: checkpoint " + path.string() + " lacks '" + k + "'");
            return labels_vector(v.to(torch::kInt64));
        };
        saved.track = labels_vector(t.to(torch::kInt64));
        saved.time_ms = vec("site_time");
        saved.frame = vec("site_frame");
        saved.named = vec("site_named");
        const auto flat = vec("site_cannot");
        if (flat.size() % 2 != 0) throw std::runtime_error("resume: checkpoint " + path.string() + " has malformed site_cannot");
        for (size_t k = 0; k < flat.size(); k += 2) saved.cannot.emplace_back(flat[k], flat[k + 1]);
        try {
            saved.validate(set1_->size());
        } catch (const std::invalid_argument& e) {
            throw std::runtime_error("resume: checkpoint " + path.string() + ": " + e.what());
        }
    }
    if (!structure_given_) structure_ = std::move(saved);
    else if (!(saved.empty() && structure_.empty()) && !(saved == structure_))
        throw std::runtime_error("resume: checkpoint " + path.string() + " was made with other site constraints");
    CoTrainState state;
    state.load(ar, path.string());
    if (static_cast<int64_t>(state.labels.size()) != set1_->size() && !state.labels.empty())
        throw std::runtime_error("resume: checkpoint " + path.string() + " has labels for another number of chips");
    const int64_t classes = state.classes();
    auto get_net = [&](const char* k, FaceResNet& n) {
        if (!n) return;
        if (classes > 0) n->reset_classifier(torch::ones({classes, kEmbeddingDim}));
        torch::serialize::InputArchive a;
        if (!ar.try_read(k, a)) throw std::runtime_error("resume: checkpoint " + path.string() + " lacks " + k);
        n->load(a);
        n->to(device_);
    };
    get_net("net1", net1_);
    get_net("net2", net2_);
    get_net("mean1", mean1_);
    get_net("mean2", mean2_);
    s_ = std::move(state);
    if (s_.iter > 0) {
        build_optimisers();
        auto get_opt = [&](const char* k, std::unique_ptr<MeanTeacherAdam>& opt) {
            if (!opt) return;
            torch::serialize::InputArchive a;
            if (!ar.try_read(k, a)) throw std::runtime_error("resume: checkpoint " + path.string() + " lacks " + k);
            opt->load(a);
        };
        get_opt("opt1", opt1_);
        get_opt("opt2", opt2_);
    }
    log(fmt("resumed from %s at cycle %d iter %d (step %lld)", path.string().c_str(), s_.cycle + 1, s_.iter,
            (long long)s_.step));
}

}  // namespace faceadapt::learner
