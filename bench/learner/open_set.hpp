// The open-set door benchmark of issue 12 (adapt_benchmark --open-set): what a door does at the
// threshold it ships, on Yale B.
//
// Protocol (the Acceptance): identities 0..18 are enrolled with 3 photos each from the
// test half (positions 0, n/3, 2n/3 of the identity's test images); identities 19..37 are
// strangers. Probes: every other test image of the enrolled (they should be accepted as
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
#pragma once

#include <cstdio>
#include <map>
#include <algorithm>
#include <cmath>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "faceadapt/calib/decision.hpp"
#include "faceadapt/calib/operating_point.hpp"
#include "faceadapt/learner/embedding.hpp"

namespace faceadapt::bench {

struct OpenSetRow {
    std::string name;
    calib::OperatingPoint point;
    std::size_t stranger_probes = 0, strangers_accepted = 0;
    std::size_t enrolled_probes = 0, enrolled_rejected = 0, ambiguous = 0, wrong = 0;
    double far() const { return stranger_probes ? double(strangers_accepted) / stranger_probes : NAN; }
    double frr() const { return enrolled_probes ? double(enrolled_rejected) / enrolled_probes : NAN; }
};

class OpenSet {
public:
    // test/adapt: one model's embeddings of the test and adapt halves with their identity labels.
    OpenSet(const std::vector<learner::Embedding>& test, const std::vector<int>& test_labels,
            const std::vector<learner::Embedding>& adapt, const std::vector<int>& adapt_labels, int enrolled_ids = 19,
            int frames = 8000, unsigned seed = 12)
        : test_(test), test_labels_(test_labels) {
        std::map<int, std::vector<std::size_t>> by_id;
        for (std::size_t i = 0; i < test_labels.size(); ++i) by_id[test_labels[i]].push_back(i);
        for (const auto& [id, idx] : by_id) {
            if (id >= enrolled_ids) continue;
            for (std::size_t k : {std::size_t{0}, idx.size() / 3, 2 * idx.size() / 3}) {
                gallery_.push_back(test[idx[k]]);
                names_.push_back(std::to_string(id));
                enrolled_index_.insert(idx[k]);
            }
        }
        calib::add_labelled_pairs(gallery_, names_, pairs_);
        enrolled_impostor_ = pairs_.impostor.size();
        // Same-frame pairs from the adapt half.
        std::map<int, std::vector<std::size_t>> adapt_by_id;
        for (std::size_t i = 0; i < adapt_labels.size(); ++i) adapt_by_id[adapt_labels[i]].push_back(i);
        std::vector<int> ids;
        for (const auto& [id, idx] : adapt_by_id)
            if (idx.size() >= 4) ids.push_back(id);
        std::mt19937 rng(seed);
        for (int f = 0; f < frames && ids.size() >= 4; ++f) {
            std::shuffle(ids.begin(), ids.end(), rng);
            const int k = 2 + static_cast<int>(rng() % 3);
            std::vector<std::vector<learner::Embedding>> tracks;
            for (int t = 0; t < k; ++t) {
                const auto& idx = adapt_by_id[ids[t]];
                const std::size_t start = rng() % (idx.size() - 3);
                std::vector<learner::Embedding> track;
                for (std::size_t j = 0; j < 4; ++j) track.push_back(adapt[idx[start + j]]);
                for (std::size_t a = 0; a < 4; ++a)
                    for (std::size_t b = a + 1; b < 4; ++b) pairs_.genuine.push_back(calib::euclidean(track[a], track[b]));
                tracks.push_back(std::move(track));
            }
            for (int a = 0; a < k; ++a)
                for (int b = a + 1; b < k; ++b) calib::add_cross_pairs(tracks[a], tracks[b], pairs_.impostor);
        }
    }

    std::size_t impostor_pairs() const { return pairs_.impostor.size(); }
    std::size_t enrolled_impostor_pairs() const { return enrolled_impostor_; }
    std::size_t gallery_entries() const { return gallery_.size(); }

    // The calibrated point for a door target FAR (over the gallery's entries).
    calib::OperatingPoint calibrated(double target_far) const {
        calib::CalibrationRequest r;
        r.target_far = target_far;
        r.comparisons = gallery_.size();
        return calib::calibrate(pairs_.impostor, pairs_.genuine, r);
    }
    // The legacy rule: 0.6, margin 0 (figures at it for the record).
    calib::OperatingPoint legacy(double target_far) const {
        calib::CalibrationRequest r;
        r.target_far = target_far;
        r.comparisons = gallery_.size();
        r.margin_fraction = 0;
        return calib::at_threshold(calib::kLegacyThreshold, pairs_.impostor, pairs_.genuine, r);
    }

    OpenSetRow measure(const std::string& name, const calib::OperatingPoint& point) const {
        OpenSetRow row{name, point};
        for (std::size_t i = 0; i < test_.size(); ++i) {
            if (enrolled_index_.count(i)) continue;
            std::vector<std::pair<std::string, double>> entries;
            for (std::size_t g = 0; g < gallery_.size(); ++g) entries.emplace_back(names_[g], calib::euclidean(gallery_[g], test_[i]));
            const auto d = calib::decide(entries, point.threshold, point.margin);
            const std::string truth = std::to_string(test_labels_[i]);
            const bool enrolled = std::find(names_.begin(), names_.end(), truth) != names_.end();
            if (enrolled) {
                ++row.enrolled_probes;
                if (!d.accepted() || d.identity != truth) ++row.enrolled_rejected;
                if (d.decision == calib::Decision::ambiguous) ++row.ambiguous;
                if (d.accepted() && d.identity != truth) ++row.wrong;
            } else {
                ++row.stranger_probes;
                if (d.accepted()) ++row.strangers_accepted;
            }
        }
        return row;
    }

private:
    const std::vector<learner::Embedding>& test_;
    const std::vector<int>& test_labels_;
    std::vector<learner::Embedding> gallery_;
    std::vector<std::string> names_;
    std::set<std::size_t> enrolled_index_;
    calib::PairDistances pairs_;
    std::size_t enrolled_impostor_ = 0;
};

inline void print_open_set_table(const std::vector<OpenSetRow>& rows, std::size_t entries, std::size_t impostors,
                                 std::size_t enrolled_impostors) {
    std::printf("\nopen set (issue 12): 19 enrolled x 3 test photos = %zu gallery entries, 19 strangers; calibration on "
                "%zu impostor pairs (%zu enrolled cross-person, %zu same-frame from the adapt half); door decision "
                "rule calib::decide\n",
                entries, impostors, enrolled_impostors, impostors - enrolled_impostors);
    std::printf("| model @ threshold | target door FAR | threshold | margin | calibrated | door FAR bound | open-set FAR "
                "(strangers accepted) | FRR (enrolled rejected or wrong; ambiguous, wrong) |\n");
    std::printf("|---|---|---|---|---|---|---|---|\n");
    for (const auto& r : rows)
        std::printf("| %s | %.0e | %.4f | %.4f | %s | %.2g | %.4f (%zu/%zu) | %.4f (%zu/%zu; %zu, %zu) |\n", r.name.c_str(),
                    r.point.target_far, r.point.threshold, r.point.margin, r.point.calibrated ? "yes" : "no",
                    r.point.door_far_bound, r.far(), r.strangers_accepted, r.stranger_probes, r.frr(),
                    r.enrolled_rejected, r.enrolled_probes, r.ambiguous, r.wrong);
}

}  // namespace faceadapt::bench
