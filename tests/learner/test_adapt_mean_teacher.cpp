// MeanTeacherAdam (fused L2-SP gradient + Adam + EMA) against torch::optim::Adam + autograd
// L2-SP + ema_update on FaceResNet's parameters over several steps, its overlapped (backward
// hook) form, and loading torch::optim::Adam's saved state.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>

#include <c10/util/string_utils.h>
#include <torch/torch.h>

#include "faceadapt/learner/ema.hpp"
#include "faceadapt/learner/face_resnet.hpp"
#include "faceadapt/learner/losses.hpp"
#include "faceadapt/learner/mean_teacher_adam.hpp"
#include "faceadapt/learner/weights_import.hpp"
#include "test_support.hpp"

namespace fl = faceadapt::learner;

namespace {

constexpr double kAlpha = 25.0;  // the co-trainer's default L2-SP weight

// The source model when its weights are here, else a random init: the real parameter shapes.
fl::FaceResNet face_net() {
    const auto dir = faceadapt::test::weights_dir();
    fl::FaceResNet net = std::filesystem::exists(dir) ? fl::import_face_api_weights(dir) : fl::FaceResNet(fl::FaceResNetOptions{});
    auto gen = at::detail::createCPUGenerator(5);
    net->reset_classifier(at::randn({6, fl::kEmbeddingDim}, gen));
    return net;
}

struct Student {
    fl::FaceResNet net, mean;
    std::vector<torch::Tensor> anchors;  // backbone start weights
};

Student student() {
    auto net = face_net();
    fl::perturb_parameters(*net, 0.02, 3);  // the anchor is not the current weights' copy only
    Student s{net, fl::clone_face_resnet(net), {}};
    for (const auto& p : net->backbone_parameters()) s.anchors.push_back(p.detach().clone());
    fl::perturb_parameters(*s.net, 0.01, 4);  // so that L2-SP pulls from the first step on
    return s;
}

std::vector<torch::optim::OptimizerParamGroup> groups(fl::FaceResNet& n) {
    std::vector<torch::optim::OptimizerParamGroup> g;
    g.emplace_back(n->backbone_parameters(), std::make_unique<torch::optim::AdamOptions>(1e-3));
    g.emplace_back(n->classifier_parameters(), std::make_unique<torch::optim::AdamOptions>(1e-2));
    return g;
}

std::unique_ptr<fl::MeanTeacherAdam> fused(Student& s, bool with_mean = true) {
    auto anchors = s.anchors;
    anchors.resize(anchors.size() + s.net->classifier_parameters().size());  // no L2-SP on the classifier
    std::vector<torch::Tensor> means;
    if (with_mean) {
        means = s.mean->backbone_parameters();
        for (const auto& p : s.mean->classifier_parameters()) means.push_back(p);
    }
    return std::make_unique<fl::MeanTeacherAdam>(groups(s.net), torch::optim::AdamOptions(1e-3), anchors, means);
}

// A loss whose gradient is a fixed random tensor per (step, parameter): sum_i <p_i, r_i>.
torch::Tensor synthetic_loss(fl::FaceResNet& n, int step) {
    auto gen = at::detail::createCPUGenerator(100 + step);
    torch::Tensor loss = torch::zeros({});
    for (const auto& p : n->parameters()) loss = loss + (p * at::randn(p.sizes(), gen)).sum();
    return loss;
}

double max_difference(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
    double worst = 0;
    for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, (a[i] - b[i]).abs().max().item<double>());
    return worst;
}

// Float rounding scales with the value: dlib's affine scales reach ~20, where one float ulp is
// 1.9e-6. So: |a - b| / max(1, |b|), the absolute difference for values up to 1.
double max_scaled_difference(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
    double worst = 0;
    for (size_t i = 0; i < a.size(); ++i)
        worst = std::max(worst, ((a[i] - b[i]).abs() / b[i].abs().clamp_min(1.0)).max().item<double>());
    return worst;
}

// |x - y| relative to the tensor's largest |x| (the Adam moments are far below 1).
double relative_difference(const torch::Tensor& x, const torch::Tensor& y) {
    return (x - y).abs().max().item<double>() / std::max(x.abs().max().item<double>(), 1e-30);
}

double lambda_at(int step) { return fl::EmaSchedule{"mmt", 0.0}.at(step + 5); }  // a different lambda each step

}  // namespace

TEST(MeanTeacherAdam, MatchesAdamWithAutogradL2spAndEma) {
    Student ref = student(), mine = student(), overlapped = student();
    torch::optim::Adam ref_opt(groups(ref.net), torch::optim::AdamOptions(1e-3));
    auto opt = fused(mine), opt_overlapped = fused(overlapped);
    fl::OverlappedUpdates overlap({opt_overlapped.get()});
    for (int step = 0; step < 5; ++step) {
        const double lambda = lambda_at(step);
        const auto penalty = fl::l2sp_penalty(ref.net->backbone_parameters(), ref.anchors);
        const double expected_penalty = penalty.item<double>();
        ref_opt.zero_grad();
        (synthetic_loss(ref.net, step) + kAlpha * penalty).backward();
        ref_opt.step();
        fl::ema_update(*ref.mean, *ref.net, lambda);

        opt->zero_grad();
        synthetic_loss(mine.net, step).backward();
        opt->configure(kAlpha, lambda);
        opt->step();
        EXPECT_NEAR(opt->last_l2sp_penalty(), expected_penalty, 1e-5 * expected_penalty + 1e-9);

        opt_overlapped->zero_grad();
        opt_overlapped->configure(kAlpha, lambda);
        opt_overlapped->begin_step();
        synthetic_loss(overlapped.net, step).backward();
        overlap.wait();
        opt_overlapped->finish_step();
        // The overlapped form runs the same per-element arithmetic: bit-identical.
        EXPECT_TRUE(torch::equal(mine.net->parameters().front(), overlapped.net->parameters().front()));
        EXPECT_EQ(opt->last_l2sp_penalty(), opt_overlapped->last_l2sp_penalty());
    }
    for (Student* s : {&mine, &overlapped}) {
        EXPECT_LT(max_scaled_difference(s->net->parameters(), ref.net->parameters()), 1e-6);
        EXPECT_LT(max_scaled_difference(s->mean->parameters(), ref.mean->parameters()), 1e-6);
        EXPECT_GT(max_difference(ref.net->parameters(), ref.mean->parameters()), 1e-5);  // the steps did something
    }
    // Bit-identical, in fact: the loop rounds as torch's kernels do (FMA where torch's vectorised
    // add_ uses one), unless torch was told to use other kernels.
    if (!std::getenv("ATEN_CPU_CAPABILITY")) {
        EXPECT_EQ(max_difference(mine.net->parameters(), ref.net->parameters()), 0.0);
        EXPECT_EQ(max_difference(mine.mean->parameters(), ref.mean->parameters()), 0.0);
    }
    EXPECT_EQ(max_difference(mine.net->parameters(), overlapped.net->parameters()), 0.0);
    EXPECT_EQ(max_difference(mine.mean->parameters(), overlapped.mean->parameters()), 0.0);
    // The same Adam state as torch's (the keys too: save()/load() stay interchangeable).
    ASSERT_EQ(ref_opt.state().size(), opt->state().size());
    const auto pa = ref.net->parameters(), pb = mine.net->parameters();
    for (size_t i = 0; i < pa.size(); ++i) {
        auto& x = static_cast<torch::optim::AdamParamState&>(
            *ref_opt.state().at(c10::guts::to_string(pa[i].unsafeGetTensorImpl())));
        auto& y = static_cast<torch::optim::AdamParamState&>(
            *opt->state().at(c10::guts::to_string(pb[i].unsafeGetTensorImpl())));
        EXPECT_EQ(x.step(), y.step());
        EXPECT_LT(relative_difference(x.exp_avg(), y.exp_avg()), 1e-6);
        EXPECT_LT(relative_difference(x.exp_avg_sq(), y.exp_avg_sq()), 1e-6);
    }
}

TEST(MeanTeacherAdam, LoadsTorchAdamStateAndContinues) {
    // What a checkpoint written before MeanTeacherAdam holds: torch::optim::Adam's archive.
    Student ref = student(), mine = student();
    torch::optim::Adam ref_opt(groups(ref.net), torch::optim::AdamOptions(1e-3));
    for (int step = 0; step < 2; ++step) {
        ref_opt.zero_grad();
        synthetic_loss(ref.net, step).backward();
        ref_opt.step();
    }
    torch::serialize::OutputArchive out;
    ref_opt.save(out);
    std::ostringstream bytes;
    out.save_to(bytes);
    {
        torch::NoGradGuard ng;
        const auto from = ref.net->parameters(), to = mine.net->parameters();
        for (size_t i = 0; i < from.size(); ++i) to[i].copy_(from[i]);
    }
    auto opt = fused(mine, false);
    std::istringstream in(bytes.str());
    torch::serialize::InputArchive archive;
    archive.load_from(in);
    opt->load(archive);
    opt->configure(0.0, 1.0);
    for (int step = 2; step < 4; ++step) {
        ref_opt.zero_grad();
        synthetic_loss(ref.net, step).backward();
        ref_opt.step();
        opt->zero_grad();
        synthetic_loss(mine.net, step).backward();
        opt->step();
    }
    // Had the state not been picked up, step 3 would be a first Adam step (an lr-sized move).
    EXPECT_LT(max_scaled_difference(mine.net->parameters(), ref.net->parameters()), 1e-6);
}

TEST(MeanTeacherAdam, RejectsWhatItDoesNotImplement) {
    Student s = student();
    std::vector<torch::optim::OptimizerParamGroup> g;
    g.emplace_back(s.net->backbone_parameters(), std::make_unique<torch::optim::AdamOptions>(torch::optim::AdamOptions(1e-3).amsgrad(true)));
    EXPECT_THROW(fl::MeanTeacherAdam(std::move(g), torch::optim::AdamOptions(1e-3), {}, {}), std::invalid_argument);
    EXPECT_THROW(fl::MeanTeacherAdam(groups(s.net), torch::optim::AdamOptions(1e-3), {s.anchors[0]}, {}),
                 std::invalid_argument);  // one anchor for many parameters
    auto opt = fused(s);
    EXPECT_THROW(opt->configure(-1.0, 0.5), std::invalid_argument);
    EXPECT_THROW(opt->configure(1.0, 1.5), std::invalid_argument);
    EXPECT_THROW(opt->update(0, torch::Tensor()), std::logic_error);  // outside begin_step()
}
