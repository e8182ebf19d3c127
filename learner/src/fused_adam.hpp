// The fused optimiser loop of MeanTeacherAdam (mean_teacher_adam.cpp): L2-SP penalty and gradient,
// Adam and the EMA teacher update in one pass over raw float arrays. Private to the learner.
// It lives in its own translation unit, which includes no torch header, because it is built with
// its own flags (learner/adapt.cmake: -fopenmp-simd -fno-math-errno -ffp-contract=off) and the
// precompiled <torch/torch.h> is valid only under the flags it was built with.
#pragma once

#include <cstdint>

namespace faceadapt::learner::detail {

// The step's scalars, as torch turns them into float operands of its float kernels.
struct AdamCoefficients {
    float beta1, one_minus_beta1, beta2, one_minus_beta2;
    float sqrt_bias_correction2, eps, minus_step_size;
    float two_alpha, lambda, one_minus_lambda;
};

// One pass over n contiguous float32 elements: w the parameter, g its gradient (nullptr: none),
// w0 the L2-SP anchor (nullptr: none), m and v Adam's moments, mean the EMA tensor (nullptr:
// none). Updates w, m, v (when g or w0 is given) and mean in place, with torch::optim::Adam's and
// ema_update's operations, order and roundings (bit-identical to the tensor ops; the FMA variant
// where the CPU has AVX2+FMA, as torch's kernels do). Returns sum (w - w0)^2 before the update
// (0 without an anchor). grad, anchor and mean say which of g, w0 and mean are given.
// Thread safety: none of its own; the arrays must not be shared with another running pass.
double fused_adam_pass(bool grad, bool anchor, bool mean, float* w, const float* g, const float* w0, float* m,
                       float* v, float* mu, int64_t n, const AdamCoefficients& c);

}  // namespace faceadapt::learner::detail
