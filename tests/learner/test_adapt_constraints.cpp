// Clustering with the site's structure (issue 15): cannot-links are never violated, switched
// tracks are cut, must-links join clusters, on constructed clusters of synthetic blobs; the
// snapshot files that carry the structure.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <random>
#include <set>

#include <torch/torch.h>

#include "dense_jaccard_reference.hpp"
#include "faceadapt/learner/cluster.hpp"
#include "faceadapt/learner/constraints.hpp"
#include "faceadapt/learner/site_simulation.hpp"
#include "faceadapt/learner/site_snapshot.hpp"
#include "test_support.hpp"

namespace fl = faceadapt::learner;

namespace {

fl::SiteStructure blank(int64_t n) {
    fl::SiteStructure s;
    s.track.assign(n, -1);
    s.time_ms.assign(n, 0);
    s.frame.assign(n, -1);
    s.named.assign(n, -1);
    return s;
}

std::vector<std::vector<int64_t>> members_by(const std::vector<int64_t>& truth, int64_t clusters) {
    std::vector<std::vector<int64_t>> m(clusters);
    for (size_t i = 0; i < truth.size(); ++i) m[truth[i]].push_back(static_cast<int64_t>(i));
    return m;
}

fl::ClusterResult from_labels(std::vector<int64_t> labels) {
    fl::ClusterResult r;
    r.labels = std::move(labels);
    for (auto l : r.labels) r.num_clusters = std::max(r.num_clusters, l + 1);
    return r;
}

}  // namespace

// Two people merged into one pseudo-identity (blobs 2k and 2k+1 given one label), with faces of
// both in shared frames: every such cluster is split, no cannot-linked pair stays together, and
// the split follows the people.
TEST(Constraints, CannotLinksAreNeverViolatedAndMergedPeopleAreSplit) {
    std::vector<int64_t> truth;
    const int64_t n = 800, blobs = 10;
    const auto f = fl::reference::synthetic_blobs(n, 64, blobs, 0.09, 11, &truth);
    auto s = blank(n);
    const auto m = members_by(truth, blobs);
    std::vector<int64_t> merged(n);
    for (int64_t i = 0; i < n; ++i) merged[i] = truth[i] / 2;
    int64_t frame = 0;
    for (int64_t k = 0; k < blobs; k += 2)
        for (int j = 0; j < 6; ++j) {  // 6 frames in which a face of each of the two people appears
            s.frame[m[k][j]] = frame;
            s.frame[m[k + 1][j]] = frame;
            ++frame;
        }
    const auto pairs = fl::cannot_link_pairs(s);
    ASSERT_EQ(pairs.size(), 30u);
    fl::ConstraintReport rep;
    const auto r = fl::apply_constraints(f, s, from_labels(merged), {}, &rep);
    EXPECT_EQ(rep.violations_before, 30);
    EXPECT_EQ(fl::count_violations(r.labels, pairs), 0);
    EXPECT_EQ(rep.clusters_split, 5);
    EXPECT_EQ(r.num_clusters, 10);
    EXPECT_GT(fl::adjusted_rand_index(r.labels, truth), 0.99);
}

// Any labels and any cannot-links (random, also inside true people, as a mistaken operator or a
// tracker's duplicate gives): none violated afterwards, whatever the features.
TEST(Constraints, RandomCannotLinksAreNeverViolated) {
    for (uint64_t seed = 0; seed < 5; ++seed) {
        std::vector<int64_t> truth;
        const int64_t n = 500;
        const auto f = fl::reference::synthetic_blobs(n, 32, 8, 0.2, 100 + seed, &truth);
        std::mt19937_64 rng(seed);
        auto s = blank(n);
        std::uniform_int_distribution<int64_t> pick(0, n - 1), few(0, 3);
        for (int k = 0; k < 300; ++k) {
            const int64_t a = pick(rng), b = pick(rng);
            if (a != b) s.cannot.emplace_back(a, b);
        }
        for (int64_t i = 0; i < n; ++i) {
            s.frame[i] = i % 7 == 0 ? pick(rng) % 40 : -1;   // random shared frames
            s.track[i] = i % 3 == 0 ? pick(rng) % 60 : -1;   // random tracks
            s.time_ms[i] = i;
            s.named[i] = i % 50 == 0 ? few(rng) : -1;        // operator groups
        }
        std::vector<int64_t> labels(n);
        for (auto& l : labels) l = few(rng) - 1;  // 3 clusters and noise
        const auto pairs = fl::cannot_link_pairs(s);
        fl::ConstraintReport rep;
        const auto r = fl::apply_constraints(f, s, from_labels(labels), {}, &rep);
        EXPECT_GT(rep.violations_before, 0) << seed;
        EXPECT_EQ(fl::count_violations(r.labels, pairs), 0) << seed;
        for (auto l : r.labels) ASSERT_TRUE(l >= -1 && l < r.num_clusters);
    }
}

// A track that continues with another person (an identity switch) is cut where it switches; a
// track of one person is left whole; the switch does not join the two people's clusters.
TEST(Constraints, SwitchedTrackIsSplit) {
    std::vector<int64_t> truth;
    const int64_t n = 600, blobs = 12;
    const auto f = fl::reference::synthetic_blobs(n, 64, blobs, 0.12, 21, &truth);
    const auto m = members_by(truth, blobs);
    auto s = blank(n);
    int64_t t = 1000;
    for (int j = 0; j < 4; ++j) s.track[m[0][j]] = 7, s.time_ms[m[0][j]] = t++;  // person 0 ...
    for (int j = 0; j < 4; ++j) s.track[m[1][j]] = 7, s.time_ms[m[1][j]] = t++;  // ... then person 1
    for (int j = 0; j < 6; ++j) s.track[m[2][j]] = 9, s.time_ms[m[2][j]] = t++;  // person 2 only
    const double thr = fl::switch_threshold(f, s, 0.95);
    int64_t cuts = 0;
    const auto seg = fl::split_switched_tracks(f, s, thr, &cuts);
    EXPECT_EQ(cuts, 1);
    for (int j = 1; j < 4; ++j) EXPECT_EQ(seg[m[0][j]], seg[m[0][0]]);
    for (int j = 1; j < 4; ++j) EXPECT_EQ(seg[m[1][j]], seg[m[1][0]]);
    EXPECT_NE(seg[m[0][0]], seg[m[1][0]]);
    for (int j = 1; j < 6; ++j) EXPECT_EQ(seg[m[2][j]], seg[m[2][0]]);
    EXPECT_EQ(seg[m[3][0]], -1);
    // Through apply_constraints: with the split, the two people stay apart even with a second
    // switched track linking them; without it they would be joined.
    for (int j = 4; j < 6; ++j) s.track[m[0][j]] = 8, s.time_ms[m[0][j]] = t++;
    for (int j = 4; j < 6; ++j) s.track[m[1][j]] = 8, s.time_ms[m[1][j]] = t++;
    const auto r = fl::apply_constraints(f, s, from_labels(truth), {});
    EXPECT_NE(r.labels[m[0][0]], r.labels[m[1][0]]);
    fl::ConstraintOptions no_split;
    no_split.split_tracks = false;
    const auto joined = fl::apply_constraints(f, s, from_labels(truth), no_split);
    EXPECT_EQ(joined.labels[m[0][0]], joined.labels[m[1][0]]);
}

// Must-links: an operator's named group joins the clusters it spans at once; tracks need two
// distinct tracks to join two clusters; noise in a track adopts the track's cluster.
TEST(Constraints, NamedGroupsAndTracksJoinClusters) {
    std::vector<int64_t> truth;
    const int64_t n = 400, blobs = 8;
    const auto f = fl::reference::synthetic_blobs(n, 64, blobs, 0.09, 31, &truth);
    const auto m = members_by(truth, blobs);
    auto base = truth;
    base[m[5][0]] = -1;  // a noise point ...
    auto s = blank(n);
    s.named[m[0][0]] = 0;
    s.named[m[1][0]] = 0;  // the operator says person 0 and person 1 are one ("this is X")
    s.track[m[2][0]] = 1, s.track[m[3][0]] = 1;  // one track across clusters 2 and 3
    s.track[m[4][0]] = 2, s.track[m[4][1]] = 2, s.track[m[5][0]] = 2;  // ... in a track of person 4
    fl::ConstraintOptions o;
    o.split_tracks = false;
    fl::ConstraintReport rep;
    auto r = fl::apply_constraints(f, s, from_labels(base), o, &rep);
    EXPECT_EQ(r.labels[m[0][5]], r.labels[m[1][5]]);
    EXPECT_NE(r.labels[m[2][5]], r.labels[m[3][5]]);  // one track is not enough
    EXPECT_EQ(r.labels[m[5][0]], r.labels[m[4][3]]);  // adopted (and moved with its track)
    EXPECT_EQ(r.num_clusters, blobs - 1);
    s.track[m[2][1]] = 3, s.track[m[3][1]] = 3;  // a second track across 2 and 3
    r = fl::apply_constraints(f, s, from_labels(base), o, &rep);
    EXPECT_EQ(r.labels[m[2][5]], r.labels[m[3][5]]);
    // A cannot-link between the operator's group and a face of cluster 1 wins over nothing:
    // the unit refuses it, the cluster is split, nothing violated.
    s.cannot.emplace_back(m[0][0], m[1][0]);
    r = fl::apply_constraints(f, s, from_labels(base), o, &rep);
    EXPECT_EQ(rep.refused_unions, 1);
    EXPECT_EQ(fl::count_violations(r.labels, fl::cannot_link_pairs(s)), 0);
}

// Look-alike people (blob 2k+1 a step from blob 2k) that the eps rule merges: the cannot-linked
// pairs (faces of different people sharing frames; two of the six look-alike pairs among them)
// say how often the clustering merges two people, so eps is lowered until at most the allowed
// share of them sits in one cluster, and all six look-alike pairs come apart, the four that
// were never cannot-linked too. A clustering that already
// keeps the pairs apart is left exactly as cluster_features() gives it.
TEST(Constraints, EpsIsLoweredUntilTheCannotLinksAgree) {
    const int64_t people = 12, per = 40, n = people * per, dim = 64;
    auto gen = at::detail::createCPUGenerator(41);
    auto centres = torch::nn::functional::normalize(at::randn({people, dim}, gen),
                                                    torch::nn::functional::NormalizeFuncOptions().dim(1));
    for (int64_t k = 0; k < people; k += 2)  // the twin of person k: 0.5 away
        centres[k + 1] = centres[k] + 0.5 * torch::nn::functional::normalize(
                                                  at::randn({dim}, gen), torch::nn::functional::NormalizeFuncOptions().dim(0));
    std::vector<int64_t> truth(n);
    for (int64_t i = 0; i < n; ++i) truth[i] = i / per;
    const auto f = torch::nn::functional::normalize(
                       centres.index_select(0, torch::tensor(truth)) + 0.05 * at::randn({n, dim}, gen),
                       torch::nn::functional::NormalizeFuncOptions().dim(1))
                       .contiguous();
    auto s = blank(n);
    int64_t frame = 0;
    std::mt19937_64 rng(5);
    std::vector<int64_t> used(people, 0);  // each face in one frame at most
    auto share_frame = [&](int64_t a, int64_t b) {
        s.frame[a * per + used[a]++] = frame;
        s.frame[b * per + used[b]++] = frame;
        ++frame;
    };
    for (int j = 0; j < 3; ++j) share_frame(0, 1), share_frame(2, 3);  // two twin pairs seen together
    for (int j = 0; j < 54; ++j) {  // and random pairs of people, never the other twins
        int64_t a = rng() % people, b = rng() % people;
        while (b == a || (b / 2 == a / 2 && a >= 4)) b = rng() % people;
        share_frame(a, b);
    }
    const auto pairs = fl::cannot_link_pairs(s);
    ASSERT_EQ(pairs.size(), 60u);
    fl::ClusterOptions co;
    co.eps_rule = "fixed";
    co.eps = 0.9;  // a rule that merges the twins (and more)
    const auto plain = fl::cluster_features(f, co);
    const double allowed = 0.01;
    ASSERT_GT(fl::count_violations(plain.labels, pairs), int64_t(allowed * pairs.size()))
        << "the test's premise: the rule's eps merges people who share frames";

    fl::ConstraintOptions o;
    o.max_violation_rate = allowed;
    fl::EpsChoice c;
    const auto r = fl::cluster_within_cannot_links(f, co, s, o, &c);
    EXPECT_DOUBLE_EQ(c.rule_eps, 0.9);
    EXPECT_LT(c.eps, 0.9);
    EXPECT_NEAR(r.eps, c.eps, 1e-12);
    EXPECT_GT(c.steps, 0);
    EXPECT_EQ(c.pairs, int64_t(pairs.size()));
    EXPECT_EQ(c.rule_violations, fl::count_violations(plain.labels, pairs));
    EXPECT_EQ(c.violations, fl::count_violations(r.labels, pairs));
    EXPECT_LE(c.violations, int64_t(allowed * pairs.size()));
    EXPECT_LE(2 * r.num_noise, n);
    // The twins, never cannot-linked, are apart: the lowered eps follows the people.
    EXPECT_LT(fl::adjusted_rand_index(plain.labels, truth), 0.9);
    EXPECT_GT(fl::adjusted_rand_index(r.labels, truth), 0.99);
    for (int64_t k = 0; k < people; k += 2) {  // each look-alike pair in two clusters, each whole
        std::set<int64_t> a(r.labels.begin() + k * per, r.labels.begin() + (k + 1) * per),
            b(r.labels.begin() + (k + 1) * per, r.labels.begin() + (k + 2) * per);
        EXPECT_EQ(a.size(), 1u) << k;
        EXPECT_EQ(b.size(), 1u) << k;
        EXPECT_NE(*a.begin(), *b.begin()) << k;
        EXPECT_GE(*a.begin(), 0) << k;
    }
    // The same as a clustering at that eps.
    auto at_eps = co;
    at_eps.eps = c.eps;
    EXPECT_EQ(fl::cluster_features(f, at_eps).labels, r.labels);

    // Already apart (a strict enough eps rule), or a rate of 1, or too few pairs: as is.
    for (int k = 0; k < 3; ++k) {
        auto co2 = co;
        auto o2 = o;
        auto s2 = s;
        if (k == 0) co2.eps = c.eps;
        if (k == 1) o2.max_violation_rate = 1.0;
        if (k == 2) o2.min_rate_pairs = int(pairs.size()) + 1;
        fl::EpsChoice c2;
        const auto same = fl::cluster_within_cannot_links(f, co2, s2, o2, &c2);
        EXPECT_EQ(same.labels, fl::cluster_features(f, co2).labels) << k;
        EXPECT_EQ(c2.steps, 0) << k;
        EXPECT_DOUBLE_EQ(c2.eps, co2.eps) << k;
    }
}

// Cannot-links that no eps can honour (a mistaken operator: "not the same" inside one person,
// many times over): eps goes down only while at most half the rows are noise, so a clustering
// is left to train on; the pairs it still holds are apply_constraints()'s to split. A bad rate is
// refused.
TEST(Constraints, EpsIsNeverLoweredIntoMostlyNoise) {
    std::vector<int64_t> truth;
    const int64_t n = 400;
    const auto f = fl::reference::synthetic_blobs(n, 64, 8, 0.09, 51, &truth);
    const auto m = members_by(truth, 8);
    auto s = blank(n);
    for (int64_t k = 0; k < 8; ++k)
        for (int j = 0; j + 1 < 10; j += 2) s.cannot.emplace_back(m[k][j], m[k][j + 1]);  // within one person
    fl::ClusterOptions co;
    co.eps_rule = "fixed";
    co.eps = 0.7;
    fl::EpsChoice c;
    const auto r = fl::cluster_within_cannot_links(f, co, s, {}, &c);
    EXPECT_GT(c.violations, 0);
    EXPECT_LE(2 * r.num_noise, n);
    EXPECT_GT(r.num_clusters, 0);
    const auto after = fl::apply_constraints(f, s, r, {});
    EXPECT_EQ(fl::count_violations(after.labels, fl::cannot_link_pairs(s)), 0);
    for (double bad : {0.0, -0.1, 1.5, std::nan("")}) {
        fl::ConstraintOptions o;
        o.max_violation_rate = bad;
        EXPECT_THROW(fl::cluster_within_cannot_links(f, co, s, o), std::invalid_argument) << bad;
    }
    EXPECT_THROW(fl::cluster_within_cannot_links(f, co, blank(n - 1), {}), std::invalid_argument);
}

TEST(Constraints, StructureValidationAndSubset) {
    auto s = blank(4);
    s.track = {3, 3, -1, 4};
    s.cannot = {{0, 2}, {1, 3}};
    EXPECT_NO_THROW(s.validate(4));
    EXPECT_THROW(s.validate(5), std::invalid_argument);
    auto bad = s;
    bad.cannot.emplace_back(2, 2);
    EXPECT_THROW(bad.validate(4), std::invalid_argument);
    const auto sub = s.subset({3, 1, 0});
    EXPECT_EQ(sub.track, (std::vector<int64_t>{4, 3, 3}));
    ASSERT_EQ(sub.cannot.size(), 1u);  // (0, 2) lost its end 2
    EXPECT_EQ(sub.cannot[0], (std::pair<int64_t, int64_t>{1, 0}));
    EXPECT_FALSE(s.empty());
    EXPECT_TRUE(blank(3).empty());
    const auto f = torch::nn::functional::normalize(torch::randn({3, 8}), torch::nn::functional::NormalizeFuncOptions().dim(1));
    EXPECT_THROW(fl::apply_constraints(f, blank(3), from_labels({0, 0}), {}), std::invalid_argument);
}

// The snapshot carries frame and track: index.csv rows give tracks (per camera), frames (same
// camera and unix_ms) and times; constraints.csv gives named groups and cannot-links, a name
// standing for its crops. Both files round-trip; malformed ones are refused naming the line.
TEST(SiteSnapshot, IndexAndConstraintsGiveTheStructure) {
    faceadapt::test::TempDir dir;
    std::vector<fl::SnapshotRow> rows = {
        {10, "door", 5000, 1, 0.9, "door/10.png"}, {11, "door", 5000, 2, 0.8, "door/11.png"},
        {12, "door", 5100, 1, 0.7, "door/12.png"}, {13, "hall", 5000, 1, 0.6, "/abs/13.png"},
        {14, "hall", 6000, -1, 0.5, "hall/14.png"}};
    fl::write_snapshot_index(dir.path() / "index.csv", rows);
    const auto back = fl::read_snapshot_index(dir.path() / "index.csv");
    ASSERT_EQ(back.size(), rows.size());
    EXPECT_EQ(back[3].camera, "hall");
    EXPECT_EQ(back[3].file, "/abs/13.png");
    EXPECT_EQ(back[1].track, 2);
    fl::OperatorConstraints c;
    c.must = {{12, "Ann"}, {14, "Ann"}, {99, "Bob"}};
    c.cannot = {{{13, ""}, {-1, "Ann"}}, {{10, ""}, {11, ""}}};
    fl::write_constraints(dir.path() / "constraints.csv", c);
    const auto cb = fl::read_constraints(dir.path() / "constraints.csv");
    EXPECT_EQ(cb.must, c.must);
    EXPECT_EQ(cb.cannot, c.cannot);
    EXPECT_TRUE(fl::read_constraints(dir.path() / "absent.csv").empty());

    fl::StructureCounts counts;
    const auto s = fl::site_structure(back, cb, &counts);
    ASSERT_NO_THROW(s.validate(5));
    EXPECT_EQ(s.track[0], s.track[2]);  // door track 1
    EXPECT_NE(s.track[0], s.track[1]);
    EXPECT_NE(s.track[0], s.track[3]);  // hall's track 1 is another track
    EXPECT_EQ(s.track[4], -1);
    EXPECT_EQ(s.frame[0], s.frame[1]);  // one frame of the door camera
    EXPECT_NE(s.frame[0], s.frame[3]);  // same time, other camera
    EXPECT_EQ(s.time_ms[2], 5100);
    EXPECT_EQ(s.named[2], s.named[4]);
    EXPECT_GE(s.named[2], 0);
    EXPECT_EQ(counts.tracks, 3);
    EXPECT_EQ(counts.shared_frames, 1);
    EXPECT_EQ(counts.unknown_ids, 1);  // crop 99
    const auto pairs = fl::cannot_link_pairs(s);
    const std::vector<std::pair<int64_t, int64_t>> expect = {{0, 1}, {2, 3}, {3, 4}};
    EXPECT_EQ(pairs, expect);

    auto refused = [&](const std::string& name, const std::string& text, const std::string& what) {
        std::ofstream(dir.path() / name) << text;
        try {
            if (name == "index.csv") fl::read_snapshot_index(dir.path() / name);
            else fl::read_constraints(dir.path() / name);
            ADD_FAILURE() << text << " accepted";
        } catch (const std::invalid_argument& e) {
            EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
        }
    };
    refused("index.csv", "id,camera,unix_ms,track,score,file\n1,door,x,1,0.5,f.png\n", "line 2 has a bad number");
    refused("index.csv", "id,camera\n", "header");
    refused("index.csv", "id,camera,unix_ms,track,score,file\n1,do/or,5,1,0.5,f.png\n", "bad camera");
    refused("constraints.csv", "kind,a,b\nmust,1,Ann\nmaybe,1,2\n", "line 3 has a kind");
    refused("constraints.csv", "kind,a,b\ncannot,1,name:\n", "bad name");
    refused("constraints.csv", "kind,a,b\ncannot,1\n", "3 fields");
    // Hostile text: control characters and escapes in names and file names, an oversize line.
    refused("constraints.csv", "kind,a,b\nmust,1,\x1b[31mAnn\n", "bad name");
    refused("constraints.csv", "kind,a,b\ncannot,1,name:Ann\nBob\n", "line 3 does not have 3 fields");
    refused("constraints.csv", "kind,a,b\nmust,1," + std::string(65, 'A') + "\n", "bad name");
    refused("index.csv", "id,camera,unix_ms,track,score,file\n1,door,5,1,0.5,f\x1b]0;x\x07.png\n", "control character");
    refused("index.csv", "id,camera,unix_ms,track,score,file\n1,door,5,1,0.5,\n", "no file name");
    refused("index.csv", "id,camera,unix_ms,track,score,file\n1,door,5,1,0.5,f.png\n" + std::string(5000, 'x') + "\n",
            "line 3 is longer than 4096 bytes");
    refused("constraints.csv", std::string(8 << 20, 'k'), "line 1 is longer than 4096 bytes");  // one 8 MB line, no newline
    refused("constraints.csv", "kind,a,b\ncannot,1,2\n" + std::string(8 << 20, ','), "line 3 is longer than 4096 bytes");
}

// "same" rows (the console's merge of two groups, one crop of each) put both crops, and what is
// named or merged with them, in one named group; unknown ids are counted.
TEST(SiteSnapshot, SameRowsJoinCropsAndNamesIntoOneNamedGroup) {
    const std::vector<fl::SnapshotRow> rows = {{1, "door", 0, 1, 0.9, "a"}, {2, "door", 0, 2, 0.9, "b"},
                                               {3, "door", 0, 3, 0.9, "c"}, {4, "hall", 0, 1, 0.9, "d"},
                                               {5, "hall", 0, 2, 0.9, "e"}, {6, "hall", 0, 3, 0.9, "f"}};
    fl::OperatorConstraints c;
    c.must = {{4, "Ann"}, {6, "Bob"}};
    c.same = {{1, 2}, {2, 4}, {3, 77}};
    fl::StructureCounts counts;
    const auto s = fl::site_structure(rows, c, &counts);
    ASSERT_NO_THROW(s.validate(6));
    EXPECT_GE(s.named[0], 0);
    EXPECT_EQ(s.named[0], s.named[1]);
    EXPECT_EQ(s.named[1], s.named[3]) << "merged with Ann's crop: Ann's group";
    EXPECT_EQ(s.named[2], -1) << "its merge names a crop not in the rows";
    EXPECT_EQ(s.named[4], -1);
    EXPECT_GE(s.named[5], 0);
    EXPECT_NE(s.named[5], s.named[0]) << "Bob stays his own group";
    EXPECT_EQ(counts.same, 2);
    EXPECT_EQ(counts.unknown_ids, 1);
    EXPECT_FALSE(s.empty());
}

// The site simulation: every sample once; tracks of consecutive samples of one identity (in
// their order), except the switched ones, which continue with another identity; the crops of
// one frame are all of different identities; deterministic in the seed.
TEST(SiteSimulation, TracksSwitchesAndFramesFollowTheProtocol) {
    std::vector<int64_t> identity;
    for (int id = 0; id < 30; ++id)
        for (int k = 0; k < 14; ++k) identity.push_back(id);
    for (double rate : {0.0, 0.3}) {
        fl::SimulationOptions o;
        o.switch_rate = rate;
        o.seed = 5;
        const auto site = fl::simulate_site(identity, o);
        const auto n = static_cast<int64_t>(identity.size());
        ASSERT_EQ(static_cast<int64_t>(site.order.size()), n);
        std::map<int64_t, std::vector<int64_t>> tracks;  // in time order
        for (int64_t i : site.order) tracks[site.track[i]].push_back(i);
        EXPECT_EQ(static_cast<int64_t>(tracks.size()), site.tracks);
        int64_t switched = 0;
        for (const auto& [t, m] : tracks) {
            EXPECT_LE(m.size(), 8u);
            std::set<int64_t> ids;
            for (size_t k = 0; k < m.size(); ++k) {
                ids.insert(identity[m[k]]);
                if (k > 0 && identity[m[k]] == identity[m[k - 1]]) EXPECT_EQ(m[k], m[k - 1] + 1);  // consecutive
                if (k > 0) EXPECT_GT(site.unix_ms[m[k]], site.unix_ms[m[k - 1]]);
            }
            EXPECT_LE(ids.size(), 2u);
            switched += ids.size() == 2;
        }
        EXPECT_EQ(switched, site.switched);
        if (rate == 0.0) EXPECT_EQ(switched, 0);
        else EXPECT_NEAR(static_cast<double>(switched) / site.tracks, rate, 0.15);
        std::map<std::pair<std::string, int64_t>, std::vector<int64_t>> frames;
        for (int64_t i = 0; i < n; ++i) frames[{site.camera[i], site.unix_ms[i]}].push_back(identity[i]);
        int64_t shared = 0;
        for (const auto& [key, ids] : frames) {
            EXPECT_EQ(std::set<int64_t>(ids.begin(), ids.end()).size(), ids.size()) << "one identity twice in a frame";
            EXPECT_LE(ids.size(), 4u);
            shared += ids.size() >= 2;
        }
        EXPECT_EQ(shared, site.shared_frames);
        EXPECT_GT(shared, n / 8);
        // Deterministic; another seed gives another site.
        EXPECT_EQ(fl::simulate_site(identity, o).track, site.track);
        o.seed = 6;
        EXPECT_NE(fl::simulate_site(identity, o).track, site.track);
    }
    fl::SimulationOptions bad;
    bad.switch_rate = 1.5;
    EXPECT_THROW(fl::simulate_site(identity, bad), std::invalid_argument);
}
