// adapt_benchmark: the Yale B site-adaptation benchmark of issue 4 (run by scripts/bench-adapt).
//
// Protocol: ../shared/datasets/yaleb, per identity, image files sorted by name; even positions
// are the adapt set (labels unused for training), odd positions the test set. Rows: the source
// model, naive self-training, MMT co-training. Columns: test TAR at FAR 1e-3, test rank-1,
// pseudo-label pairwise F on the adapt set, LFW devtest pairs accuracy (10 folds), wall time.
// Chips are aligned once (dlib HOG + 68 landmarks, pad-and-equalise retry) into a cache folder
// of FACHIPS1 files; images without a detected face fall back to a padded resize of the whole
// (tightly cropped) image, counted and printed. In a learner-only build the cache must exist.
// Also prints the co-training step's images/s beside the forward/backward limit of the same
// four nets on the same batch, and (issue 12) the open-set door table of open_set.hpp: source and
// mmt at the legacy 0.6 and at their calibrated thresholds for door FAR targets 1e-2 and 1e-3,
// through the site's own pipeline (SiteView: detector, crop store quality gate, enrollment gate;
// `--raw-open-set`: every image as is; docs/operating-point.md, section 6), over
// `--open-set-folds K` rotated enrolled/stranger splits of the identities (default 30; 1: the
// single split), pooled (open_set_folds.hpp).
// Issue 15 (`--methods mmt+c --switch-rates 0,0.05,0.15`): the adapt set becomes a simulated
// site (learner::simulate_site: tracks of 3-8 consecutive images of one identity in file-name
// order, the given share of them switching identity, scenes of 2-4 tracks sharing frames),
// written as a snapshot index.csv under the cache and read back as `faceadapt train --data`
// reads one, and MMT trains with its constraints. Labels only build it and score.
// `--models DIR` (a folder outside the repository): every adapted model is saved there as
// <row>-c<cycles>-i<iters>-s<seed>.model and loaded instead of trained when it is there (other
// options are not in the name: use another folder when changing them), and each row's open-set
// embeddings are kept there too; `--open-set-only` then skips the verification of the source and
// of loaded models (a model it trains is still verified once), so the door table can be
// re-measured in seconds after a change to calib/ or open_set.hpp.
// `--calib-holdout F` (issue 12, held-out calibration): the adapted models train without a seeded
// share F of the adapt half's tracks of kept crops (open_set.hpp, make_calibration_holdout; their
// model files get -h<F%>), and the door table's same-frame pairs come from those tracks only.
// `--door-quality-gate`: the door answers retry (counted apart) for a probe the crop store would
// not keep, as faceadapt-door match does.
// `--max-violation-rate R` (constraint rows): the share of cannot-linked pairs one clustering may
// hold before its eps is lowered (ConstraintOptions::max_violation_rate, default 0.01; 1 = the
// eps rule as is, the rows measured before 2026-12-07 22:00). Constraint-row model files with a
// rate below 1 get -v<R x 1000>.
// The simulated frames' same-frame pairs are counted once each (a repeated frame shows the same
// two faces again); `--count-frame-repeats` counts every repeat, as the tables before 2026-12-07.
// `--dataset orl` (issue 15's "no regression on the easy set"): the same protocol on
// ../shared/datasets/orl (same halves, its chips as orl_* files beside Yale B's in the cache,
// the same LFW devtest column); the open-set table is Yale B's only and is skipped, saying so.
#include <atomic>
#include <chrono>
#include <cstring>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include <torch/torch.h>

#include "open_set_folds.hpp"
#include "faceadapt/learner/cluster.hpp"
#include "faceadapt/learner/cotrainer.hpp"
#include "faceadapt/learner/ema.hpp"
#include "faceadapt/learner/eval.hpp"
#include "faceadapt/learner/losses.hpp"
#include "faceadapt/learner/model_file.hpp"
#include "faceadapt/learner/site_simulation.hpp"
#include "faceadapt/learner/site_snapshot.hpp"
#include "faceadapt/learner/weights_import.hpp"
#include "cotrain_speed.hpp"

#ifdef FACEADAPT_HAVE_INGEST
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "faceadapt/ingest/face_aligner.hpp"
#include "faceadapt/ingest/face_landmarks.hpp"
#endif
#ifdef FACEADAPT_HAVE_QUALITY
#include "faceadapt/quality/enroll_gate.hpp"
#include "faceadapt/quality/quality.hpp"
#endif

namespace fs = std::filesystem;
namespace fl = faceadapt::learner;
using Clock = std::chrono::steady_clock;

namespace {

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct Split {
    torch::Tensor chips;      // uint8 [N,150,150,3]
    std::vector<int> labels;  // identity index
};

[[maybe_unused]] void write_labels(const fs::path& p, const std::vector<int>& v) {
    std::ofstream out(p);
    for (int x : v) out << x << "\n";
}
std::vector<int> read_labels(const fs::path& p) {
    std::ifstream in(p);
    if (!in) throw std::runtime_error("cannot read " + p.string());
    std::vector<int> v;
    for (int x; in >> x;) v.push_back(x);
    return v;
}

#ifdef FACEADAPT_HAVE_INGEST
// Aligns each file (largest face); fallback: pad by 12% and resize the whole image.
torch::Tensor align_files(const std::vector<fs::path>& files, int& fallbacks, bool lfw) {
    auto landmarks = std::make_shared<const faceadapt::ingest::LandmarkModel>();
    auto out = torch::empty({static_cast<int64_t>(files.size()), 150, 150, 3}, torch::kUInt8);
    std::atomic<size_t> next{0};
    std::atomic<int> fb{0};
    std::vector<std::thread> threads;
    for (unsigned w = 0; w < std::max(1u, std::thread::hardware_concurrency()); ++w)
        threads.emplace_back([&] {
            faceadapt::ingest::FaceAligner aligner(landmarks);
            for (size_t i = next++; i < files.size(); i = next++) {
                cv::Mat img = cv::imread(files[i].string(), cv::IMREAD_COLOR), chip;
                if (img.empty()) throw std::runtime_error("cannot read " + files[i].string());
                auto faces = aligner.detect(img);
                if (!faces.empty()) {
                    chip = faces.front().chip;
                } else {
                    ++fb;
                    cv::Mat rgb, padded;
                    cv::cvtColor(img, rgb, cv::COLOR_BGR2RGB);
                    if (lfw) {  // LFW: the centre 110 px (the face) as the prototype did
                        rgb = rgb(cv::Rect((rgb.cols - 110) / 2, (rgb.rows - 110) / 2, 110, 110)).clone();
                    }
                    const int px = rgb.cols * 12 / 100, py = rgb.rows * 12 / 100;
                    cv::copyMakeBorder(rgb, padded, py, py, px, px, cv::BORDER_CONSTANT, cv::Scalar(0, 0, 0));
                    cv::resize(padded, chip, cv::Size(150, 150), 0, 0, cv::INTER_AREA);
                }
                cv::Mat dst(150, 150, CV_8UC3, out[static_cast<int64_t>(i)].data_ptr<uint8_t>());
                chip.copyTo(dst);
                if ((i + 1) % 100 == 0) std::fprintf(stderr, "  aligned %zu/%zu\n", i + 1, files.size());
            }
        });
    for (auto& t : threads) t.join();
    fallbacks = fb;
    return out;
}
#endif

// A labelled set's halves (`set`: one folder per identity): per identity (folders sorted),
// files sorted by name, even positions adapt, odd test.
void list_halves(const fs::path& set, int identities, std::vector<fs::path>& adapt_files, std::vector<fs::path>& test_files,
                 std::vector<int>& adapt_labels, std::vector<int>& test_labels) {
    std::vector<fs::path> ids;
    if (!fs::is_directory(set)) throw std::runtime_error("dataset folder " + set.string() + " is missing");
    for (const auto& e : fs::directory_iterator(set))
        if (e.is_directory()) ids.push_back(e.path());
    std::sort(ids.begin(), ids.end());
    if (identities > 0 && static_cast<size_t>(identities) < ids.size()) ids.resize(identities);
    for (size_t k = 0; k < ids.size(); ++k) {
        std::vector<fs::path> files;
        for (const auto& e : fs::directory_iterator(ids[k])) {
            auto ext = e.path().extension().string();
            if (ext == ".png" || ext == ".pgm" || ext == ".jpg") files.push_back(e.path());
        }
        std::sort(files.begin(), files.end(), [](const auto& a, const auto& b) { return a.filename() < b.filename(); });
        for (size_t i = 0; i < files.size(); ++i) {
            (i % 2 == 0 ? adapt_files : test_files).push_back(files[i]);
            (i % 2 == 0 ? adapt_labels : test_labels).push_back(static_cast<int>(k));
        }
    }
}
// The Yale B halves (list_halves of ../shared/datasets/yaleb).
void list_yaleb(const fs::path& shared, int identities, std::vector<fs::path>& adapt_files, std::vector<fs::path>& test_files,
                std::vector<int>& adapt_labels, std::vector<int>& test_labels) {
    list_halves(shared / "datasets/yaleb", identities, adapt_files, test_files, adapt_labels, test_labels);
}

// What a site's own pipeline makes of each Yale B image (issue 12's open-set table): whether
// FaceAligner::detect finds a face (the door answers no_face otherwise; the site stores no crop),
// whether the crop store's quality gate ([quality] defaults, QualityScorer) keeps the crop, and
// whether the enrollment gate ([enroll] defaults, judge_enrollment) would take it as an
// enrollment photo. Kept as yaleb_{adapt,test}.site in the cache ("detected kept enrollable"
// per line); computed once (a few minutes: the HOG detector on every image).
struct SiteView {
    std::vector<char> detected, kept, enrollable;
};

SiteView read_site_view(const fs::path& p) {
    SiteView v;
    std::ifstream in(p);
    for (int a, b, c; in >> a >> b >> c;) v.detected.push_back(char(a)), v.kept.push_back(char(b)), v.enrollable.push_back(char(c));
    return v;
}

#if defined(FACEADAPT_HAVE_INGEST) && defined(FACEADAPT_HAVE_QUALITY)
SiteView compute_site_view(const std::vector<fs::path>& files) {
    auto landmarks = std::make_shared<const faceadapt::ingest::LandmarkModel>();
    const faceadapt::quality::QualityScorer scorer{faceadapt::config::QualityConfig{}};
    const faceadapt::config::EnrollConfig gate{};
    const int min_face_px = faceadapt::config::DetectConfig{}.min_face_px;
    SiteView v;
    v.detected.assign(files.size(), 0);
    v.kept.assign(files.size(), 0);
    v.enrollable.assign(files.size(), 0);
    std::atomic<size_t> next{0};
    std::vector<std::thread> threads;
    for (unsigned w = 0; w < std::max(1u, std::thread::hardware_concurrency()); ++w)
        threads.emplace_back([&] {
            faceadapt::ingest::FaceAligner aligner(landmarks);
            for (size_t i = next++; i < files.size(); i = next++) {
                cv::Mat img = cv::imread(files[i].string(), cv::IMREAD_COLOR);
                if (img.empty()) throw std::runtime_error("cannot read " + files[i].string());
                const auto faces = aligner.detect(img);
                if (faces.empty()) continue;
                const auto& f = faces.front();
                v.detected[i] = 1;
                const auto score = scorer.score(faceadapt::quality::observation_from_still(img, f.bbox, f.landmarks, f.chip));
                v.kept[i] = score.accepted;
                v.enrollable[i] = faces.size() == 1 &&
                                  faceadapt::quality::judge_enrollment(score.features, std::min(f.bbox.width, f.bbox.height),
                                                                       min_face_px, gate).ok;
                if ((i + 1) % 200 == 0) std::fprintf(stderr, "  site view %zu/%zu\n", i + 1, files.size());
            }
        });
    for (auto& t : threads) t.join();
    return v;
}
#endif

// The site views of both halves, from the cache or computed into it; nullopt when this build cannot.
std::optional<std::pair<SiteView, SiteView>> site_views(const fs::path& shared, const fs::path& cache, int identities) {
    const auto pa = cache / "yaleb_adapt.site", pt = cache / "yaleb_test.site";
    if (!fs::exists(pa) || !fs::exists(pt)) {
#if defined(FACEADAPT_HAVE_INGEST) && defined(FACEADAPT_HAVE_QUALITY)
        std::vector<fs::path> adapt_files, test_files;
        std::vector<int> al, tl;
        list_yaleb(shared, identities, adapt_files, test_files, al, tl);
        for (const auto& [files, path] : {std::pair{&adapt_files, pa}, std::pair{&test_files, pt}}) {
            const auto v = compute_site_view(*files);
            std::ofstream out(path.string() + ".tmp");
            for (size_t i = 0; i < v.detected.size(); ++i)
                out << int(v.detected[i]) << " " << int(v.kept[i]) << " " << int(v.enrollable[i]) << "\n";
            out.close();
            fs::rename(path.string() + ".tmp", path);
        }
#else
        (void)shared, (void)identities;
        return std::nullopt;
#endif
    }
    return std::pair{read_site_view(pa), read_site_view(pt)};
}

// The cache's marker that a set's chips are there: "done" for Yale B (with LFW, as before
// --dataset), "<set>.done" for another set, whose chips lie beside Yale B's in the same folder.
fs::path done_marker(const fs::path& cache, const std::string& dataset) {
    return cache / (dataset == "yaleb" ? std::string("done") : dataset + ".done");
}

#ifdef FACEADAPT_HAVE_INGEST
// LFW devtest: every image a pair names, aligned once into cache/lfw.chips; the pairs as index
// pairs in cache/lfw.pairs (the first lfw_pairs/2 of each half when lfw_pairs > 0). Returns the
// number of images; `fallbacks` the ones aligned without a detected face.
size_t prepare_lfw(const fs::path& shared, const fs::path& cache, int lfw_pairs, int& fallbacks) {
    const auto lfw = shared / "datasets/lfw-devtest";
    std::ifstream in(lfw / "pairsDevTest.txt");
    if (!in) throw std::runtime_error("cannot read " + (lfw / "pairsDevTest.txt").string());
    std::string line;
    std::getline(in, line);
    std::map<std::string, int> index;
    std::vector<fs::path> lfw_files;
    std::ofstream pairs(cache / "lfw.pairs");
    auto image = [&](const std::string& name, int n) {
        char buf[16];
        std::snprintf(buf, sizeof buf, "_%04d.jpg", n);
        const std::string key = name + buf;
        auto [it, added] = index.emplace(key, static_cast<int>(lfw_files.size()));
        if (added) lfw_files.push_back(lfw / "images" / name / key);
        return it->second;
    };
    int same = 0, diff = 0;
    while (std::getline(in, line)) {
        std::istringstream ss(line);
        std::vector<std::string> f;
        for (std::string t; ss >> t;) f.push_back(t);
        if (lfw_pairs > 0 && (f.size() == 3 ? same : diff) >= lfw_pairs / 2) continue;
        ++(f.size() == 3 ? same : diff);
        if (f.size() == 3) pairs << image(f[0], std::stoi(f[1])) << " " << image(f[0], std::stoi(f[2])) << " 1\n";
        else if (f.size() == 4) pairs << image(f[0], std::stoi(f[1])) << " " << image(f[2], std::stoi(f[3])) << " 0\n";
    }
    pairs.close();
    fl::save_chips_file(align_files(lfw_files, fallbacks, true), cache / "lfw.chips");
    return lfw_files.size();
}
#endif

// Aligns the set's halves (and LFW devtest) into the cache once. Yale B: yaleb_{adapt,test}.
// {chips,labels}, lfw.{chips,pairs}, alignment.txt, done. Another set (`--dataset orl`):
// <set>_{adapt,test}.{chips,labels}, <set>_alignment.txt, <set>.done, and LFW only when the
// cache has none yet (a Yale B cache's is used as is).
void prepare_cache(const fs::path& shared, const fs::path& cache, const std::string& dataset, int identities, int lfw_pairs) {
    if (fs::exists(done_marker(cache, dataset))) return;
#ifndef FACEADAPT_HAVE_INGEST
    throw std::runtime_error("chip cache " + cache.string() + " has no " + dataset +
                             " chips and this build has no aligner: prepare it with a full build");
#else
    fs::create_directories(cache);
    std::vector<fs::path> adapt_files, test_files;
    std::vector<int> adapt_labels, test_labels;
    list_halves(shared / "datasets" / dataset, identities, adapt_files, test_files, adapt_labels, test_labels);
    auto t0 = Clock::now();
    int fb_a = 0, fb_t = 0, fb_l = 0;
    fl::save_chips_file(align_files(adapt_files, fb_a, false), cache / (dataset + "_adapt.chips"));
    write_labels(cache / (dataset + "_adapt.labels"), adapt_labels);
    fl::save_chips_file(align_files(test_files, fb_t, false), cache / (dataset + "_test.chips"));
    write_labels(cache / (dataset + "_test.labels"), test_labels);
    std::ostringstream lfw_note;
    if (dataset == "yaleb" || !fs::exists(cache / "lfw.chips") || !fs::exists(cache / "lfw.pairs")) {
        const size_t n = prepare_lfw(shared, cache, lfw_pairs, fb_l);
        lfw_note << "lfw " << n << " (fallback " << fb_l << ")";
    } else {
        lfw_note << "lfw as this cache had it";
    }
    std::ofstream(cache / (dataset == "yaleb" ? std::string("alignment.txt") : dataset + "_alignment.txt"))
        << dataset << " adapt " << adapt_files.size() << " (fallback " << fb_a << "), test " << test_files.size()
        << " (fallback " << fb_t << "); " << lfw_note.str() << "; " << since(t0) << " s\n";
    std::ofstream(done_marker(cache, dataset)) << "ok\n";
#endif
}

std::vector<fl::Embedding> embed(fl::FaceResNet net, const torch::Tensor& chips) {
    torch::NoGradGuard ng;
    net->eval();
    std::vector<fl::Embedding> out;
    for (int64_t s = 0; s < chips.size(0); s += 64) {
        auto e = net->forward(fl::chips_to_input(chips.slice(0, s, std::min(chips.size(0), s + 64)))).contiguous();
        for (int64_t i = 0; i < e.size(0); ++i) {
            fl::Embedding x;
            std::memcpy(x.data(), e[i].data_ptr<float>(), sizeof(float) * 128);
            out.push_back(x);
        }
    }
    return out;
}

// embed(), kept under dir/<key>.emb when dir is given (raw float32 rows; re-embedded when the
// count differs).
std::vector<fl::Embedding> cached_embed(const fs::path& dir, std::string key, fl::FaceResNet net, const torch::Tensor& chips) {
    if (dir.empty()) return embed(net, chips);
    std::replace_if(key.begin(), key.end(), [](char c) { return !std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.'; }, '_');
    const fs::path p = dir / (key + ".emb");
    std::vector<fl::Embedding> out(static_cast<std::size_t>(chips.size(0)));
    if (std::ifstream in(p, std::ios::binary); in && fs::file_size(p) == out.size() * sizeof(fl::Embedding)) {
        in.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(out.size() * sizeof(fl::Embedding)));
        if (in) return out;
    }
    out = embed(net, chips);
    std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(out.data()),
                                             static_cast<std::streamsize>(out.size() * sizeof(fl::Embedding)));
    return out;
}

struct Row {
    explicit Row(std::string row_name) : name(std::move(row_name)) {}
    std::string name;
    double tar = 0, tar4 = 0, rank1 = 0, pseudo_f = 0, lfw = 0, seconds = 0;
    int64_t clusters = 0, noise = 0;
    std::string note;
};

struct Data {
    Split adapt, test;
    torch::Tensor lfw;
    std::vector<fl::Pair> pairs;
};

void evaluate(const fl::FaceResNet& net, const Data& d, Row& row) {
    const auto te = embed(net, d.test.chips);
    const auto v = fl::verify_all_pairs(te, d.test.labels);
    row.tar = v.tar_at_far_1e3;
    row.tar4 = v.tar_at_far_1e4;
    row.rank1 = fl::rank1_leave_one_out(te, d.test.labels).rank1;
    row.lfw = fl::pairs_accuracy(embed(net, d.lfw), d.pairs, 10).accuracy;
}

// --mix: each adapted model interpolated toward the source, source + m (model - source), measured
// like a row (FaceResNet has no buffers, so the weights are the whole model).
void evaluate_mixes(const fl::FaceResNet& source, const fl::FaceResNet& model, const std::vector<double>& mixes,
                    const Data& d, const std::string& name) {
    for (double m : mixes) {
        auto net = fl::clone_face_resnet(model);
        fl::mix_toward(*net, *source, m);
        net->eval();
        Row r{name};
        evaluate(net, d, r);
        std::printf("  %s mix %.2f: TAR %.3f TAR@1e-4 %.3f rank-1 %.4f LFW %.4f\n", name.c_str(), m, r.tar, r.tar4, r.rank1,
                    r.lfw);
        std::fflush(stdout);
    }
}

double pseudo_f(const std::vector<int>& truth, const std::vector<int64_t>& labels) {
    return fl::clustering_quality(truth, std::vector<int>(labels.begin(), labels.end())).pairwise_f;
}

// The adapt set as a simulated site: a snapshot index.csv written under `dir` and read back,
// its structure in the adapt set's sample order.
fl::SiteStructure simulated_structure(const std::vector<int>& labels, double rate, uint64_t seed, const fs::path& dir,
                                      int64_t* switched) {
    fl::SimulationOptions so;
    so.switch_rate = rate;
    so.seed = seed;
    const auto site = fl::simulate_site(std::vector<int64_t>(labels.begin(), labels.end()), so);
    std::vector<fs::path> files;
    for (size_t i = 0; i < labels.size(); ++i) files.push_back("adapt/" + std::to_string(i) + ".png");
    fs::create_directories(dir);
    fl::write_snapshot_index(dir / "index.csv", fl::simulated_rows(site, files));
    fl::StructureCounts counts;
    const auto rows = fl::read_snapshot_index(dir / "index.csv");
    const auto by_row = fl::site_structure(rows, fl::read_constraints(dir / "constraints.csv"), &counts);
    std::vector<int64_t> row_of(labels.size());  // sample i is row row_of[i]
    for (size_t k = 0; k < site.order.size(); ++k) row_of[site.order[k]] = static_cast<int64_t>(k);
    std::printf("site (switch rate %.2f, seed %llu): %lld tracks, %lld switched, %lld shared frames, %zu cannot-links\n",
                rate, (unsigned long long)seed, (long long)site.tracks, (long long)site.switched,
                (long long)site.shared_frames, fl::cannot_link_pairs(by_row).size());
    *switched = site.switched;
    return by_row.subset(row_of);
}

}  // namespace

int main(int argc, char** argv) {
    fs::path cache = "adapt-cache", shared = FACEADAPT_SHARED_DIR;
    std::string dataset = "yaleb";  // --dataset: the labelled set whose halves are adapt and test
    int cycles = 6, iters = 50, threads = 0;
    uint64_t seed = 0;
    std::string methods = "source,naive,mmt,mmt+c";  // mmt+c: one row per --switch-rates entry
    fl::CoTrainOptions base;
    bool prepare_only = false;
    bool eval_means = false;  // also evaluate both mean models and their plain average
    fs::path models_dir;      // save/load the adapted models and open-set embeddings here
    bool open_set_only = false;
    bool site_view = true;    // the open-set table through the site's own pipeline (SiteView)
    bool door_statistic = false;  // also the rows calibrated on the door's statistic (open_set.hpp)
    double calib_holdout = 0;     // > 0: hold this share of the adapt half's tracks out of training, calibrate on them
    faceadapt::bench::OpenSetFoldOptions open_set_options;  // --open-set-folds (open_set_folds.hpp)
    open_set_options.folds = 30;
    int identities = 0, lfw_pairs = 0;  // 0 = all (smaller runs for a loaded machine)
    std::vector<double> switch_rates{0.0, 0.05, 0.15};
    std::vector<double> mixes;  // --mix: also evaluate source + m (model - source) for each m
    // A flag's value: the whole text must be the number (std::stod alone takes "0.5x" as 0.5).
    auto whole = [](const std::string& t, auto parse) {
        std::size_t pos = 0;
        const auto v = parse(t, &pos);
        if (pos != t.size()) throw std::invalid_argument("trailing characters");
        return v;
    };
    auto real = [&](const std::string& t) { return whole(t, [](const std::string& x, std::size_t* p) { return std::stod(x, p); }); };
    auto integer = [&](const std::string& t) { return whole(t, [](const std::string& x, std::size_t* p) { return std::stoi(x, p); }); };
    std::string flag;  // the flag being read, for the error below (one of ours: only known flags read a value)
    try {
        for (int i = 1; i < argc; ++i) {
            const std::string a = argv[i];
            flag = a;
            auto val = [&]() -> std::string {
                if (i + 1 >= argc) throw std::invalid_argument("needs a value");
                return argv[++i];
            };
            if (a == "--cache") cache = val();
            else if (a == "--shared") shared = val();
            else if (a == "--dataset") dataset = val();
            else if (a == "--cycles") cycles = integer(val());
            else if (a == "--iters") iters = integer(val());
            else if (a == "--seed") seed = static_cast<uint64_t>(whole(val(), [](const std::string& x, std::size_t* p) { return std::stoull(x, p); }));
            else if (a == "--methods") methods = val();
            else if (a == "--threads") threads = integer(val());
            else if (a == "--l2sp") base.l2sp_alpha = real(val());
            else if (a == "--distill") base.distill_weight = real(val());
            else if (a == "--eps-rule") base.cluster.eps_rule = val();
            else if (a == "--eps") base.cluster.eps = real(val());
            else if (a == "--lambda") base.ema.lambda = real(val());
            else if (a == "--erase") base.augment.erase_probability = real(val());
            else if (a == "--prepare-only") prepare_only = true;
            else if (a == "--means") eval_means = true;
            else if (a == "--models") models_dir = val();
            else if (a == "--open-set-only") open_set_only = true;
            else if (a == "--raw-open-set") site_view = false;
            else if (a == "--door-statistic") door_statistic = true;
            else if (a == "--calib-holdout") calib_holdout = real(val());
            else if (a == "--door-quality-gate") open_set_options.door_quality_gate = true;
            else if (a == "--count-frame-repeats") open_set_options.count_frame_repeats = true;
            else if (a == "--open-set-folds") open_set_options.folds = std::max(1, integer(val()));
            else if (a == "--merge") base.merge = true;
            else if (a == "--identities") identities = integer(val());
            else if (a == "--lfw-pairs") lfw_pairs = integer(val());
            else if (a == "--device") base.device = val();
            else if (a == "--no-constraint-batches") base.constraint_batches = false;
            else if (a == "--constraint-batches") base.constraint_batches = true;
            else if (a == "--track-positive") base.track_positive_weight = real(val());
            else if (a == "--source-mix") base.source_mix = real(val());
            else if (a == "--no-track-split") base.constraints.split_tracks = false;
            else if (a == "--max-violation-rate") base.constraints.max_violation_rate = real(val());
            else if (a == "--mix") {
                std::stringstream ss(val());
                for (std::string x; std::getline(ss, x, ',');) mixes.push_back(real(x));
            }
            else if (a == "--switch-rates") {
                switch_rates.clear();
                std::stringstream ss(val());
                for (std::string x; std::getline(ss, x, ',');) switch_rates.push_back(real(x));
            }
            else {
                std::fprintf(stderr,
                             "usage: adapt_benchmark [--cache DIR] [--shared DIR] [--dataset yaleb|orl] [--cycles N] [--iters M] [--seed S] "
                             "[--methods source,naive,mmt,mmt+c] [--threads T] [--l2sp A] [--distill W] [--eps-rule R] "
                             "[--eps E] [--lambda L] [--erase P] [--merge] [--means] [--device cpu|cuda] [--identities N] "
                             "[--lfw-pairs N] [--switch-rates 0,0.05,0.15] [--constraint-batches|--no-constraint-batches] [--track-positive W] [--source-mix M] [--no-track-split] [--max-violation-rate R] [--models DIR] [--open-set-only] [--raw-open-set] [--door-statistic] [--open-set-folds K] [--calib-holdout F] [--door-quality-gate] [--count-frame-repeats] [--mix M,...] [--prepare-only]\n");
                return 2;
            }
        }
    } catch (const std::logic_error&) {  // std::invalid_argument, std::out_of_range; the value is not echoed
        std::fprintf(stderr, "adapt_benchmark: %s: a missing or malformed value (see the usage with --help)\n", flag.c_str());
        return 2;
    }
    if (!(calib_holdout >= 0 && calib_holdout <= 1)) {  // NaN too
        std::fprintf(stderr, "adapt_benchmark: --calib-holdout must be in [0, 1]\n");
        return 2;
    }
    if (const double vr = base.constraints.max_violation_rate; !(vr > 0 && vr <= 1)) {  // NaN too
        std::fprintf(stderr, "adapt_benchmark: --max-violation-rate must be in (0, 1]\n");
        return 2;
    }
    for (double m : mixes)
        if (!(m > 0 && m <= 1)) {  // NaN too
            std::fprintf(stderr, "adapt_benchmark: --mix: each value must be in (0, 1]\n");
            return 2;
        }
    if (calib_holdout > 0 && dataset != "yaleb") {
        std::fprintf(stderr, "adapt_benchmark: --calib-holdout: the open-set table is measured on yaleb only\n");
        return 2;
    }
    if (dataset != "yaleb" && dataset != "orl") {
        std::fprintf(stderr, "adapt_benchmark: --dataset must be yaleb or orl\n");
        return 2;
    }
    if (dataset != "yaleb" && open_set_only) {
        std::fprintf(stderr, "adapt_benchmark: --open-set-only: the open-set table is measured on yaleb only\n");
        return 2;
    }
    if (threads > 0) at::set_num_threads(threads);
    if (open_set_only && models_dir.empty()) {
        std::fprintf(stderr, "adapt_benchmark: --open-set-only needs --models DIR\n");
        return 2;
    }
    if (!models_dir.empty()) fs::create_directories(models_dir);
    base.checkpoint.clear();
    const auto t_all = Clock::now();
    auto t0 = Clock::now();
    // A smaller run takes its subset from the full cache when there is one (aligning again costs minutes).
    int cache_identities = 0;  // the identities the cache holds (0: all)
    if ((identities > 0 || lfw_pairs > 0) && !fs::exists(done_marker(cache, dataset)))
        cache += "-i" + std::to_string(identities) + "-p" + std::to_string(lfw_pairs), cache_identities = identities;
    prepare_cache(shared, cache, dataset, identities, lfw_pairs);
    std::printf("chip cache %s ready (%.0f s)", cache.string().c_str(), since(t0));
    if (std::ifstream al(cache / (dataset == "yaleb" ? std::string("alignment.txt") : dataset + "_alignment.txt")); al) {
        std::string s;
        std::getline(al, s);
        std::printf(": %s", s.c_str());
    }
    std::printf("\n");
    if (prepare_only) return 0;

    Data d;
    d.adapt = {fl::load_chips_file(cache / (dataset + "_adapt.chips")), read_labels(cache / (dataset + "_adapt.labels"))};
    d.test = {fl::load_chips_file(cache / (dataset + "_test.chips")), read_labels(cache / (dataset + "_test.labels"))};
    d.lfw = fl::load_chips_file(cache / "lfw.chips");
    {
        std::ifstream in(cache / "lfw.pairs");
        for (size_t a, b, s; in >> a >> b >> s;) d.pairs.push_back({a, b, s == 1});
    }
    // Smaller runs: the first N identities of the set; the first half of N pairs from each LFW half.
    auto subset = [&](Split& sp) {
        std::vector<int64_t> keep;
        std::vector<int> labels;
        for (size_t i = 0; i < sp.labels.size(); ++i)
            if (sp.labels[i] < identities) keep.push_back(static_cast<int64_t>(i)), labels.push_back(sp.labels[i]);
        sp.chips = sp.chips.index_select(0, torch::tensor(keep, torch::kInt64)).contiguous();
        sp.labels = labels;
    };
    if (identities > 0) {
        subset(d.adapt);
        subset(d.test);
    }
    if (lfw_pairs > 0 && static_cast<size_t>(lfw_pairs) < d.pairs.size()) {
        std::vector<fl::Pair> same, diff, kept;
        for (const auto& p : d.pairs) (p.same ? same : diff).push_back(p);
        same.resize(std::min<size_t>(same.size(), lfw_pairs / 2));
        diff.resize(std::min<size_t>(diff.size(), lfw_pairs / 2));
        // Re-index the images those pairs use, so that only they are embedded.
        std::map<size_t, size_t> remap;
        std::vector<int64_t> used;
        auto id = [&](size_t i) {
            auto [it, added] = remap.emplace(i, used.size());
            if (added) used.push_back(static_cast<int64_t>(i));
            return it->second;
        };
        for (auto* v : {&same, &diff})
            for (const auto& p : *v) kept.push_back({id(p.a), id(p.b), p.same});
        d.pairs = kept;
        d.lfw = d.lfw.index_select(0, torch::tensor(used, torch::kInt64)).contiguous();
    }
    const auto source = fl::load_source_model();
    // The site view (detector, crop store, enrollment gate) of both halves, for the open-set table;
    // loaded before training when --calib-holdout needs the crop store's kept crops.
    std::optional<std::pair<SiteView, SiteView>> views;
    bool views_loaded = false;
    auto load_views = [&] {
        if (views_loaded || !site_view || dataset != "yaleb") return;
        views_loaded = true;
        const auto tv = Clock::now();
        views = site_views(shared, cache, cache_identities);
        if (!views) std::printf("open set: this build has no detector or quality gate: every image used as is\n");
        else std::printf("site view ready (%.0f s)\n", since(tv));
    };
    faceadapt::bench::SiteMask test_mask, adapt_mask;
    auto site_masks = [&] {
        load_views();
        if (!views || !adapt_mask.kept.empty()) return;
        auto mask = [](const SiteView& v, std::size_t n) {
            faceadapt::bench::SiteMask m{v.detected, v.kept, v.enrollable};
            if (m.detected.size() < n) throw std::runtime_error("open set: the site view is shorter than the set");
            m.detected.resize(n), m.kept.resize(n), m.enrollable.resize(n);  // a --identities subset is a prefix
            return m;
        };
        adapt_mask = mask(views->first, d.adapt.labels.size());
        test_mask = mask(views->second, d.test.labels.size());
    };
    // --calib-holdout (open_set.hpp, "Held-out calibration"): the adapted models train on the
    // adapt images outside the held-out tracks; the door table calibrates on those tracks only.
    std::optional<faceadapt::bench::CalibrationHoldout> holdout;
    std::vector<int64_t> train_index;  // adapt images the adapted models train on
    std::vector<int> train_labels;
    if (calib_holdout > 0) {
        site_masks();
        holdout = faceadapt::bench::make_calibration_holdout(d.adapt.labels, views ? &adapt_mask : nullptr, calib_holdout,
                                                             12u + static_cast<unsigned>(seed));
    }
    for (std::size_t i = 0; i < d.adapt.labels.size(); ++i)
        if (!holdout || !holdout->held_out[i]) train_index.push_back(static_cast<int64_t>(i)), train_labels.push_back(d.adapt.labels[i]);
    const std::string holdout_suffix = holdout ? "-h" + std::to_string(int(calib_holdout * 100 + 0.5)) : "";
    if (holdout)
        std::printf("calibration holdout %.2f: %zu held-out tracks of 4 kept crops (%zu adapt images); the adapted models "
                    "train on %zu of %lld adapt images\n",
                    calib_holdout, holdout->tracks.size(), d.adapt.labels.size() - holdout->trained(), holdout->trained(),
                    (long long)d.adapt.chips.size(0));
    const auto train_chips = holdout ? d.adapt.chips.index_select(0, torch::tensor(train_index, torch::kInt64)).contiguous()
                                     : d.adapt.chips;
    const auto set1 = fl::enhance_chips(train_chips, "stretch");
    const auto set2 = fl::enhance_chips(train_chips, "median,smooth");
    std::printf("%s adapt %lld, test %lld images; lfw %lld images, %zu pairs; torch threads %d\n",
                dataset.c_str(), (long long)d.adapt.chips.size(0), (long long)d.test.chips.size(0), (long long)d.lfw.size(0),
                d.pairs.size(), at::get_num_threads());
    std::fflush(stdout);

    std::vector<Row> rows;
    struct DoorModel {
        std::string name, key;  // the row; its embeddings' name under --models (the model file's stem)
        fl::FaceResNet net;
    };
    std::vector<DoorModel> door_models;  // for the open-set table
    double mmt_ips = 0;
    auto contains = [&](const char* m) { return ("," + methods + ",").find(std::string(",") + m + ",") != std::string::npos; };
    if (contains("source")) {
        Row r{"source"};
        t0 = Clock::now();
        door_models.push_back({"source", "source", source});
        if (!open_set_only) {
        evaluate(source, d, r);
        fl::ClusterOptions co = base.cluster;
        auto f = torch::nn::functional::normalize(torch::stack([&] {
            std::vector<torch::Tensor> v;
            for (const auto& e : embed(source, d.adapt.chips)) v.push_back(torch::tensor(std::vector<float>(e.begin(), e.end())));
            return v;
        }()), torch::nn::functional::NormalizeFuncOptions().dim(1));
        const auto c = fl::cluster_features(f, co);
        r.pseudo_f = pseudo_f(d.adapt.labels, c.labels);
        r.clusters = c.num_clusters;
        r.noise = c.num_noise;
        r.seconds = since(t0);
        rows.push_back(r);
        std::printf("source: TAR %.3f rank-1 %.4f F %.3f LFW %.4f (%.0f s)\n", r.tar, r.rank1, r.pseudo_f, r.lfw, r.seconds);
        std::fflush(stdout);
        }
    }
    struct Run {
        std::string method, name;
        double rate = -1;  // >= 0: mmt with the constraints of a site simulated at this switch rate
    };
    std::vector<Run> runs;
    for (const char* m : {"naive", "mmt"})
        if (contains(m)) runs.push_back({m, m});
    if (contains("mmt+c"))
        for (double rate : switch_rates) runs.push_back({"mmt", "mmt+constraints sw " + std::to_string(int(rate * 100 + 0.5)) + "%", rate});
    for (const auto& run : runs) {
        const char* m = run.method.c_str();
        auto o = base;
        o.method = m;
        o.cycles = cycles;
        o.iters = iters;
        o.seed = seed;
        Row r{run.name};
        t0 = Clock::now();
        // A result mixed toward the source (--source-mix): its file says by how much.
        const std::string mix_suffix = base.source_mix < 1 ? "-x" + std::to_string(int(base.source_mix * 100 + 0.5)) : "";
        // Constraint rows with the eps lowered for the cannot-links: their file says the rate.
        const double vr = base.constraints.max_violation_rate;
        const std::string eps_suffix = run.rate >= 0 && vr < 1 ? "-v" + std::to_string(int(vr * 1000 + 0.5)) : "";
        std::string file = run.name + "-c" + std::to_string(cycles) + "-i" + std::to_string(iters) + "-s" + std::to_string(seed) +
                           holdout_suffix + mix_suffix + eps_suffix + ".model";
        std::replace_if(file.begin(), file.end(), [](char c) { return !std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.'; }, '_');
        const fs::path model_path = models_dir.empty() ? fs::path() : models_dir / file;
        if (!model_path.empty() && fs::exists(model_path)) {  // trained before: measure it again
            auto loaded = fl::load_model(model_path);
            door_models.push_back({run.name, model_path.stem().string(), loaded.net});
            r.note = "loaded from " + model_path.string();
            if (!open_set_only) evaluate(loaded.net, d, r), rows.push_back(r);
            std::printf("%s: %s\n", run.name.c_str(), r.note.c_str());
            if (!open_set_only)
                std::printf("%s: TAR %.3f TAR@1e-4 %.3f rank-1 %.4f LFW %.4f\n", run.name.c_str(), r.tar, r.tar4, r.rank1, r.lfw);
            evaluate_mixes(source, loaded.net, mixes, d, run.name);
            continue;
        }
        fl::CoTrainer t(source, set1, std::string(m) == "mmt" ? set2 : torch::Tensor(), o);
        int64_t switched = 0;
        if (run.rate >= 0) {
            const auto dir = cache / ((dataset == "yaleb" ? "" : dataset + "-") + "site-" + std::to_string(int(run.rate * 1000 + 0.5)) + "-" + std::to_string(seed));
            auto structure = simulated_structure(d.adapt.labels, run.rate, seed, dir, &switched);
            t.set_structure(holdout ? structure.subset(train_index) : structure);
        }
        t.set_log([&](const std::string& l) {
            if (l.find(" iter ") == std::string::npos || l.find(" iter " + std::to_string(iters) + "/") != std::string::npos)
                std::printf("  [%s] %s\n", run.name.c_str(), l.c_str()), std::fflush(stdout);
        });
        auto res = t.run();
        r.seconds = since(t0);
        if (!model_path.empty()) {
            fl::ModelMetadata meta;
            meta.version = 1;
            meta.parent_version = 0;
            meta.provenance = {{"adapt_benchmark", run.name}, {"cycles", cycles}, {"iters", iters}, {"seed", seed},
                               {"calib_holdout", calib_holdout}};
            fl::save_model(res.model, meta, model_path);
        }
        evaluate(res.model, d, r);
        door_models.push_back({run.name, fs::path(file).stem().string(), res.model});
        r.pseudo_f = pseudo_f(train_labels, res.final_labels);
        r.clusters = 0;
        for (auto l : res.final_labels) r.clusters = std::max<int64_t>(r.clusters, l + 1);
        r.noise = std::count(res.final_labels.begin(), res.final_labels.end(), int64_t{-1});
        r.note = res.chosen;
        if (run.rate >= 0)
            r.note += ", " + std::to_string(t.last_constraint_report().track_cuts) + " track cuts for " +
                      std::to_string(switched) + " switches";
        std::vector<double> steps;  // every step of the run
        for (const auto& c : res.cycles) steps.insert(steps.end(), c.step_seconds.begin(), c.step_seconds.end());
        const double ips = fl::bench::median_step_images_per_s(steps, o.batch_ids * o.batch_per_id);
        if (run.name == "mmt") mmt_ips = ips;
        if (eval_means && run.name == "mmt") {  // claim 1 picks one mean model; how did the other do?
            auto avg = fl::clone_face_resnet(t.net(3));
            fl::ema_update(*avg, *t.net(4), 0.5);
            for (auto [name, net] : {std::pair{"mean1", t.net(3)}, std::pair{"mean2", t.net(4)}, std::pair{"avg", avg}}) {
                Row e{name};
                auto n = fl::clone_face_resnet(net);
                n->eval();
                evaluate(n, d, e);
                std::printf("  %s: TAR %.3f rank-1 %.4f LFW %.4f\n", name, e.tar, e.rank1, e.lfw);
            }
            std::fflush(stdout);
        }
        rows.push_back(r);
        std::printf("%s: TAR %.3f TAR@1e-4 %.3f rank-1 %.4f F %.3f LFW %.4f (%.0f s, %s, step %.1f images/s)\n",
                    run.name.c_str(), r.tar, r.tar4, r.rank1, r.pseudo_f, r.lfw, r.seconds, r.note.c_str(), ips);
        std::fflush(stdout);
        evaluate_mixes(source, res.model, mixes, d, run.name);
    }
    if (!open_set_only) {
    std::printf("\n| method | test TAR@FAR1e-3 | test TAR@FAR1e-4 | test rank-1 | adapt pseudo-label pairwise F (clusters/noise) | LFW devtest | wall s |\n");
    std::printf("|---|---|---|---|---|---|---|\n");
    for (const auto& r : rows)
        std::printf("| %s%s | %.3f | %.3f | %.4f | %.3f (%lld/%lld) | %.4f | %.0f |\n", r.name.c_str(),
                    r.note.empty() ? "" : (" (" + r.note + ")").c_str(), r.tar, r.tar4, r.rank1, r.pseudo_f,
                    (long long)r.clusters, (long long)r.noise, r.lfw, r.seconds);
    }
    if (dataset != "yaleb" && !door_models.empty()) {
        std::printf("\nopen set: skipped for %s: the door table's protocol (issue 12: 19 enrolled identities with 3 "
                    "photos each of the test half, its site view of detector and gates) is defined on yaleb only\n",
                    dataset.c_str());
        door_models.clear();
    }
    if (!door_models.empty()) {
        site_masks();
        if (views) {
            auto count = [](const std::vector<char>& v) { return std::count(v.begin(), v.end(), char{1}); };
            std::printf("site view: adapt %zu images, %ld with a face, %ld kept by the crop store; test %zu, %ld with a "
                        "face, %ld enrollable\n",
                        adapt_mask.kept.size(), count(adapt_mask.detected), count(adapt_mask.kept), test_mask.kept.size(),
                        count(test_mask.detected), count(test_mask.enrollable));
        }
        // Each model's embeddings of both halves (kept under --models), then the folds (open_set_folds.hpp).
        std::vector<std::pair<std::vector<fl::Embedding>, std::vector<fl::Embedding>>> embeddings;
        embeddings.reserve(door_models.size());
        std::vector<faceadapt::bench::OpenSetModel> open_models;
        for (const auto& [name, key, net] : door_models) {
            embeddings.emplace_back(cached_embed(models_dir, key + ".test", net, d.test.chips),
                                    cached_embed(models_dir, key + ".adapt", net, d.adapt.chips));
            open_models.push_back({name, &embeddings.back().first, &embeddings.back().second});
        }
        t0 = Clock::now();
        open_set_options.door_statistic = door_statistic;
        open_set_options.holdout = holdout ? &*holdout : nullptr;
        if (open_set_options.door_quality_gate && !views) {
            std::fprintf(stderr, "adapt_benchmark: --door-quality-gate needs the site view (not --raw-open-set)\n");
            return 2;
        }
        if (open_set_options.door_quality_gate)
            std::printf("open set: the door's quality gate: a probe the crop store would not keep is asked to retry "
                        "(counted apart, not in FAR or FRR)\n");
        if (holdout)
            std::printf("open set: the same-frame pairs come from the %zu held-out tracks only (%zu adapt images the "
                        "adapted models did not train on; they trained on %zu of %zu)\n",
                        holdout->tracks.size(), d.adapt.labels.size() - holdout->trained(), holdout->trained(),
                        d.adapt.labels.size());
        faceadapt::bench::OpenSetCounts counts;  // of fold 0 (the pairs depend only on the labels and the site view)
        const auto pooled = faceadapt::bench::run_open_set_folds(open_models, d.test.labels, d.adapt.labels,
                                                                 views ? &test_mask : nullptr, views ? &adapt_mask : nullptr,
                                                                 open_set_options, &counts);
        std::printf("open set: %d folds x %zu models in %.0f s\n", open_set_options.folds, open_models.size(), since(t0));
        std::vector<faceadapt::bench::OpenSetRow> fold0;
        for (const auto& r : pooled) {
            fold0.push_back(r.folds.front());
            if (!std::isnan(r.target)) std::printf("%s %.0e (fold 0): %s\n", r.name.c_str(), r.target, r.folds.front().point.note.c_str());
        }
        std::printf("\nfold 0 (identities 0-18 enrolled: the single split of issue 12's protocol)");
        faceadapt::bench::print_open_set_table(fold0, counts, views.has_value());
        faceadapt::bench::print_open_set_folds(
            faceadapt::bench::make_open_set_folds(d.test.labels, open_set_options.folds, open_set_options.enrolled));
        faceadapt::bench::print_open_set_per_fold(pooled);
        faceadapt::bench::print_open_set_pooled(pooled, static_cast<std::size_t>(open_set_options.folds),
                                                open_set_options.bootstrap);
    }
    if (mmt_ips > 0 && !open_set_only) {
        const int batch = base.batch_ids * base.batch_per_id;
        const double limit = fl::bench::four_net_limit(source, set1, batch, 5, torch::Device(base.device == "cuda" ? torch::kCUDA : torch::kCPU));
        std::printf("\nco-training step %.1f images/s (median step) vs four-net forward/backward limit %.1f images/s "
                    "(median of 5) on the same batch of %d: ratio %.2f (target >= 0.9)\n",
                    mmt_ips, limit, batch, mmt_ips / limit);
    }
    std::printf("total %.0f s (cycles %d x iters %d, seed %llu, l2sp %.1f, distill %.2f, eps rule %s)\n", since(t_all),
                cycles, iters, (unsigned long long)seed, base.l2sp_alpha, base.distill_weight,
                base.cluster.eps_rule.c_str());
    return 0;
}
