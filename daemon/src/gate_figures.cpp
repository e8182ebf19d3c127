#include "faceadapt/daemon/gate_figures.hpp"

#include <algorithm>
#include <map>
#include <stdexcept>

#include <fmt/format.h>

#include "faceadapt/learner/embedder.hpp"
#include "faceadapt/learner/eval.hpp"
#include "faceadapt/quality/gallery.hpp"

namespace faceadapt::daemon {
namespace {

using Rows = std::vector<learner::Embedding>;

void check_sizes(const Rows& rows, const std::vector<std::string>& labels) {
    if (rows.size() != labels.size())
        throw std::invalid_argument(fmt::format("gate: {} embeddings but {} labels", rows.size(), labels.size()));
}

double dot(const learner::Embedding& a, const learner::Embedding& b) {
    double s = 0;
    for (std::size_t i = 0; i < a.size(); ++i) s += double(a[i]) * b[i];
    return s;
}

// Indices of rows whose label occurs at least twice, and the number of such labels.
std::pair<std::vector<std::size_t>, int> repeated(const std::vector<std::string>& labels) {
    std::map<std::string, int> count;
    for (const auto& l : labels) ++count[l];
    std::vector<std::size_t> idx;
    for (std::size_t i = 0; i < labels.size(); ++i)
        if (count[labels[i]] >= 2) idx.push_back(i);
    int groups = 0;
    for (const auto& [l, c] : count) groups += c >= 2;
    return {idx, groups};
}

}  // namespace

GalleryFigures evaluate_gallery(const Rows& rows, const std::vector<std::string>& labels, double far) {
    check_sizes(rows, labels);
    GalleryFigures g;
    g.far = far;
    const auto [idx, people] = repeated(labels);
    g.people = people;
    g.images = static_cast<int>(idx.size());
    if (people < 2) return g;
    std::map<std::string, int> ids;
    Rows x;
    std::vector<int> y;
    for (std::size_t i : idx) {
        x.push_back(rows[i]);
        y.push_back(ids.try_emplace(labels[i], static_cast<int>(ids.size())).first->second);
    }
    std::vector<float> genuine, impostor;
    for (std::size_t a = 0; a < x.size(); ++a)
        for (std::size_t b = a + 1; b < x.size(); ++b)
            (y[a] == y[b] ? genuine : impostor).push_back(learner::euclidean_distance(x[a], x[b]));
    g.tar = learner::tar_at_far(std::move(genuine), std::move(impostor), far);
    g.rank1 = learner::rank1_leave_one_out(x, y).rank1;
    g.evaluated = true;
    return g;
}

SiteFigures evaluate_site(const Rows& rows, const std::vector<std::string>& labels) {
    check_sizes(rows, labels);
    Rows x;
    for (const auto& r : rows) x.push_back(learner::l2_normalized(r));
    SiteFigures s;
    s.crops = static_cast<int>(rows.size());
    const auto [idx, groups] = repeated(labels);
    s.groups = groups;
    if (groups < 2) return s;
    // Centroids of the repeated groups.
    std::map<std::string, std::vector<double>> sum;
    for (std::size_t i : idx) {
        auto& c = sum[labels[i]];
        c.resize(x[i].size(), 0.0);
        for (std::size_t k = 0; k < x[i].size(); ++k) c[k] += x[i][k];
    }
    std::map<std::string, learner::Embedding> centroid;
    for (auto& [l, c] : sum) {
        learner::Embedding f{};
        for (std::size_t k = 0; k < f.size(); ++k) f[k] = static_cast<float>(c[k]);
        centroid[l] = learner::l2_normalized(f);
    }
    std::size_t consistent = 0;
    double margin = 0;
    for (std::size_t a : idx) {
        double best = -2;
        std::size_t best_j = a;
        for (std::size_t b = 0; b < x.size(); ++b) {
            if (a == b) continue;
            const double sim = dot(x[a], x[b]);
            if (sim > best) { best = sim; best_j = b; }
        }
        consistent += labels[best_j] == labels[a];
        double own = 0, other = -2;
        for (const auto& [l, c] : centroid) {
            const double sim = dot(x[a], c);
            if (l == labels[a]) own = sim;
            else other = std::max(other, sim);
        }
        margin += own - other;
    }
    s.consistency = double(consistent) / idx.size();
    s.compactness = margin / idx.size();
    s.evaluated = true;
    return s;
}

DoorFigures door_figures(const Rows& gallery, const std::vector<std::string>& names, const Rows& holdout,
                         const std::vector<std::string>& tracks, const Rows& frame,
                         const std::vector<std::string>& frame_tracks,
                         const std::vector<std::pair<std::string, std::string>>& frame_pairs, const Rows& strangers,
                         const std::vector<std::string>& stranger_names, double target_far, calib::FarKind far_kind) {
    check_sizes(gallery, names);
    check_sizes(holdout, tracks);
    check_sizes(frame, frame_tracks);
    check_sizes(strangers, stranger_names);
    DoorFigures out;
    calib::PairDistances pd;
    calib::add_labelled_pairs(gallery, names, pd);
    out.sources.enrolled_impostor = pd.impostor.size();
    out.sources.enrolled_genuine = pd.genuine.size();
    // Two held-out crops of one track: the same person at two moments (the impostors among
    // held-out tracks are not certain: two tracks may be one person).
    std::map<std::string, std::vector<std::size_t>> by_track;
    for (std::size_t i = 0; i < holdout.size(); ++i) by_track[tracks[i]].push_back(i);
    for (const auto& [t, idx] : by_track)
        for (std::size_t a = 0; a < idx.size(); ++a)
            for (std::size_t b = a + 1; b < idx.size(); ++b)
                pd.genuine.push_back(calib::euclidean(holdout[idx[a]], holdout[idx[b]]));
    out.sources.track_genuine = pd.genuine.size() - out.sources.enrolled_genuine;
    std::map<std::string, Rows> frame_rows;
    for (std::size_t i = 0; i < frame.size(); ++i) frame_rows[frame_tracks[i]].push_back(frame[i]);
    const std::size_t before_frames = pd.impostor.size();
    for (const auto& [a, b] : frame_pairs) {
        const auto ia = frame_rows.find(a), ib = frame_rows.find(b);
        if (a == b || ia == frame_rows.end() || ib == frame_rows.end()) continue;
        calib::add_cross_pairs(ia->second, ib->second, pd.impostor);
    }
    out.sources.same_frame_impostor = pd.impostor.size() - before_frames;
    const std::size_t before_strangers = pd.impostor.size();
    calib::PairDistances among;
    calib::add_labelled_pairs(strangers, stranger_names, among);
    pd.impostor.insert(pd.impostor.end(), among.impostor.begin(), among.impostor.end());
    calib::add_cross_pairs(strangers, gallery, pd.impostor);
    out.sources.stranger_impostor = pd.impostor.size() - before_strangers;
    calib::CalibrationRequest r;
    r.target_far = target_far;
    r.far_kind = far_kind;
    r.comparisons = std::max<std::size_t>(1, gallery.size());
    out.point = calib::calibrate(std::move(pd.impostor), pd.genuine, r);
    return out;
}

GalleryChips load_gallery_chips(const std::filesystem::path& state_dir) {
    GalleryChips out;
    quality::Gallery gallery(state_dir);
    out.revision = gallery.revision();
    for (const auto& e : gallery.entries())
        if (auto chip = gallery.load_chip(e)) {
            out.chips.push_back(*chip);
            out.names.push_back(e.name);
        }
    return out;
}

ChildEvaluation evaluate_model(const std::filesystem::path& model_file, const std::string& device,
                               const GalleryChips& gallery, const std::vector<cv::Mat>& site_chips,
                               const std::vector<std::string>& site_tracks, double far,
                               const CalibrationData* calibration) {
    if (site_chips.size() != site_tracks.size())
        throw std::invalid_argument(
            fmt::format("evaluate: {} site chips but {} track labels", site_chips.size(), site_tracks.size()));
    learner::Embedder embedder(model_file, device);
    auto embed = [&](const std::vector<cv::Mat>& chips) {
        std::vector<learner::Embedding> out;
        for (std::size_t i = 0; i < chips.size(); i += 64) {
            std::vector<cv::Mat> part(chips.begin() + i, chips.begin() + std::min(chips.size(), i + 64));
            for (const auto& e : embedder.embed(part)) out.push_back(e);
        }
        return out;
    };
    ChildEvaluation ev;
    ev.model = model_file;
    const std::vector<learner::Embedding> g = embed(gallery.chips);
    ev.figures.gallery = evaluate_gallery(g, gallery.names, far);
    const std::vector<learner::Embedding> site = embed(site_chips);
    ev.figures.site = evaluate_site(site, site_tracks);
    if (calibration)
        ev.figures.door = door_figures(g, gallery.names, site, site_tracks, embed(calibration->frame_chips),
                                       calibration->frame_tracks, calibration->frame_pairs,
                                       embed(calibration->stranger_chips), calibration->stranger_names,
                                       calibration->target_far, calibration->far_kind);
    ev.gallery.names = gallery.names;
    ev.gallery.embeddings.assign(g.begin(), g.end());
    ev.gallery.revision = gallery.revision;
    return ev;
}

EmbeddedGallery embed_gallery(const std::filesystem::path& state_dir, const std::filesystem::path& model_file,
                              const std::string& device, const CalibrationData* calibration) {
    const GalleryChips chips = load_gallery_chips(state_dir);
    if (calibration) {  // the same computation as the cycle's evaluation, without held-out crops
        ChildEvaluation ev = evaluate_model(model_file, device, chips, {}, {}, calibration->target_far, calibration);
        if (ev.figures.door) ev.gallery.operating_point = ev.figures.door->point;
        return ev.gallery;
    }
    EmbeddedGallery out;
    out.revision = chips.revision;
    if (chips.chips.empty()) return out;
    learner::Embedder embedder(model_file, device);
    out.names = chips.names;
    for (const auto& e : embedder.embed(chips.chips)) out.embeddings.push_back(e);
    return out;
}

}  // namespace faceadapt::daemon
