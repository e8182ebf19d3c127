// EMA mean models; see ema.hpp.
#include "faceadapt/learner/ema.hpp"

#include <algorithm>
#include <stdexcept>

namespace faceadapt::learner {

double EmaSchedule::at(int64_t step) const {
    if (rule == "mmt") return std::min(1.0 - 1.0 / static_cast<double>(step + 1), 0.999);
    if (rule != "fixed") throw std::invalid_argument("ema rule '" + rule + "' is not fixed or mmt");
    if (lambda < 0.0 || lambda > 1.0) throw std::invalid_argument("ema lambda must be in [0, 1]");
    return lambda;
}

void ema_update(torch::nn::Module& mean, const torch::nn::Module& student, double lambda) {
    torch::NoGradGuard ng;
    const auto src = student.named_parameters(true);
    for (auto& p : mean.named_parameters(true)) {
        const auto* s = src.find(p.key());
        if (!s || s->sizes() != p.value().sizes())
            throw std::invalid_argument("ema_update: parameter '" + p.key() + "' differs between mean and student");
        p.value().mul_(lambda).add_(*s, 1.0 - lambda);
    }
    copy_buffers(mean, student);
}

void mix_toward(torch::nn::Module& net, const torch::nn::Module& start, double m) {
    torch::NoGradGuard ng;
    const auto from = start.named_parameters(true);
    for (auto& p : net.named_parameters(true))
        if (const auto* s = from.find(p.key()); s && s->sizes() == p.value().sizes())
            p.value().sub_(*s).mul_(m).add_(*s);
}

void copy_buffers(torch::nn::Module& mean, const torch::nn::Module& student) {
    torch::NoGradGuard ng;
    const auto bufs = student.named_buffers(true);
    for (auto& b : mean.named_buffers(true))
        if (const auto* s = bufs.find(b.key())) b.value().copy_(*s);
}

void perturb_parameters(torch::nn::Module& net, double noise_scale, uint64_t seed) {
    torch::NoGradGuard ng;
    auto gen = at::detail::createCPUGenerator(seed);
    for (auto& p : net.named_parameters(true)) {
        auto& t = p.value();
        if (t.numel() < 2) continue;
        const auto noise = at::randn(t.sizes(), gen, torch::TensorOptions().dtype(torch::kFloat32));
        const double sd = t.std().item<double>();
        t.add_(noise.to(t.device(), t.scalar_type()), noise_scale * sd);
    }
}

}  // namespace faceadapt::learner
