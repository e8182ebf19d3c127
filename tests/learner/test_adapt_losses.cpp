// Losses against hand-computed values, the EMA update and schedule, net perturbation, the
// training views, augmentation, P x K sampler, prefetcher and chip files.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <set>

#include <torch/torch.h>

#include "faceadapt/learner/ema.hpp"
#include "faceadapt/learner/face_resnet.hpp"
#include "faceadapt/learner/losses.hpp"
#include "faceadapt/learner/training_data.hpp"
#include "test_support.hpp"

namespace fl = faceadapt::learner;

static double softplus(double x) { return std::log1p(std::exp(x)); }

TEST(Losses, LabelSmoothedCrossEntropy) {
    // Uniform logits: whatever the smoothing, -log(1/2).
    EXPECT_NEAR(fl::label_smoothed_ce(torch::zeros({1, 2}), torch::tensor({0}, torch::kInt64), 0.1).item<double>(),
                std::log(2.0), 1e-6);
    // p = [0.25, 0.75], target 1, e = 0.2 -> t = [0.1, 0.9]: -(0.1 ln .25 + 0.9 ln .75) = 0.397543.
    auto logits = torch::tensor({{0.0f, static_cast<float>(std::log(3.0))}});
    EXPECT_NEAR(fl::label_smoothed_ce(logits, torch::tensor({1}, torch::kInt64), 0.2).item<double>(), 0.397543, 1e-5);
    // Mean over rows: the same row twice gives the same value.
    EXPECT_NEAR(fl::label_smoothed_ce(logits.repeat({2, 1}), torch::tensor({1, 1}, torch::kInt64), 0.2).item<double>(),
                0.397543, 1e-5);
    EXPECT_THROW(fl::label_smoothed_ce(logits, torch::tensor({1, 0}, torch::kInt64), 0.1), std::invalid_argument);
}

TEST(Losses, SoftCrossEntropy) {
    // student p = [.25, .75], teacher q = [.5, .5]: -(.5 ln .25 + .5 ln .75) = 0.836988.
    auto logits = torch::tensor({{0.0f, static_cast<float>(std::log(3.0))}}).requires_grad_(true);
    auto loss = fl::soft_ce(logits, torch::zeros({1, 2}));
    EXPECT_NEAR(loss.item<double>(), 0.836988, 1e-5);
    loss.backward();  // d/dlogits = p - q = [-.25, .25]
    EXPECT_NEAR(logits.grad()[0][0].item<double>(), -0.25, 1e-6);
    EXPECT_NEAR(logits.grad()[0][1].item<double>(), 0.25, 1e-6);
    EXPECT_THROW(fl::soft_ce(torch::zeros({1, 2}), torch::zeros({1, 3})), std::invalid_argument);
}

// Four 2-D points: 0 (0,0) and 1 (1,0) of label 0; 2 (0,2) and 3 (3,0) of label 1.
// Batch-hard: rows 0,1: d_ap 1, d_an 2; rows 2,3: d_ap sqrt(13), d_an 2.
static torch::Tensor four_points(double scale = 1.0) {
    return torch::tensor({{0.0f, 0.0f}, {1.0f, 0.0f}, {0.0f, 2.0f}, {3.0f, 0.0f}}) * scale;
}
static const torch::Tensor kLabels4 = torch::tensor({0, 0, 1, 1}, torch::kInt64);

TEST(Losses, BatchHardSoftmaxTriplet) {
    const double r13 = std::sqrt(13.0);
    for (double s : {1.0, 10.0}) {
        const double expect = (2 * softplus(s * (1 - 2)) + 2 * softplus(s * (r13 - 2))) / 4;
        EXPECT_NEAR(fl::softmax_triplet(four_points(), kLabels4, s).item<double>(), expect, 1e-4) << "scale " << s;
    }
    auto d = fl::euclidean_distances(four_points());
    EXPECT_NEAR(d[1][2].item<double>(), std::sqrt(5.0), 1e-5);
    EXPECT_NEAR(d[0][0].item<double>(), 1e-6, 1e-6);  // sqrt of the 1e-12 clamp
}

TEST(Losses, SoftTriplet) {
    // Teacher = student x 2: same mined pairs, distances doubled.
    const double r13 = std::sqrt(13.0), s = 1.0;
    auto row = [&](double ap, double an) {
        const double lp_ap = -softplus(s * (an - ap)), lp_an = -softplus(s * (ap - an));
        const double q_ap = 1 / (1 + std::exp(2 * s * (an - ap))), q_an = 1 - q_ap;
        return -(q_ap * lp_ap + q_an * lp_an);
    };
    const double expect = (2 * row(1, 2) + 2 * row(r13, 2)) / 4;
    EXPECT_NEAR(fl::soft_triplet(four_points(), four_points(2.0), kLabels4, s).item<double>(), expect, 1e-4);
    // Teacher equal to the student: the loss is the entropy of the student's own pair softmax.
    auto self = fl::soft_triplet(four_points(), four_points(), kLabels4, s).item<double>();
    EXPECT_GT(self, 0.0);
    EXPECT_THROW(fl::soft_triplet(four_points(), torch::zeros({3, 2}), kLabels4, 1.0), std::invalid_argument);
}

TEST(Losses, L2SpAndSimilarityDistillation) {
    std::vector<torch::Tensor> p{torch::tensor({1.0f, 2.0f}), torch::tensor({3.0f})};
    std::vector<torch::Tensor> s{torch::tensor({0.0f, 0.0f}), torch::tensor({1.0f})};
    EXPECT_NEAR(fl::l2sp_penalty(p, s).item<double>(), 9.0, 1e-6);
    EXPECT_THROW(fl::l2sp_penalty(p, {s[0]}), std::invalid_argument);
    auto e = torch::tensor({{1.0f, 0.0f}, {0.0f, 1.0f}});
    EXPECT_NEAR(fl::similarity_distillation(e, e * 3).item<double>(), 0.0, 1e-7);
    // sim(e) = I, sim(ref) = all ones: off-diagonals differ by 1 -> mean of [0,1,1,0] = 0.5.
    EXPECT_NEAR(fl::similarity_distillation(e, torch::tensor({{1.0f, 0.0f}, {2.0f, 0.0f}})).item<double>(), 0.5, 1e-6);
}

struct TwoParams : torch::nn::Module {
    TwoParams(float a, float b) {
        w = register_parameter("w", torch::tensor({a, b}));
        v = register_parameter("v", torch::tensor({a * 10}));
    }
    torch::Tensor w, v;
};

TEST(Ema, UpdateAndSchedule) {
    TwoParams mean(1, 2), student(3, 4);
    fl::ema_update(mean, student, 0.9);
    EXPECT_NEAR(mean.w[0].item<double>(), 1.2, 1e-6);
    EXPECT_NEAR(mean.w[1].item<double>(), 2.2, 1e-6);
    EXPECT_NEAR(mean.v[0].item<double>(), 12.0, 1e-5);
    EXPECT_EQ(student.w[0].item<float>(), 3.0f);  // the student is untouched
    fl::ema_update(mean, student, 0.0);           // lambda 0: copy
    EXPECT_NEAR(mean.w[1].item<double>(), 4.0, 1e-6);
    fl::EmaSchedule mmt{"mmt", 0.0};
    EXPECT_DOUBLE_EQ(mmt.at(0), 0.0);
    EXPECT_DOUBLE_EQ(mmt.at(1), 0.5);
    EXPECT_DOUBLE_EQ(mmt.at(9), 0.9);
    EXPECT_DOUBLE_EQ(mmt.at(100000), 0.999);
    EXPECT_DOUBLE_EQ((fl::EmaSchedule{"fixed", 0.5}.at(123)), 0.5);
    EXPECT_THROW((fl::EmaSchedule{"cosine", 0.5}.at(0)), std::invalid_argument);
    EXPECT_THROW((fl::EmaSchedule{"fixed", 1.5}.at(0)), std::invalid_argument);
    struct Other : torch::nn::Module {
        Other() { register_parameter("w", torch::zeros({3})); }
    } other;
    EXPECT_THROW(fl::ema_update(other, student, 0.5), std::invalid_argument);
}

TEST(Ema, PerturbationIsSeededAndScaled) {
    auto a = fl::FaceResNet(fl::FaceResNetOptions{}), b = fl::clone_face_resnet(a), c = fl::clone_face_resnet(a);
    fl::perturb_parameters(*b, 0.02, 7);
    fl::perturb_parameters(*c, 0.02, 7);
    const auto pa = a->named_parameters(), pb = b->named_parameters(), pc = c->named_parameters();
    const auto& w = pa["conv32_down.conv.weight"];
    const auto diff = pb["conv32_down.conv.weight"] - w;
    EXPECT_TRUE(torch::equal(pb["conv32_down.conv.weight"], pc["conv32_down.conv.weight"]));
    EXPECT_NEAR(diff.std().item<double>() / w.std().item<double>(), 0.02, 0.004);
    auto d = fl::clone_face_resnet(a);
    fl::perturb_parameters(*d, 0.02, 8);
    EXPECT_FALSE(torch::equal(d->named_parameters()["conv32_down.conv.weight"], pb["conv32_down.conv.weight"]));
}

static torch::Tensor gradient_chips(int64_t n) {
    auto x = torch::arange(150, torch::kFloat32).view({1, 150, 1, 1}) + torch::arange(150, torch::kFloat32).view({1, 1, 150, 1});
    auto base = (x * 0.5 + torch::arange(n, torch::kFloat32).view({n, 1, 1, 1}) * 7) .remainder(180) + 20;
    return base.expand({n, 150, 150, 3}).clone().to(torch::kUInt8);
}

TEST(TrainingViews, TwoPipelinesDiffer) {
    const auto chips = gradient_chips(3);
    const auto v1 = fl::enhance_chips(chips, fl::kFirstViewSpec), v2 = fl::enhance_chips(chips, fl::kSecondViewSpec);
    EXPECT_EQ(v1.sizes(), chips.sizes());
    EXPECT_FALSE(torch::equal(v1, chips));
    EXPECT_FALSE(torch::equal(v1, v2));
    // The stretch spreads the grey levels to the full range.
    const auto s = fl::enhance_chips(chips, "stretch");
    EXPECT_GT(s.max().item<int>() - s.min().item<int>(), chips.max().item<int>() - chips.min().item<int>());
    EXPECT_TRUE(torch::equal(fl::enhance_chips(chips, ""), chips));
    EXPECT_THROW(fl::enhance_chips(chips, "stretch,blur"), std::invalid_argument);
    EXPECT_THROW(fl::enhance_chips(torch::zeros({2, 150, 150}), "stretch"), std::invalid_argument);
}

TEST(Augment, DeterministicAndFlipExact) {
    const auto chips = gradient_chips(1);
    std::vector<uint8_t> a(150 * 150 * 3), b(a.size()), c(a.size());
    fl::AugmentOptions o;
    const uint8_t* src = chips.data_ptr<uint8_t>();
    fl::augment_chip(src, a.data(), 150, 150, o, 42);
    fl::augment_chip(src, b.data(), 150, 150, o, 42);
    EXPECT_EQ(a, b);
    bool differs = false;
    for (uint64_t seed = 0; seed < 5 && !differs; ++seed) {
        fl::augment_chip(src, c.data(), 150, 150, o, seed + 100);
        differs = c != a;
    }
    EXPECT_TRUE(differs);
    fl::AugmentOptions flip_only{true, 0, 0.0, 0.0, 0.0};
    int flipped = 0;
    for (uint64_t seed = 0; seed < 8; ++seed) {
        fl::augment_chip(src, c.data(), 150, 150, flip_only, seed);
        const bool mirror = c[(10 * 150 + 0) * 3] == src[(10 * 150 + 149) * 3];
        const bool same = std::equal(c.begin(), c.end(), src);
        EXPECT_TRUE(mirror || same);
        flipped += mirror && !same;
    }
    EXPECT_GT(flipped, 0);
}

TEST(Sampler, PkBatchesAreDeterministicAndGrouped) {
    std::vector<int64_t> labels;
    for (int i = 0; i < 60; ++i) labels.push_back(i % 7 == 6 ? -1 : i % 6);
    fl::PkSampler s(labels, 4, 3, 9);
    const auto b = s.batch(0, 0);
    ASSERT_EQ(b.size(), 12u);
    EXPECT_EQ(b, s.batch(0, 0));
    EXPECT_NE(b, s.batch(0, 1));
    std::set<int64_t> ids;
    for (int g = 0; g < 4; ++g) {
        for (int k = 0; k < 3; ++k) {
            ASSERT_GE(labels[b[g * 3 + k]], 0) << "noise sampled";
            EXPECT_EQ(labels[b[g * 3 + k]], labels[b[g * 3]]);
        }
        ids.insert(labels[b[g * 3]]);
    }
    EXPECT_EQ(ids.size(), 4u);
    EXPECT_THROW(fl::PkSampler(std::vector<int64_t>(5, -1), 2, 2, 0), std::invalid_argument);
}

TEST(Prefetch, SameBatchesWhateverTheWorkers) {
    const auto set1 = gradient_chips(12), set2 = fl::enhance_chips(set1, fl::kSecondViewSpec);
    std::vector<int64_t> labels{0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3};
    fl::PkSampler s(labels, 2, 2, 1);
    fl::BatchPrefetcher one(set1, set2, labels, s, {}, 5, 0, 0, 6, 1, 1);
    fl::BatchPrefetcher three(set1, set2, labels, s, {}, 5, 0, 0, 6, 3, 2);
    for (int i = 0; i < 6; ++i) {
        const auto a = one.next(), b = three.next();
        EXPECT_EQ(a.iter, i);
        EXPECT_TRUE(torch::equal(a.indices, b.indices));
        EXPECT_TRUE(torch::equal(a.input1, b.input1));
        EXPECT_TRUE(torch::equal(a.input2, b.input2));
        EXPECT_FALSE(torch::equal(a.input1, a.input2));
        EXPECT_EQ(a.input1.sizes(), (std::vector<int64_t>{4, 3, 150, 150}));
    }
    EXPECT_THROW(one.next(), std::out_of_range);
    // Without augmentation the worker's normalisation equals chips_to_input().
    fl::BatchPrefetcher plain(set1, torch::Tensor(), labels, s, fl::AugmentOptions{false, 0, 0, 0, 0}, 5, 0, 0, 1);
    const auto p = plain.next();
    EXPECT_TRUE(torch::allclose(p.input1, fl::chips_to_input(set1.index_select(0, p.indices)), 1e-6, 1e-6));
    EXPECT_FALSE(p.input2.defined());
}

TEST(ChipsFile, RoundTripAndBadFiles) {
    faceadapt::test::TempDir dir;
    const auto chips = gradient_chips(3);
    fl::save_chips_file(chips, dir.path() / "c.bin");
    EXPECT_TRUE(torch::equal(fl::load_chips_file(dir.path() / "c.bin"), chips));
    std::ofstream(dir.path() / "bad.bin") << "NOTCHIPS and more";
    EXPECT_THROW(fl::load_chips_file(dir.path() / "bad.bin"), std::runtime_error);
    EXPECT_THROW(fl::load_chips_file(dir.path() / "missing.bin"), std::runtime_error);
    std::filesystem::resize_file(dir.path() / "c.bin", 100);
    try {
        fl::load_chips_file(dir.path() / "c.bin");
        FAIL() << "truncated file accepted";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("c.bin"), std::string::npos);
    }
}

// Issue 15: with the site's links each cannot-linked pair drawn is in the batch with both crops
// (a negative the triplet mining sees), images come in track pairs, and links that link
// nothing leave the draws as they were.
TEST(Sampler, SiteLinksGiveNegativesAndTrackPairs) {
    std::vector<int64_t> labels;
    for (int id = 0; id < 20; ++id)
        for (int k = 0; k < 10; ++k) labels.push_back(id);
    fl::SampleLinks none{std::vector<int64_t>(labels.size(), -1), {}};
    const fl::PkSampler plain(labels, 8, 4, 3), unlinked(labels, 8, 4, 3, &none);
    for (int it = 0; it < 5; ++it) EXPECT_EQ(plain.batch(0, it), unlinked.batch(0, it));

    fl::SampleLinks links;
    links.track.resize(labels.size());
    for (size_t i = 0; i < labels.size(); ++i) links.track[i] = static_cast<int64_t>(i / 5);  // 2 tracks per id
    for (int id = 0; id + 1 < 20; id += 2) links.cannot.emplace_back(id * 10 + 3, (id + 1) * 10 + 7);
    const fl::PkSampler s(labels, 8, 4, 3, &links);
    int with_pair = 0, track_pairs = 0, pairs = 0;
    for (int it = 0; it < 40; ++it) {
        const auto b = s.batch(1, it);
        ASSERT_EQ(b.size(), 32u);
        for (const auto& [x, y] : links.cannot) {
            const bool hx = std::find(b.begin(), b.end(), x) != b.end(), hy = std::find(b.begin(), b.end(), y) != b.end();
            const bool ix = std::any_of(b.begin(), b.end(), [&](int64_t v) { return labels[v] == labels[x]; });
            const bool iy = std::any_of(b.begin(), b.end(), [&](int64_t v) { return labels[v] == labels[y]; });
            if (ix && iy) with_pair += hx && hy;
        }
        for (size_t k = 0; k + 1 < b.size(); k += 2, ++pairs) track_pairs += links.track[b[k]] == links.track[b[k + 1]];
        for (size_t k = 0; k < b.size(); k += 4)  // K images of one pseudo-identity, all different
            for (size_t j = k; j < k + 4; ++j) {
                EXPECT_EQ(labels[b[j]], labels[b[k]]);
                for (size_t q = k; q < j; ++q) EXPECT_NE(b[q], b[j]);
            }
    }
    EXPECT_GT(with_pair, 40);            // each batch of 8 ids holds about 4 linked pairs
    EXPECT_EQ(track_pairs, pairs);       // 5 crops per track: every second image has a mate
}

TEST(Losses, CrossViewPullIsZeroForAlignedViewsAndMovesOnlyTheStudent) {
    auto student = torch::randn({6, 8}, torch::requires_grad());
    auto teacher = student.detach().clone().requires_grad_();
    const auto first = torch::tensor({0, 1}, torch::kInt64), second = torch::tensor({0, 1}, torch::kInt64);
    EXPECT_NEAR(fl::cross_view_pull(student, teacher, first, second).item<double>(), 0.0, 1e-6);
    const auto loss = fl::cross_view_pull(student, teacher, first, torch::tensor({2, 3}, torch::kInt64));
    EXPECT_GT(loss.item<double>(), 0.0);
    loss.backward();
    EXPECT_GT(student.grad().abs().sum().item<double>(), 0.0);
    EXPECT_FALSE(teacher.grad().defined());
    EXPECT_EQ(fl::cross_view_pull(student, teacher, torch::empty({0}, torch::kInt64), torch::empty({0}, torch::kInt64))
                  .item<double>(),
              0.0);
}
