// MMT losses; see losses.hpp.
#include "faceadapt/learner/losses.hpp"

#include <stdexcept>

namespace faceadapt::learner {
namespace F = torch::nn::functional;

torch::Tensor label_smoothed_ce(const torch::Tensor& logits, const torch::Tensor& targets, double epsilon) {
    if (logits.dim() != 2 || targets.dim() != 1 || targets.size(0) != logits.size(0))
        throw std::invalid_argument("label_smoothed_ce: logits must be [N,C] and targets [N]");
    const auto log_probs = torch::log_softmax(logits, 1);
    const double c = static_cast<double>(logits.size(1));
    auto t = torch::zeros_like(log_probs).scatter_(1, targets.unsqueeze(1), 1.0);
    t = (1.0 - epsilon) * t + epsilon / c;
    return (-t * log_probs).mean(0).sum();
}

torch::Tensor soft_ce(const torch::Tensor& logits, const torch::Tensor& teacher_logits) {
    if (logits.sizes() != teacher_logits.sizes())
        throw std::invalid_argument("soft_ce: student and teacher logits differ in shape");
    return (-torch::softmax(teacher_logits.detach(), 1) * torch::log_softmax(logits, 1)).mean(0).sum();
}

torch::Tensor euclidean_distances(const torch::Tensor& x) {
    const auto sq = x.pow(2).sum(1, true);
    return (sq + sq.t() - 2.0 * torch::mm(x, x.t())).clamp_min(1e-12).sqrt();
}

namespace {
struct Mined {
    torch::Tensor ap, an;          // student distances [N]
    torch::Tensor ap_idx, an_idx;  // [N] int64
};

Mined batch_hard(const torch::Tensor& dist, const torch::Tensor& targets) {
    const auto same = targets.unsqueeze(0).eq(targets.unsqueeze(1)).to(dist.scalar_type());
    // As MMT's _batch_hard: push other labels far down / same labels far up, take the extreme.
    auto [ap, ap_idx] = (dist + (-9999999.0) * (1.0 - same)).max(1);
    auto [an, an_idx] = (dist + 9999999.0 * same).min(1);
    return {dist.gather(1, ap_idx.unsqueeze(1)).squeeze(1), dist.gather(1, an_idx.unsqueeze(1)).squeeze(1), ap_idx,
            an_idx};
}
}  // namespace

torch::Tensor softmax_triplet(const torch::Tensor& embeddings, const torch::Tensor& targets, double s) {
    if (embeddings.dim() != 2 || targets.size(0) != embeddings.size(0))
        throw std::invalid_argument("softmax_triplet: embeddings must be [N,D] with N targets");
    const auto m = batch_hard(euclidean_distances(embeddings), targets);
    const auto pair = torch::stack({m.ap, m.an}, 1) * s;
    return (-torch::log_softmax(pair, 1).select(1, 1)).mean();
}

torch::Tensor soft_triplet(const torch::Tensor& embeddings, const torch::Tensor& teacher_embeddings,
                           const torch::Tensor& targets, double s) {
    if (embeddings.sizes() != teacher_embeddings.sizes() || targets.size(0) != embeddings.size(0))
        throw std::invalid_argument("soft_triplet: student and teacher embeddings differ in shape");
    const auto m = batch_hard(euclidean_distances(embeddings), targets);
    const auto log_p = torch::log_softmax(torch::stack({m.ap, m.an}, 1) * s, 1);
    torch::Tensor target;
    {
        torch::NoGradGuard ng;
        const auto td = euclidean_distances(teacher_embeddings.detach());
        const auto ap = td.gather(1, m.ap_idx.unsqueeze(1)).squeeze(1);
        const auto an = td.gather(1, m.an_idx.unsqueeze(1)).squeeze(1);
        target = torch::softmax(torch::stack({ap, an}, 1) * s, 1);
    }
    return (-target * log_p).mean(0).sum();
}

torch::Tensor l2sp_penalty(const std::vector<torch::Tensor>& params, const std::vector<torch::Tensor>& start) {
    if (params.size() != start.size()) throw std::invalid_argument("l2sp_penalty: parameter lists differ in length");
    if (params.empty()) return torch::zeros({});
    torch::Tensor total = torch::zeros({}, params.front().options());
    for (size_t i = 0; i < params.size(); ++i) {
        if (params[i].sizes() != start[i].sizes())
            throw std::invalid_argument("l2sp_penalty: tensor " + std::to_string(i) + " differs in shape");
        total = total + (params[i] - start[i].detach()).pow(2).sum();
    }
    return total;
}

torch::Tensor similarity_distillation(const torch::Tensor& embeddings, const torch::Tensor& reference) {
    if (embeddings.sizes() != reference.sizes())
        throw std::invalid_argument("similarity_distillation: embeddings and reference differ in shape");
    const auto a = F::normalize(embeddings, F::NormalizeFuncOptions().dim(1));
    const auto b = F::normalize(reference.detach(), F::NormalizeFuncOptions().dim(1));
    return (torch::mm(a, a.t()) - torch::mm(b, b.t())).pow(2).mean();
}

torch::Tensor cross_view_pull(const torch::Tensor& student, const torch::Tensor& teacher, const torch::Tensor& first,
                              const torch::Tensor& second) {
    if (student.sizes() != teacher.sizes() || student.dim() != 2)
        throw std::invalid_argument("cross_view_pull: student and teacher embeddings differ in shape");
    if (first.numel() == 0) return torch::zeros({}, student.options());
    namespace F = torch::nn::functional;
    const auto s = F::normalize(student.index_select(0, first), F::NormalizeFuncOptions().dim(1));
    const auto t = F::normalize(teacher.detach().index_select(0, second), F::NormalizeFuncOptions().dim(1));
    return (1.0 - (s * t).sum(1)).mean();
}

}  // namespace faceadapt::learner
