// The open-set door benchmark of issue 12 (adapt_benchmark --open-set): what a door does at the
// threshold it ships, on Yale B.
//
// Protocol (the Acceptance): identities 0..18 are enrolled with 3 photos each from the
// test half (positions 0, n/3, 2n/3 of the identity's test images); identities 19..37 are
// strangers (one OpenSetFold; open_set_folds.hpp rotates who is enrolled over K folds). Probes: every other test image of the enrolled (they should be accepted as
// themselves) and every test image of the strangers (they should be accepted as nobody). The
// threshold is calibrated only on pairs a site would have: the enrolled photos against each
// other, and same-frame pairs simulated from the adapt half (which a site sees whole, both
// enrolled and strangers): `frames` frames, each of 2-4 different identities, each face a
// "track" of 4 adapt images of its identity; every crop of one track against every crop of
// another is an impostor pair, two crops of one track a genuine pair. The door's rule is
// calib::decide (nearest identity within the threshold, ambiguous matches refused; margin 0
// at the legacy 0.6, the rule before issue 12). Measured: open-set FAR = stranger probes
// accepted as anyone; FRR = enrolled probes not accepted as themselves (rejected, ambiguous or
// the wrong person).
//
// The site's own pipeline (`site`, adapt_benchmark's SiteView; docs/operating-point.md, "The
// benchmark"): a site never sees a face its detector misses, stores only the crops its quality
// gate keeps, and enrolls only photos its enrollment gate takes. With it, the enrolled photos are
// the first enrollable test image at or after each of those positions (as an operator retakes a
// refused photo), the same-frame tracks are built of kept adapt crops only, and a probe in which
// the detector finds no face is the door's no_face: not accepted (counted apart, for every row
// alike; FRR is over the probes with a face). Yale B's darkest images are black chips whose
// embeddings nearly coincide across people: unfiltered, they make the calibration's impostor tail
// far heavier than the door ever sees.
#pragma once

#include <cstdio>
#include <map>
#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <cmath>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "faceadapt/calib/decision.hpp"
#include "faceadapt/calib/operating_point.hpp"
#include "faceadapt/calib/statistics.hpp"
#include "faceadapt/learner/embedding.hpp"

namespace faceadapt::bench {

// Per image of one half: detector found a face, the crop store keeps it, the enrollment gate takes it.
struct SiteMask {
    std::vector<char> detected, kept, enrollable;
};

struct OpenSetRow {
    std::string name;
    calib::OperatingPoint point;
    std::size_t stranger_probes = 0, strangers_accepted = 0;
    std::size_t enrolled_probes = 0, enrolled_rejected = 0, ambiguous = 0, wrong = 0;
    std::size_t no_face_strangers = 0, no_face_enrolled = 0;  // probes the door answers no_face (not counted above)
    // With the door's quality gate (measure's quality_gate): probes with a face the crop store
    // would not keep, which the door asks to retry (not counted above either).
    std::size_t retry_strangers = 0, retry_enrolled = 0;
    // Of the stranger probes, those whose crop the crop store's quality gate would keep (the kind
    // of crop the calibration's same-frame pairs are made of), and how many of them were accepted.
    // The same for the enrolled probes (a door that ran that gate would ask these to retry).
    std::size_t stranger_probes_kept = 0, strangers_accepted_kept = 0, enrolled_probes_kept = 0, enrolled_rejected_kept = 0;
    // Per identity label: {accepted, probes} of its stranger probes, {rejected, probes} of its
    // enrolled ones (open_set_folds.hpp resamples identities for its interval).
    std::map<int, std::pair<std::size_t, std::size_t>> stranger_by_id, enrolled_by_id;
    double far() const { return stranger_probes ? double(strangers_accepted) / stranger_probes : NAN; }
    double frr() const { return enrolled_probes ? double(enrolled_rejected) / enrolled_probes : NAN; }
};

// The door's own statistic, for the comparison rows (`--door-statistic`): a door accepts a
// stranger when his nearest photo of SOME identity is within the threshold, so it samples "a
// probe against one identity's nearest photo", converted (Sidak) over the identities rather than
// the entries. Measured here against calib's entry pairs (method 1, what the product ships):
// docs/operating-point.md, "The benchmark".
// The distance from `x` to the nearest row of a non-empty `group` (one person's rows).
template <class Row, class Group>
double nearest_distance(const Row& x, const Group& group) {
    double best = INFINITY;
    for (const auto& y : group) best = std::min(best, calib::euclidean(x, y));
    return best;
}
// Each labelled row against the nearest row of every other label.
inline void add_labelled_nearest(const std::vector<learner::Embedding>& rows, const std::vector<std::string>& labels,
                                 std::vector<double>& impostor) {
    for (std::size_t a = 0; a < rows.size(); ++a) {
        std::map<std::string, double> nearest;
        for (std::size_t b = 0; b < rows.size(); ++b) {
            if (labels[a] == labels[b]) continue;
            const double d = calib::euclidean(rows[a], rows[b]);
            auto [it, fresh] = nearest.try_emplace(labels[b], d);
            if (!fresh) it->second = std::min(it->second, d);
        }
        for (const auto& e : nearest) impostor.push_back(e.second);
    }
}

// HELD-OUT CALIBRATION (`adapt_benchmark --calib-holdout F`; docs/operating-point.md, section 6).
// An adapted model trained on the adapt half pushes exactly those faces apart, so same-frame
// pairs of the crops it trained on give a threshold too loose for new faces. The holdout: each
// identity's crops the crop store keeps (every adapt image without a site view), in file order,
// cut into consecutive "tracks" of `track_length`; of each identity's m tracks, max(1, round(F x
// m)) chosen by a seeded shuffle are held out (at least one, so that every person with a track
// still appears in the calibration's frames, as every person appears on some held-out track of
// a site). The adapted models train on every adapt image but the held-out ones; the simulated
// frames are made of held-out tracks only. Images of an incomplete last track, and those the crop
// store would not keep, stay in training.
struct CalibrationHoldout {
    std::vector<std::vector<std::size_t>> tracks;  // held-out tracks: adapt indices, one identity each
    std::vector<char> held_out;                    // per adapt image: in a held-out track
    std::size_t trained() const { return static_cast<std::size_t>(std::count(held_out.begin(), held_out.end(), char{0})); }
    // The adapt indices a model trains on (every image not held out), ascending.
    std::vector<std::size_t> training_indices() const {
        std::vector<std::size_t> out;
        for (std::size_t i = 0; i < held_out.size(); ++i)
            if (!held_out[i]) out.push_back(i);
        return out;
    }
};

// requires 0 < fraction <= 1, track_length >= 2, adapt_site (when given) as long as adapt_labels.
inline CalibrationHoldout make_calibration_holdout(const std::vector<int>& adapt_labels, const SiteMask* adapt_site,
                                                   double fraction, unsigned seed, std::size_t track_length = 4) {
    if (!(fraction > 0 && fraction <= 1) || track_length < 2)
        throw std::invalid_argument("calibration holdout: need 0 < fraction <= 1 and tracks of 2 or more");
    if (adapt_site && adapt_site->kept.size() != adapt_labels.size())
        throw std::invalid_argument("calibration holdout: adapt site mask size");
    std::map<int, std::vector<std::size_t>> by_id;  // kept crops per identity, in file order
    for (std::size_t i = 0; i < adapt_labels.size(); ++i)
        if (!adapt_site || adapt_site->kept[i]) by_id[adapt_labels[i]].push_back(i);
    CalibrationHoldout h;
    h.held_out.assign(adapt_labels.size(), 0);
    std::mt19937 rng(seed);
    for (const auto& [id, idx] : by_id) {
        const std::size_t m = idx.size() / track_length;
        if (m == 0) continue;
        std::vector<std::size_t> order(m);
        std::iota(order.begin(), order.end(), std::size_t{0});
        std::shuffle(order.begin(), order.end(), rng);
        const std::size_t held = std::max<std::size_t>(1, static_cast<std::size_t>(std::lround(fraction * double(m))));
        for (std::size_t t = 0; t < held; ++t) {
            std::vector<std::size_t> track(idx.begin() + static_cast<std::ptrdiff_t>(order[t] * track_length),
                                           idx.begin() + static_cast<std::ptrdiff_t>((order[t] + 1) * track_length));
            for (std::size_t i : track) h.held_out[i] = 1;
            h.tracks.push_back(std::move(track));
        }
    }
    return h;
}

// What one OpenSet was built of (the same for every model: the pairs depend only on the labels and the site view).
struct OpenSetCounts {
    std::size_t identities = 0, entries = 0, without_gate = 0;
    std::size_t entry_pairs = 0, enrolled_entry_pairs = 0, nearest = 0, enrolled_nearest = 0;
    // Distinct crop pairs among the same-frame ones. The frames are drawn with replacement, so a
    // small pool of tracks repeats pairs; a repeat is the same two faces again and tells nothing
    // new, so the calibration counts each crop pair once (entry_pairs - enrolled_entry_pairs ==
    // distinct_frame_pairs) unless the fold's count_frame_repeats asks for the old count.
    std::size_t distinct_frame_pairs = 0;
};

// Who is enrolled in one split of the identities (open_set_folds.hpp rotates it), with which
// photos, and which simulated frames calibrate it.
struct OpenSetFold {
    std::set<int> enrolled;                // identity labels enrolled; every other one is a stranger
    std::map<int, std::size_t> photo_shift;  // per enrolled identity: its photos' positions move by this (0 if absent)
    unsigned frame_seed = 12;              // the same-frame pairs' simulation
    // Count a crop pair (impostor, genuine, or a crop against a track's nearest crop) again each
    // time a drawn frame repeats it: the tables measured before 2026-12-07, whose Clopper-Pearson
    // bound took the repeats for independent pairs (`adapt_benchmark --count-frame-repeats`).
    bool count_frame_repeats = false;
};

class OpenSet {
public:
    // test/adapt: one model's embeddings of the test and adapt halves with their identity labels.
    // The first `enrolled_ids` identity labels (0..enrolled_ids-1) are enrolled: the table before the folds.
    OpenSet(const std::vector<learner::Embedding>& test, const std::vector<int>& test_labels,
            const std::vector<learner::Embedding>& adapt, const std::vector<int>& adapt_labels,
            const SiteMask* test_site = nullptr, const SiteMask* adapt_site = nullptr, int enrolled_ids = 19,
            int frames = 8000, unsigned seed = 12)
        : OpenSet(test, test_labels, adapt, adapt_labels, test_site, adapt_site, first_identities(enrolled_ids, seed), frames) {}

    // The enrolled identities of `fold`; each one's 3 photos are its test images at positions
    // shift, shift + n/3, shift + 2n/3 (mod n; through the site view the first enrollable one at or
    // after each). Calibration: its enrolled photos against each other and `frames` simulated
    // frames of the adapt half (seeded by fold.frame_seed; with `holdout`, of its held-out tracks
    // only); never a test probe.
    OpenSet(const std::vector<learner::Embedding>& test, const std::vector<int>& test_labels,
            const std::vector<learner::Embedding>& adapt, const std::vector<int>& adapt_labels,
            const SiteMask* test_site, const SiteMask* adapt_site, const OpenSetFold& fold, int frames = 8000,
            const CalibrationHoldout* holdout = nullptr)
        : test_(test), test_labels_(test_labels), test_site_(test_site) {
        const unsigned seed = fold.frame_seed;
        if (test_site && test_site->detected.size() != test.size()) throw std::invalid_argument("open set: test site mask size");
        if (adapt_site && adapt_site->kept.size() != adapt.size()) throw std::invalid_argument("open set: adapt site mask size");
        std::map<int, std::vector<std::size_t>> by_id;
        for (std::size_t i = 0; i < test_labels.size(); ++i) by_id[test_labels[i]].push_back(i);
        for (const auto& [id, idx] : by_id) {
            if (!fold.enrolled.count(id)) continue;
            const auto shift_it = fold.photo_shift.find(id);
            const std::size_t shift = shift_it == fold.photo_shift.end() ? 0 : shift_it->second;
            for (std::size_t base : {std::size_t{0}, idx.size() / 3, 2 * idx.size() / 3}) {
                const std::size_t k = (base + shift) % idx.size();
                std::size_t pick = k;  // the first enrollable one at or after k, cyclically (else one with a face)
                if (test_site) {
                    auto first = [&](const std::vector<char>& ok) {
                        for (std::size_t step = 0; step < idx.size(); ++step) {
                            const std::size_t j = (k + step) % idx.size();
                            if (ok[idx[j]] && !enrolled_index_.count(idx[j])) return j;
                        }
                        return idx.size();
                    };
                    pick = first(test_site->enrollable);
                    if (pick == idx.size()) pick = first(test_site->detected), ++enrolled_without_gate_;
                    if (pick == idx.size()) continue;  // no photo with a face left
                }
                gallery_.push_back(test[idx[pick]]);
                names_.push_back(std::to_string(id));
                enrolled_index_.insert(idx[pick]);
            }
        }
        calib::add_labelled_pairs(gallery_, names_, pairs_);
        enrolled_impostor_ = pairs_.impostor.size();
        add_labelled_nearest(gallery_, names_, nearest_);
        enrolled_nearest_ = nearest_.size();
        identities_ = std::set<std::string>(names_.begin(), names_.end()).size();
        // Same-frame pairs from the adapt half: a track is 4 consecutive kept crops of one
        // identity, or (with a holdout) one of its held-out tracks.
        std::map<int, std::vector<std::size_t>> adapt_by_id;
        std::map<int, std::vector<const std::vector<std::size_t>*>> held_by_id;
        if (holdout) {
            for (const auto& t : holdout->tracks) {
                if (t.empty() || t.back() >= adapt.size()) throw std::invalid_argument("open set: holdout track out of range");
                held_by_id[adapt_labels[t.front()]].push_back(&t);
            }
        } else {
            for (std::size_t i = 0; i < adapt_labels.size(); ++i)
                if (!adapt_site || adapt_site->kept[i]) adapt_by_id[adapt_labels[i]].push_back(i);
        }
        std::vector<int> ids;
        for (const auto& [id, idx] : adapt_by_id)
            if (idx.size() >= 4) ids.push_back(id);
        for (const auto& e : held_by_id) ids.push_back(e.first);
        std::mt19937 rng(seed);
        using Key = std::pair<std::size_t, std::size_t>;
        std::set<Key> distinct, genuine_seen, nearest_seen;
        // Whether a pair is to be counted: new here (or every time, with count_frame_repeats).
        auto fresh = [&](std::set<Key>& seen, Key key) { return seen.insert(key).second || fold.count_frame_repeats; };
        auto crop_pair = [](std::size_t i, std::size_t j) { return Key{std::min(i, j), std::max(i, j)}; };
        for (int f = 0; f < frames && ids.size() >= 4; ++f) {
            std::shuffle(ids.begin(), ids.end(), rng);
            const int k = 2 + static_cast<int>(rng() % 3);
            std::vector<std::vector<learner::Embedding>> tracks;
            std::vector<std::vector<std::size_t>> track_images;
            for (int t = 0; t < k; ++t) {
                std::vector<std::size_t> images;
                if (holdout) {
                    const auto& held = held_by_id[ids[t]];
                    images = *held[rng() % held.size()];
                } else {
                    const auto& idx = adapt_by_id[ids[t]];
                    const std::size_t start = rng() % (idx.size() - 3);
                    images.assign(idx.begin() + static_cast<std::ptrdiff_t>(start), idx.begin() + static_cast<std::ptrdiff_t>(start + 4));
                }
                std::vector<learner::Embedding> track;
                for (std::size_t i : images) track.push_back(adapt[i]);
                for (std::size_t a = 0; a < track.size(); ++a)
                    for (std::size_t b = a + 1; b < track.size(); ++b)
                        if (fresh(genuine_seen, crop_pair(images[a], images[b])))
                            pairs_.genuine.push_back(calib::euclidean(track[a], track[b]));
                track_images.push_back(std::move(images));
                tracks.push_back(std::move(track));
            }
            for (int a = 0; a < k; ++a)
                for (int b = a + 1; b < k; ++b) {
                    for (std::size_t x = 0; x < tracks[a].size(); ++x)
                        for (std::size_t y = 0; y < tracks[b].size(); ++y)
                            if (fresh(distinct, crop_pair(track_images[a][x], track_images[b][y])))
                                pairs_.impostor.push_back(calib::euclidean(tracks[a][x], tracks[b][y]));
                    // A crop against the other track's nearest crop (a track is named by its first crop).
                    for (auto [p, q] : {std::pair{a, b}, std::pair{b, a}})
                        for (std::size_t x = 0; x < tracks[p].size(); ++x)
                            if (fresh(nearest_seen, Key{track_images[p][x], track_images[q].front()}))
                                nearest_.push_back(nearest_distance(tracks[p][x], tracks[q]));
                }
        }
        distinct_frame_pairs_ = distinct.size();
    }

    // Which impostor sample calibrates: every probe-entry pair, converted over the gallery's
    // entries (calib method 1), or the door's own statistic, a probe against each identity's
    // nearest photo (a track's nearest crop), converted over the identities.
    enum class Statistic { entry_pairs, nearest_identity };

    std::size_t impostor_pairs(Statistic s) const { return s == Statistic::entry_pairs ? pairs_.impostor.size() : nearest_.size(); }
    std::size_t enrolled_impostor_pairs(Statistic s) const {
        return s == Statistic::entry_pairs ? enrolled_impostor_ : enrolled_nearest_;
    }
    std::size_t gallery_entries() const { return gallery_.size(); }
    std::size_t identities() const { return identities_; }
    std::size_t enrolled_without_gate() const { return enrolled_without_gate_; }
    OpenSetCounts counts() const {
        return {identities_, gallery_.size(), enrolled_without_gate_, pairs_.impostor.size(), enrolled_impostor_,
                nearest_.size(), enrolled_nearest_, distinct_frame_pairs_};
    }

    // The calibrated point for a door target FAR.
    calib::OperatingPoint calibrated(double target_far, Statistic s) const {
        calib::CalibrationRequest r;
        r.target_far = target_far;
        r.comparisons = s == Statistic::entry_pairs ? gallery_.size() : identities_;
        return calib::calibrate(s == Statistic::entry_pairs ? pairs_.impostor : nearest_, pairs_.genuine, r);
    }
    // The legacy rule: 0.6, margin 0 (figures at it for the record).
    calib::OperatingPoint legacy(double target_far) const {
        calib::CalibrationRequest r;
        r.target_far = target_far;
        r.comparisons = gallery_.size();
        r.margin_fraction = 0;
        return calib::at_threshold(calib::kLegacyThreshold, pairs_.impostor, pairs_.genuine, r);
    }

    // quality_gate: the door's quality gate (faceadapt-door match: "retry" for a face the crop
    // store would not keep); needs the site view, counts those probes apart like no_face.
    OpenSetRow measure(const std::string& name, const calib::OperatingPoint& point, bool quality_gate = false) const {
        OpenSetRow row;
        row.name = name;
        row.point = point;
        for (std::size_t i = 0; i < test_.size(); ++i) {
            if (enrolled_index_.count(i)) continue;
            const std::string truth = std::to_string(test_labels_[i]);
            const bool enrolled = std::find(names_.begin(), names_.end(), truth) != names_.end();
            if (test_site_ && !test_site_->detected[i]) {  // the door's no_face
                ++(enrolled ? row.no_face_enrolled : row.no_face_strangers);
                continue;
            }
            if (quality_gate && test_site_ && !test_site_->kept[i]) {  // the door's retry
                ++(enrolled ? row.retry_enrolled : row.retry_strangers);
                continue;
            }
            std::vector<std::pair<std::string, double>> entries;
            for (std::size_t g = 0; g < gallery_.size(); ++g) entries.emplace_back(names_[g], calib::euclidean(gallery_[g], test_[i]));
            const auto d = calib::decide(entries, point.threshold, point.margin);
            if (enrolled) {
                const bool rejected = !d.accepted() || d.identity != truth;
                ++row.enrolled_probes;
                if (rejected) ++row.enrolled_rejected;
                if (d.decision == calib::Decision::ambiguous) ++row.ambiguous;
                if (d.accepted() && d.identity != truth) ++row.wrong;
                if (test_site_ && test_site_->kept[i]) ++row.enrolled_probes_kept, row.enrolled_rejected_kept += rejected;
                auto& c = row.enrolled_by_id[test_labels_[i]];
                c.first += rejected, ++c.second;
            } else {
                ++row.stranger_probes;
                if (d.accepted()) ++row.strangers_accepted;
                if (test_site_ && test_site_->kept[i]) ++row.stranger_probes_kept, row.strangers_accepted_kept += d.accepted();
                auto& c = row.stranger_by_id[test_labels_[i]];
                c.first += d.accepted(), ++c.second;
            }
        }
        return row;
    }

    // The test images the gallery holds (never a probe).
    const std::set<std::size_t>& enrolled_images() const { return enrolled_index_; }

private:
    static OpenSetFold first_identities(int n, unsigned seed) {
        OpenSetFold f;
        for (int id = 0; id < n; ++id) f.enrolled.insert(id);
        f.frame_seed = seed;
        return f;
    }

    const std::vector<learner::Embedding>& test_;
    const std::vector<int>& test_labels_;
    const SiteMask* test_site_ = nullptr;
    std::vector<learner::Embedding> gallery_;
    std::vector<std::string> names_;
    std::set<std::size_t> enrolled_index_;
    calib::PairDistances pairs_;
    std::vector<double> nearest_;  // the door's statistic (Statistic::nearest_identity)
    std::size_t enrolled_impostor_ = 0, enrolled_nearest_ = 0, identities_ = 0, enrolled_without_gate_ = 0;
    std::size_t distinct_frame_pairs_ = 0;
};

inline void print_open_set_table(const std::vector<OpenSetRow>& rows, const OpenSetCounts& c, bool site) {
    std::printf("\nopen set (issue 12): %zu enrolled identities, %zu gallery entries (%zu photos taken without the "
                "enrollment gate: an identity had too few it takes), 19 strangers; calibration on %zu impostor pairs "
                "(%zu enrolled cross-person, %zu same-frame from the adapt half, %zu of them distinct crop pairs), or on the door's statistic (a probe "
                "against an identity's nearest photo, a crop against a track's nearest crop): %zu (%zu enrolled, %zu "
                "same-frame); door decision rule calib::decide; %s\n",
                c.identities, c.entries, c.without_gate, c.entry_pairs, c.enrolled_entry_pairs,
                c.entry_pairs - c.enrolled_entry_pairs, c.distinct_frame_pairs, c.nearest, c.enrolled_nearest, c.nearest - c.enrolled_nearest,
                site ? "the site's pipeline (detector, crop store quality gate, enrollment gate) applied to every row"
                     : "every image used as is (no detector, quality or enrollment gate)");
    std::printf("| model @ threshold | target door FAR | threshold | margin | calibrated | door FAR bound | open-set FAR "
                "(strangers accepted; 95%% upper) | FRR (enrolled rejected or wrong; ambiguous, wrong) | no_face "
                "probes (strangers, enrolled) |\n");
    std::printf("|---|---|---|---|---|---|---|---|---|\n");
    for (const auto& r : rows)
        std::printf("| %s | %.0e | %.4f | %.4f | %s | %.2g | %.4f (%zu/%zu; %.2g) | %.4f (%zu/%zu; %zu, %zu) | %zu, %zu |\n",
                    r.name.c_str(), r.point.target_far, r.point.threshold, r.point.margin,
                    r.point.calibrated ? "yes" : "no", r.point.door_far_bound, r.far(), r.strangers_accepted,
                    r.stranger_probes, calib::clopper_pearson_upper(r.strangers_accepted, r.stranger_probes, 0.95),
                    r.frr(), r.enrolled_rejected, r.enrolled_probes, r.ambiguous, r.wrong, r.no_face_strangers,
                    r.no_face_enrolled);
}

}  // namespace faceadapt::bench
