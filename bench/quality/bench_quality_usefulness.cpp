// Is the quality score useful? On Extended Yale B (../shared/datasets/yaleb), crops scoring above
// the default threshold should lie closer to their own identity (source model embeddings) than
// crops scoring below it. Prints both means, the Spearman rank correlation between the score and
// the chip's mean same-identity distance, and the same correlation for each single feature.
//
//   bench_quality_usefulness [--per-id N] [--offset K] [--cache FILE] [--config FILE]
//
// --per-id: images per identity, evenly spaced (default 16; 0 = all 64).
// --offset: shift the evenly spaced picks by K files (--per-id 32 --offset 1 takes the odd-numbered
//           files: held out from the even-numbered ones the tables were tuned on).
// --cache:  detection + embedding results are stored there and reused (scoring-only reruns).
// --config: a site TOML whose [quality] tables are scored as well.
// Scores with config::QualityConfig's defaults (the tables tuned here), in both step-130 forms.
// Skips (exit 0, a message) when the dataset or the source weights are absent.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include <opencv2/imgcodecs.hpp>

#include "bench_datasets.hpp"
#include "faceadapt/config/config.hpp"
#include "faceadapt/ingest/face_aligner.hpp"
#include "faceadapt/learner/embedder.hpp"
#include "faceadapt/quality/quality.hpp"

namespace fs = std::filesystem;
namespace q = faceadapt::quality;

namespace {

struct Sample {
    std::string identity;
    std::string file;
    q::QualityFeatures f;
    faceadapt::learner::Embedding e{};
    double same_distance = 0.0;
};

std::vector<double> ranks(const std::vector<double>& v) {
    std::vector<std::size_t> idx(v.size());
    std::iota(idx.begin(), idx.end(), 0);
    std::sort(idx.begin(), idx.end(), [&](auto a, auto b) { return v[a] < v[b]; });
    std::vector<double> r(v.size());
    for (std::size_t i = 0; i < idx.size();) {
        std::size_t j = i;
        while (j + 1 < idx.size() && v[idx[j + 1]] == v[idx[i]]) ++j;
        for (std::size_t k = i; k <= j; ++k) r[idx[k]] = (i + j) / 2.0;
        i = j + 1;
    }
    return r;
}

double pearson(const std::vector<double>& a, const std::vector<double>& b) {
    const double n = static_cast<double>(a.size());
    const double ma = std::accumulate(a.begin(), a.end(), 0.0) / n;
    const double mb = std::accumulate(b.begin(), b.end(), 0.0) / n;
    double sab = 0, saa = 0, sbb = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        sab += (a[i] - ma) * (b[i] - mb);
        saa += (a[i] - ma) * (a[i] - ma);
        sbb += (b[i] - mb) * (b[i] - mb);
    }
    return saa > 0 && sbb > 0 ? sab / std::sqrt(saa * sbb) : 0.0;
}

double spearman(const std::vector<double>& a, const std::vector<double>& b) { return pearson(ranks(a), ranks(b)); }

#define FEATURES(X) X(yaw_deg) X(pitch_deg) X(roll_deg) X(deviation_deg) X(integrity) X(landmark_density) \
    X(density) X(entropy) X(sharpness) X(exposure) X(contrast) X(ambient)

void save_cache(const fs::path& file, const std::vector<Sample>& samples) {
    std::ofstream out(file);
    for (const auto& s : samples) {
        out << s.identity << ' ' << s.file;
#define X(n) out << ' ' << s.f.n;
        FEATURES(X)
#undef X
        for (float v : s.e) out << ' ' << v;
        out << '\n';
    }
}

std::vector<Sample> load_cache(const fs::path& file) {
    std::vector<Sample> samples;
    std::ifstream in(file);
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream ss(line);
        Sample s;
        ss >> s.identity >> s.file;
#define X(n) ss >> s.f.n;
        FEATURES(X)
#undef X
        for (float& v : s.e) ss >> v;
        if (ss) samples.push_back(std::move(s));
    }
    return samples;
}

void report(const std::string& label, const faceadapt::config::QualityConfig& qc, const std::vector<Sample>& samples) {
    const q::QualityScorer scorer(qc);
    std::printf("== %s\n", label.c_str());
    std::vector<double> score, dist;
    double above_sum = 0, below_sum = 0;
    int above = 0, below = 0;
    for (const auto& s : samples) {
        const auto r = scorer.score(s.f);
        score.push_back(r.normalized);
        dist.push_back(s.same_distance);
        if (r.accepted) above_sum += s.same_distance, ++above;
        else below_sum += s.same_distance, ++below;
    }
    std::printf("threshold %.3f (coefficient_form %s)\n", qc.threshold, qc.coefficient_form.c_str());
    std::printf("crops above threshold: %d, mean same-identity distance %.4f\n", above, above ? above_sum / above : NAN);
    std::printf("crops below threshold: %d, mean same-identity distance %.4f\n", below, below ? below_sum / below : NAN);
    std::printf("Spearman(score, mean same-identity distance) = %.4f over %zu crops\n", spearman(score, dist),
                samples.size());
    const bool holds = above > 0 && below > 0 && above_sum / above < below_sum / below;
    std::printf("usefulness %s: above-threshold crops are %s their identity\n", holds ? "HOLDS" : "FAILS",
                holds ? "closer to" : "NOT closer to");
}

}  // namespace

int main(int argc, char** argv) {
    int per_id = 16;
    std::size_t offset = 0;
    fs::path cache, config_file;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i];
        if (a == "--per-id") per_id = std::stoi(argv[i + 1]);
        else if (a == "--offset") offset = std::stoul(argv[i + 1]);
        else if (a == "--cache") cache = argv[i + 1];
        else if (a == "--config") config_file = argv[i + 1];
    }
    const fs::path yaleb = fs::path(FACEADAPT_SHARED_DIR) / "datasets" / "yaleb";

    std::vector<Sample> samples;
    if (!cache.empty() && fs::exists(cache)) {
        samples = load_cache(cache);
        std::printf("loaded %zu samples from %s\n", samples.size(), cache.c_str());
    } else {
        if (!faceadapt::bench::dataset_present(yaleb)) return 0;
        const auto embedder = faceadapt::bench::source_embedder_or_skip();
        if (!embedder) return 0;
        const faceadapt::ingest::FaceAligner aligner;
        const auto ids = faceadapt::bench::sorted_subfolders(yaleb);
        const auto t0 = std::chrono::steady_clock::now();
        int tried = 0;
        std::vector<cv::Mat> chips;
        for (const auto& id : ids) {
            std::vector<fs::path> files;
            for (const auto& f : fs::directory_iterator(id))
                if (f.path().extension() == ".png") files.push_back(f.path());
            std::sort(files.begin(), files.end());
            const std::size_t take = per_id > 0 ? std::min<std::size_t>(per_id, files.size()) : files.size();
            for (std::size_t k = 0; k < take; ++k) {
                const auto& file = files[(k * files.size() / take + offset) % files.size()];
                const cv::Mat img = cv::imread(file.string(), cv::IMREAD_COLOR);
                ++tried;
                if (img.empty()) continue;
                const auto faces = aligner.detect(img);
                if (faces.empty()) continue;
                const auto& face = faces.front();
                Sample s;
                s.identity = id.filename().string();
                s.file = file.filename().string();
                s.f = q::compute_features(q::observation_from_still(img, face.bbox, face.landmarks, face.chip));
                samples.push_back(std::move(s));
                chips.push_back(face.chip);
            }
        }
        const auto embeddings = embedder->embed(chips);
        for (std::size_t i = 0; i < samples.size(); ++i) samples[i].e = embeddings[i];
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::printf("detected+embedded %zu of %d images in %.1f s\n", samples.size(), tried, secs);
        if (!cache.empty()) save_cache(cache, samples);
    }
    if (samples.size() < 20) {
        std::printf("SKIP: too few faces (%zu)\n", samples.size());
        return 0;
    }
    // Each chip's mean distance to the other chips of its identity.
    std::map<std::string, std::vector<std::size_t>> by_id;
    for (std::size_t i = 0; i < samples.size(); ++i) by_id[samples[i].identity].push_back(i);
    for (auto& [id, members] : by_id)
        for (auto i : members) {
            double sum = 0;
            int n = 0;
            for (auto j : members)
                if (j != i) sum += faceadapt::learner::euclidean_distance(samples[i].e, samples[j].e), ++n;
            samples[i].same_distance = n ? sum / n : 0.0;
        }
    std::vector<double> dist_all;
    for (const auto& s : samples) dist_all.push_back(s.same_distance);
    std::vector<std::pair<std::string, faceadapt::config::QualityConfig>> configs = {
        {"config.hpp defaults (tuned on Yale B)", {}}};
    faceadapt::config::QualityConfig percent;
    percent.coefficient_form = "percent";
    configs.emplace_back("defaults, percent form of step 130", percent);
    if (!config_file.empty()) configs.emplace_back(config_file.string(), faceadapt::config::load_config(config_file).quality);
    std::printf("per feature Spearman with the distance:");
#define X(n)                                                                       \
    {                                                                              \
        std::vector<double> v;                                                     \
        for (const auto& s : samples) v.push_back(s.f.n);                          \
        std::printf(" %s %.3f", #n, spearman(v, dist_all));                            \
    }
    FEATURES(X)
#undef X
    std::printf("\n");
    for (const auto& [label, qc] : configs) report(label, qc, samples);
    return 0;
}
