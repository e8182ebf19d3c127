// The fused L2-SP + Adam + EMA step; see mean_teacher_adam.hpp.
#include "faceadapt/learner/mean_teacher_adam.hpp"

#include <chrono>
#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>

#include <c10/util/string_utils.h>

#include "fused_adam.hpp"

namespace faceadapt::learner {
namespace {

// torch::optim::Adam (1.13) keys its per-parameter state by this string; using the same key keeps
// save()/load() interchangeable with torch::optim::Adam.
std::string state_key(const torch::Tensor& p) { return c10::guts::to_string(p.unsafeGetTensorImpl()); }

detail::AdamCoefficients coefficients(const torch::optim::AdamOptions& o, int64_t step, double alpha, double lambda) {
    const auto [b1, b2] = o.betas();
    const double bc1 = 1 - std::pow(b1, static_cast<double>(step));
    const double bc2 = 1 - std::pow(b2, static_cast<double>(step));
    return {static_cast<float>(b1),          static_cast<float>(1 - b1),
            static_cast<float>(b2),          static_cast<float>(1 - b2),
            static_cast<float>(std::sqrt(bc2)), static_cast<float>(o.eps()),
            static_cast<float>(-(o.lr() / bc1)), static_cast<float>(2 * alpha),
            static_cast<float>(lambda),      static_cast<float>(1 - lambda)};
}

bool fusable(const torch::Tensor& t) {
    return !t.defined() || (t.is_cpu() && t.scalar_type() == torch::kFloat32 && t.is_contiguous());
}

float* ptr(const torch::Tensor& t) { return t.defined() ? t.data_ptr<float>() : nullptr; }

// The same update as tensor ops (CUDA, or a layout the loop does not take), in torch's order.
double tensor_ops_update(torch::Tensor& w, const torch::Tensor& grad, const torch::Tensor& anchor,
                         torch::optim::AdamParamState* s, torch::Tensor& mean, const detail::AdamCoefficients& c) {
    torch::NoGradGuard ng;
    double penalty = 0.0;
    torch::Tensor g = grad;
    if (anchor.defined()) {
        const auto d = w - anchor;
        penalty = d.pow(2).sum().item<double>();
        if (g.defined()) g = g + d * static_cast<double>(c.two_alpha);
    }
    if (g.defined()) {
        s->exp_avg().mul_(c.beta1).add_(g, c.one_minus_beta1);
        s->exp_avg_sq().mul_(c.beta2).addcmul_(g, g, c.one_minus_beta2);
        const auto denom = (s->exp_avg_sq().sqrt() / c.sqrt_bias_correction2).add_(c.eps);
        w.addcdiv_(s->exp_avg(), denom, c.minus_step_size);
    }
    if (mean.defined()) mean.mul_(c.lambda).add_(w, c.one_minus_lambda);
    return penalty;
}

}  // namespace

MeanTeacherAdam::MeanTeacherAdam(std::vector<torch::optim::OptimizerParamGroup> groups,
                                 torch::optim::AdamOptions defaults, std::vector<torch::Tensor> anchors,
                                 std::vector<torch::Tensor> means)
    : torch::optim::Adam(std::move(groups), defaults) {
    for (const auto& g : param_groups_) {
        const auto& o = static_cast<const torch::optim::AdamOptions&>(g.options());
        if (o.amsgrad() || o.weight_decay() != 0)
            throw std::invalid_argument("MeanTeacherAdam: amsgrad and weight decay are not supported");
        for (const auto& p : g.params()) params_.push_back(p);
    }
    auto check = [&](std::vector<torch::Tensor>& v, const char* what) {
        if (v.empty()) v.resize(params_.size());
        if (v.size() != params_.size())
            throw std::invalid_argument(std::string("MeanTeacherAdam: ") + what + " must match the parameters");
        for (size_t i = 0; i < v.size(); ++i)
            if (v[i].defined() && (v[i].sizes() != params_[i].sizes() || v[i].scalar_type() != params_[i].scalar_type() ||
                                   v[i].device() != params_[i].device()))
                throw std::invalid_argument(std::string("MeanTeacherAdam: ") + what + " " + std::to_string(i) +
                                            " differs from its parameter");
    };
    check(anchors, "anchor");
    check(means, "mean tensor");
    slots_.resize(params_.size());
    for (size_t i = 0; i < params_.size(); ++i) {
        if (anchors[i].defined()) slots_[i].anchor = anchors[i].detach();
        if (means[i].defined()) slots_[i].mean = means[i].detach();
    }
}

void MeanTeacherAdam::configure(double l2sp_alpha, double ema_lambda) {
    if (!(l2sp_alpha >= 0)) throw std::invalid_argument("MeanTeacherAdam: l2sp alpha must be >= 0");
    if (!(ema_lambda >= 0 && ema_lambda <= 1)) throw std::invalid_argument("MeanTeacherAdam: lambda must be in [0, 1]");
    alpha_ = l2sp_alpha;
    lambda_ = ema_lambda;
}

torch::Tensor MeanTeacherAdam::step(LossClosure closure) {
    if (closure) throw std::invalid_argument("MeanTeacherAdam::step: closures are not supported");
    begin_step();
    finish_step();
    return {};
}

void MeanTeacherAdam::begin_step() {
    size_t i = 0;
    for (const auto& g : param_groups_)
        for (const auto& p : g.params()) {
            auto& slot = slots_[i++];
            auto& entry = state_[state_key(p)];
            if (!entry) {  // what torch::optim::Adam's first step creates
                auto s = std::make_unique<torch::optim::AdamParamState>();
                s->step(0);
                s->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
                s->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
                entry = std::move(s);
            }
            slot.state = static_cast<torch::optim::AdamParamState*>(entry.get());
            slot.options = static_cast<const torch::optim::AdamOptions*>(&g.options());
            slot.penalty = 0.0;
            slot.seconds = 0.0;
            slot.done = false;
        }
}

void MeanTeacherAdam::update(size_t i, const torch::Tensor& grad) {
    auto& slot = slots_.at(i);
    if (!slot.state) throw std::logic_error("MeanTeacherAdam::update outside begin_step()/finish_step()");
    if (slot.done) throw std::logic_error("MeanTeacherAdam::update: parameter " + std::to_string(i) + " updated twice");
    const auto t0 = std::chrono::steady_clock::now();
    auto& w = params_[i];
    auto* s = slot.state;
    if (grad.defined()) s->step(s->step() + 1);
    const auto c = coefficients(*slot.options, s->step(), alpha_, lambda_);
    const bool raw = fusable(w) && fusable(grad) && fusable(slot.anchor) && fusable(slot.mean) &&
                     fusable(s->exp_avg()) && fusable(s->exp_avg_sq());
    if (!raw) {
        slot.penalty = tensor_ops_update(w, grad, slot.anchor, s, slot.mean, c);
    } else {
        const auto g = grad.defined() ? grad.contiguous() : grad;
        float *pw = ptr(w), *pm = ptr(s->exp_avg()), *pv = ptr(s->exp_avg_sq()), *pmean = ptr(slot.mean);
        const float *pg = ptr(g), *p0 = ptr(slot.anchor);
        const int64_t n = w.numel();
        slot.penalty = detail::fused_adam_pass(pg, p0, pmean, pw, pg, p0, pm, pv, pmean, n, c);
    }
    slot.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    slot.done = true;
}

double MeanTeacherAdam::finish_step() {
    double total = 0.0, seconds = 0.0;
    for (size_t i = 0; i < slots_.size(); ++i) {
        if (!slots_[i].state) throw std::logic_error("MeanTeacherAdam::finish_step without begin_step()");
        if (!slots_[i].done) update(i, params_[i].grad());
        total += slots_[i].penalty;
        seconds += slots_[i].seconds;
        slots_[i].state = nullptr;
    }
    last_penalty_ = total;
    last_seconds_ = seconds;
    return total;
}

OverlappedUpdates::OverlappedUpdates(std::vector<MeanTeacherAdam*> optimisers) {
    worker_ = std::thread([this] { work(); });
    try {
        for (auto* opt : optimisers) {
            const auto& params = opt->flat_parameters();
            for (size_t i = 0; i < params.size(); ++i) {
                auto p = params[i];
                if (!fusable(p)) throw std::invalid_argument("OverlappedUpdates: CPU float32 contiguous parameters only");
                // The hook sees the parameter's final gradient of this backward (after every use of
                // the parameter in the graph has contributed), so nothing in the rest of the backward
                // reads the parameter again: the worker may update it in place.
                const unsigned h = p.register_hook([this, opt, i](const torch::Tensor& grad) {
                    enqueue([opt, i, grad] { opt->update(i, grad); });
                });
                hooks_.push_back({p, h});
            }
        }
    } catch (...) {
        for (auto& h : hooks_) h.param.remove_hook(h.index);
        {
            std::lock_guard lock(mutex_);
            quit_ = true;
        }
        cv_.notify_all();
        worker_.join();
        throw;
    }
}

OverlappedUpdates::~OverlappedUpdates() {
    for (auto& h : hooks_) h.param.remove_hook(h.index);
    {
        std::lock_guard lock(mutex_);
        quit_ = true;
    }
    cv_.notify_all();
    worker_.join();
}

void OverlappedUpdates::enqueue(std::function<void()> job) {
    {
        std::lock_guard lock(mutex_);
        jobs_.push_back(std::move(job));
    }
    cv_.notify_all();
}

void OverlappedUpdates::wait() {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return jobs_.empty() && running_ == 0; });
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
}

void OverlappedUpdates::work() {
    std::unique_lock lock(mutex_);
    for (;;) {
        cv_.wait(lock, [&] { return quit_ || !jobs_.empty(); });
        if (jobs_.empty()) return;  // quit_ and nothing left
        auto job = std::move(jobs_.front());
        jobs_.pop_front();
        ++running_;
        lock.unlock();
        try {
            job();
        } catch (...) {
            lock.lock();
            if (!error_) error_ = std::current_exception();
            lock.unlock();
        }
        lock.lock();
        --running_;
        cv_.notify_all();
    }
}

}  // namespace faceadapt::learner
