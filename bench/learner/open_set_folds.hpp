// The open-set door table over rotated identity splits (adapt_benchmark --open-set-folds K).
//
// WHY
//   One split of Yale B's 38 identities (19 enrolled, 19 strangers) has about 400 stranger probes
//   with a face: one accept is a door FAR of 0.0025, so "measured within 2x of 1e-3" cannot be
//   shown by any count. K folds rotate who is enrolled: fold 0 is the split of open_set.hpp
//   (identities 0..18 enrolled, photos at 0, n/3, 2n/3); fold 2m (m > 0) is a seeded random
//   split into 19 + 19, fold 2m+1 its complement (so every identity is enrolled in exactly half
//   of an even K, and every test image is a probe in every fold but those where it is an
//   enrollment photo); in every fold but 0 each enrolled identity's photo positions move by a
//   seeded shift in [0, n/3), and the simulated same-frame pairs use the seed 12 + fold. Each fold
//   is calibrated on its own site's pairs only (its enrolled photos against each other, its
//   frames of the adapt half), never on a test probe, exactly as the single split.
//   The stranger decisions and the enrolled probes of all folds are pooled.
//
// WHAT POOLING DOES TO THE INTERVAL
//   Pooled folds reuse images: a test image of identity 25 is a stranger probe in every fold
//   where 25 is not enrolled, against a different gallery each time; the same 38 people appear in
//   every fold. The decisions are not independent (positively correlated: a look-alike pair is
//   accepted in every fold that holds both), so the Clopper-Pearson interval of the pooled counts,
//   which assumes independent trials, is too narrow. The table therefore also prints an interval
//   that resamples whole identities (a cluster bootstrap: 38 identities drawn with replacement,
//   each with all its probes of all folds), which carries the dependence within a person, and how
//   many stranger identities the accepts come from. With 0 accepts the bootstrap has nothing to
//   resample (it prints 0-0): read the CP upper bound then, knowing it is optimistic.
//
// THREAD SAFETY
//   Plain functions over values; print to stdout.
#pragma once

#include <cstdio>
#include <numeric>

#include "open_set.hpp"

namespace faceadapt::bench {

// K folds of the identities in `test_labels` (see above). requires folds >= 1, 0 < enrolled <
// #identities.
inline std::vector<OpenSetFold> make_open_set_folds(const std::vector<int>& test_labels, int folds,
                                                    int enrolled, unsigned seed = 12) {
    std::map<int, std::size_t> per_id;
    for (int l : test_labels) ++per_id[l];
    std::vector<int> ids;
    for (const auto& e : per_id) ids.push_back(e.first);
    if (folds < 1 || enrolled <= 0 || static_cast<std::size_t>(enrolled) >= ids.size())
        throw std::invalid_argument(
            "open set folds: need folds >= 1 and 0 < enrolled < identities");
    std::vector<OpenSetFold> out;
    std::vector<int> order = ids;  // fold 0: identity order
    for (int f = 0; f < folds; ++f) {
        OpenSetFold fold;
        fold.frame_seed = seed + static_cast<unsigned>(f);
        if (f % 2 == 0) {
            if (f > 0) {
                order = ids;
                std::mt19937 rng(seed * 7919u + static_cast<unsigned>(f));
                std::shuffle(order.begin(), order.end(), rng);
            }
            fold.enrolled.insert(order.begin(), order.begin() + enrolled);
        } else {  // the complement of the fold before (its first `enrolled` identities)
            for (int id : order)
                if (!out.back().enrolled.count(id) &&
                    fold.enrolled.size() < static_cast<std::size_t>(enrolled))
                    fold.enrolled.insert(id);
        }
        if (f > 0) {
            std::mt19937 rng(seed * 104729u + static_cast<unsigned>(f));
            for (int id : fold.enrolled)
                fold.photo_shift[id] = rng() % std::max<std::size_t>(1, per_id[id] / 3);
        }
        out.push_back(std::move(fold));
    }
    return out;
}

// One model's embeddings of both halves (the rows of the table are per model).
struct OpenSetModel {
    std::string name;
    const std::vector<learner::Embedding>* test = nullptr;
    const std::vector<learner::Embedding>* adapt = nullptr;
};

struct OpenSetFoldOptions {
    int folds = 1;
    int enrolled = 19;
    int frames = 8000;
    bool door_statistic = false;              // also the rows calibrated on the door's statistic
    std::vector<double> targets{1e-2, 1e-3};  // door FAR targets
    int bootstrap = 2000;                     // identity resamples for the pooled interval
    // When set, every fold's same-frame pairs come from these held-out tracks only (open_set.hpp,
    // "Held-out calibration"); the enrolled photos' pairs stay.
    const CalibrationHoldout* holdout = nullptr;
    // The door's quality gate: probes the crop store would not keep are "retry", counted apart.
    bool door_quality_gate = false;
    // Count the simulated frames' repeated crop pairs again (OpenSetFold::count_frame_repeats).
    bool count_frame_repeats = false;
};

// A rate's pooled counts over folds and per identity; its two intervals.
struct PooledRate {
    std::size_t events = 0, trials = 0;
    std::map<int, std::pair<std::size_t, std::size_t>> by_id;  // identity -> {events, trials}
    double rate() const { return trials ? double(events) / double(trials) : NAN; }
    void add(const std::map<int, std::pair<std::size_t, std::size_t>>& m) {
        for (const auto& [id, c] : m) {
            auto& t = by_id[id];
            t.first += c.first, t.second += c.second;
            events += c.first, trials += c.second;
        }
    }
    std::size_t identities_with_events() const {
        return static_cast<std::size_t>(std::count_if(
            by_id.begin(), by_id.end(), [](const auto& e) { return e.second.first > 0; }));
    }
    // Two-sided 95% Clopper-Pearson interval, as if the trials were independent.
    std::pair<double, double> clopper_pearson() const {
        return {calib::clopper_pearson_lower(events, trials, 0.975),
                calib::clopper_pearson_upper(events, trials, 0.975)};
    }
    // 2.5 and 97.5 percentiles of the rate over `resamples` draws of the identities with
    // replacement (each with all its trials): carries the dependence within a person.
    std::pair<double, double> identity_bootstrap(int resamples, unsigned seed = 12) const {
        std::vector<std::pair<std::size_t, std::size_t>> c;
        for (const auto& e : by_id)
            if (e.second.second > 0) c.push_back(e.second);
        if (c.empty() || resamples < 1) return {NAN, NAN};
        std::mt19937 rng(seed);
        std::uniform_int_distribution<std::size_t> pick(0, c.size() - 1);
        std::vector<double> rates;
        for (int b = 0; b < resamples; ++b) {
            std::size_t e = 0, t = 0;
            for (std::size_t i = 0; i < c.size(); ++i) {
                const auto& x = c[pick(rng)];
                e += x.first, t += x.second;
            }
            rates.push_back(t ? double(e) / double(t) : 0.0);
        }
        std::sort(rates.begin(), rates.end());
        auto at = [&](double q) {
            return rates[std::min(rates.size() - 1,
                                  static_cast<std::size_t>(q * double(rates.size())))];
        };
        return {at(0.025), at(0.975)};
    }
};

// One row of the pooled table: a model at one rule and target, over every fold.
struct PooledOpenSetRow {
    std::string name;
    double target = NAN;
    std::vector<OpenSetRow> folds;  // in fold order
    PooledRate far, frr;
    std::size_t ambiguous = 0, wrong = 0, calibrated = 0, no_face_strangers = 0,
                no_face_enrolled = 0, retry_strangers = 0, retry_enrolled = 0;
    std::size_t stranger_probes_kept = 0, strangers_accepted_kept = 0, enrolled_probes_kept = 0,
                enrolled_rejected_kept = 0;
    double threshold_min = INFINITY, threshold_max = -INFINITY, pair_bound_max = 0,
           door_bound_max = 0;
    void add(const OpenSetRow& r) {
        folds.push_back(r);
        far.add(r.stranger_by_id);
        frr.add(r.enrolled_by_id);
        ambiguous += r.ambiguous, wrong += r.wrong, calibrated += r.point.calibrated;
        no_face_strangers += r.no_face_strangers, no_face_enrolled += r.no_face_enrolled;
        retry_strangers += r.retry_strangers, retry_enrolled += r.retry_enrolled;
        stranger_probes_kept += r.stranger_probes_kept,
            strangers_accepted_kept += r.strangers_accepted_kept;
        enrolled_probes_kept += r.enrolled_probes_kept,
            enrolled_rejected_kept += r.enrolled_rejected_kept;
        threshold_min = std::min(threshold_min, r.point.threshold),
        threshold_max = std::max(threshold_max, r.point.threshold);
        pair_bound_max = std::max(pair_bound_max, r.point.pair_far_bound);
        door_bound_max = std::max(door_bound_max, r.point.door_far_bound);
    }
};

// Every model on every fold: the rows @ 0.6 and @ calibrated for each target (and the door
// statistic's when asked). Returns the pooled rows (each with its per-fold rows) and, through
// `fold0_counts`, what fold 0 was built of.
inline std::vector<PooledOpenSetRow> run_open_set_folds(
    const std::vector<OpenSetModel>& models, const std::vector<int>& test_labels,
    const std::vector<int>& adapt_labels, const SiteMask* test_site, const SiteMask* adapt_site,
    const OpenSetFoldOptions& o, OpenSetCounts* fold0_counts = nullptr) {
    using S = OpenSet::Statistic;
    auto folds = make_open_set_folds(test_labels, o.folds, o.enrolled);
    for (auto& fold : folds) fold.count_frame_repeats = o.count_frame_repeats;
    std::vector<PooledOpenSetRow> rows;
    auto row = [&](std::size_t& slot, const std::string& name, double target) -> PooledOpenSetRow& {
        if (slot == rows.size()) {
            PooledOpenSetRow r;
            r.name = name;
            r.target = target;
            rows.push_back(std::move(r));
        }
        return rows[slot++];
    };
    for (std::size_t f = 0; f < folds.size(); ++f) {
        std::size_t slot = 0;
        for (const auto& m : models) {
            const OpenSet set(*m.test, test_labels, *m.adapt, adapt_labels, test_site, adapt_site,
                              folds[f], o.frames, o.holdout);
            if (f == 0 && fold0_counts) *fold0_counts = set.counts();
            row(slot, m.name + " @ 0.6", NAN)
                .add(set.measure(m.name + " @ 0.6", set.legacy(o.targets.front()), o.door_quality_gate));
            for (double target : o.targets)
                for (S s : {S::entry_pairs, S::nearest_identity}) {
                    if (s == S::nearest_identity && !o.door_statistic) continue;
                    const std::string name = m.name + " @ calibrated" +
                                             (s == S::nearest_identity ? " (door statistic)" : "");
                    row(slot, name, target).add(set.measure(name, set.calibrated(target, s), o.door_quality_gate));
                }
        }
    }
    return rows;
}

inline std::string open_set_target(double t) {
    if (std::isnan(t)) return "- (0.6 fixed)";
    char b[16];
    std::snprintf(b, sizeof b, "%.0e", t);
    return b;
}

// The folds, one line each: who is enrolled.
inline void print_open_set_folds(const std::vector<OpenSetFold>& folds) {
    for (std::size_t f = 0; f < folds.size(); ++f) {
        std::printf("fold %zu: enrolled", f);
        for (int id : folds[f].enrolled) std::printf(" %d", id);
        std::printf("\n");
    }
}

// Per fold: one line per row and fold.
inline void print_open_set_per_fold(const std::vector<PooledOpenSetRow>& rows) {
    std::printf(
        "\nopen set per fold: | model @ threshold | target door FAR | fold | threshold | "
        "calibration's pair FAR "
        "bound (one probe vs one entry) | its door FAR bound (Sidak over E entries) | measured "
        "open-set FAR, "
        "a door rate (strangers accepted as anyone / stranger probes; 95%% CP) | FRR (enrolled "
        "rejected or "
        "wrong / enrolled probes) |\n|---|---|---|---|---|---|---|---|\n");
    for (const auto& r : rows)
        for (std::size_t f = 0; f < r.folds.size(); ++f) {
            const auto& x = r.folds[f];
            std::printf(
                "| %s | %s | %zu | %.4f | %.2g | %.2g | %.4f (%zu/%zu; %.2g-%.2g) | %.4f (%zu/%zu) "
                "|\n",
                r.name.c_str(), open_set_target(r.target).c_str(), f, x.point.threshold,
                x.point.pair_far_bound, x.point.door_far_bound, x.far(), x.strangers_accepted,
                x.stranger_probes,
                calib::clopper_pearson_lower(x.strangers_accepted, x.stranger_probes, 0.975),
                calib::clopper_pearson_upper(x.strangers_accepted, x.stranger_probes, 0.975),
                x.frr(), x.enrolled_rejected, x.enrolled_probes);
        }
}

// The pooled table.
inline void print_open_set_pooled(const std::vector<PooledOpenSetRow>& rows, std::size_t folds,
                                  int resamples) {
    std::printf(
        "\nopen set pooled over %zu folds (the door's open-set rate: stranger probes accepted as "
        "anyone; the "
        "folds reuse the same images and people, so the decisions are not independent: the CP "
        "interval "
        "assumes they are and is too narrow, the identity bootstrap (%d resamples of whole "
        "identities) "
        "carries the dependence within a person)\n",
        folds, resamples);
    std::printf(
        "| model @ threshold | target door FAR | threshold (min-max over folds) | calibrated folds "
        "| calibration's "
        "pair FAR bound, max (per pair) | its door FAR bound, max (per door) | measured open-set "
        "FAR, a door "
        "rate (accepted/stranger probes) | 95%% CP (as if independent) | 95%% identity bootstrap | "
        "stranger "
        "identities with an accept | only probes the crop store's quality gate would keep: FAR "
        "(accepted/probes), FRR (rejected/probes) | FRR "
        "(rejected or wrong/enrolled probes; ambiguous, wrong) | FRR 95%% CP | FRR 95%% identity "
        "bootstrap | "
        "no_face probes (strangers, enrolled) | retry probes, the door's quality gate (strangers, enrolled; share "
        "of the probes with a face) |\n");
    std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    auto share = [](std::size_t retry, std::size_t decided) {
        return retry + decided ? double(retry) / double(retry + decided) : NAN;
    };
    for (const auto& r : rows) {
        const auto [fl, fu] = r.far.clopper_pearson();
        const auto [bl, bu] = r.far.identity_bootstrap(resamples);
        const auto [rl, ru] = r.frr.clopper_pearson();
        const auto [rbl, rbu] = r.frr.identity_bootstrap(resamples);
        std::printf(
            "| %s | %s | %.4f-%.4f | %zu/%zu | %.2g | %.2g | %.5f (%zu/%zu) | %.2g-%.2g | "
            "%.2g-%.2g | %zu of %zu | "
            "%.5f (%zu/%zu), %.4f (%zu/%zu) | %.4f (%zu/%zu; %zu, %zu) | %.3f-%.3f | %.3f-%.3f | "
            "%zu, %zu | %zu, %zu (%.3f, %.3f) |\n",
            r.name.c_str(), open_set_target(r.target).c_str(), r.threshold_min, r.threshold_max,
            r.calibrated, r.folds.size(), r.pair_bound_max, r.door_bound_max, r.far.rate(),
            r.far.events, r.far.trials, fl, fu, bl, bu, r.far.identities_with_events(),
            r.far.by_id.size(),
            r.stranger_probes_kept
                ? double(r.strangers_accepted_kept) / double(r.stranger_probes_kept)
                : NAN,
            r.strangers_accepted_kept, r.stranger_probes_kept,
            r.enrolled_probes_kept
                ? double(r.enrolled_rejected_kept) / double(r.enrolled_probes_kept)
                : NAN,
            r.enrolled_rejected_kept, r.enrolled_probes_kept, r.frr.rate(), r.frr.events,
            r.frr.trials, r.ambiguous, r.wrong, rl, ru, rbl, rbu, r.no_face_strangers,
            r.no_face_enrolled, r.retry_strangers, r.retry_enrolled,
            share(r.retry_strangers, r.far.trials), share(r.retry_enrolled, r.frr.trials));
    }
}

}  // namespace faceadapt::bench
