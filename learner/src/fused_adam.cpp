// The fused optimiser loop; see fused_adam.hpp.
#include "fused_adam.hpp"

#include <cmath>

namespace faceadapt::learner::detail {
namespace {

// a * b + c: one rounding (a fused multiply-add) when kFma, else two.
template <bool kFma>
inline float madd(float a, float b, float c) {
    if constexpr (kFma) return __builtin_fmaf(a, b, c);
    else return a * b + c;  // not contracted: the file is built with -ffp-contract=off
}

// One pass over a float32 contiguous CPU tensor of n elements. The operations, their order and
// their roundings are torch::optim::Adam's (mul_, add_, mul_, addcmul_, sqrt, div, add_, addcdiv_)
// then ema_update's (mul_, add_), so the result is bit-identical to those ops: on CPUs with FMA
// torch's vectorised add_(x, alpha) is a fused multiply-add, and so is its addcmul_ (the compiler
// contracts self + value * t1 * t2); kFma mirrors both. Returns sum (w - w0)^2 before the update.
template <bool kFma, bool kGrad, bool kAnchor, bool kMean>
__attribute__((always_inline)) inline double fused_pass(float* __restrict w, const float* __restrict g,
                                                        const float* __restrict w0, float* __restrict m,
                                                        float* __restrict v, float* __restrict mean, int64_t n,
                                                        const AdamCoefficients& c) {
    double penalty = 0.0;
    // A vector reduction (the file is built with -fopenmp-simd -fno-math-errno, see adapt.cmake):
    // its summation order is fixed by the build, so the penalty is the same run after run.
#pragma omp simd reduction(+ : penalty)
    for (int64_t j = 0; j < n; ++j) {
        float wj = w[j];
        float gj = 0.0f;
        if constexpr (kGrad) gj = g[j];
        if constexpr (kAnchor) {
            const float d = wj - w0[j];
            penalty += static_cast<double>(d) * d;
            gj = gj + c.two_alpha * d;  // autograd: g + alpha * (2 * d), the same float value
        }
        if constexpr (kGrad) {
            const float mj = madd<kFma>(gj, c.one_minus_beta1, m[j] * c.beta1);  // mul_, add_(g, 1 - beta1)
            const float vj = madd<kFma>(c.one_minus_beta2 * gj, gj, v[j] * c.beta2);  // mul_, addcmul_
            m[j] = mj;
            v[j] = vj;
            wj = (c.minus_step_size * mj) / (std::sqrt(vj) / c.sqrt_bias_correction2 + c.eps) + wj;  // addcdiv_
            w[j] = wj;
        }
        if constexpr (kMean) mean[j] = madd<kFma>(wj, c.one_minus_lambda, mean[j] * c.lambda);  // mul_, add_
    }
    return penalty;
}

template <bool kFma>
__attribute__((always_inline)) inline double fused_dispatch(bool grad, bool anchor, bool mean, float* w, const float* g, const float* w0, float* m, float* v,
                      float* mu, int64_t n, const AdamCoefficients& c) {
    if (grad && anchor && mean) return fused_pass<kFma, true, true, true>(w, g, w0, m, v, mu, n, c);
    if (grad && anchor) return fused_pass<kFma, true, true, false>(w, g, w0, m, v, mu, n, c);
    if (grad && mean) return fused_pass<kFma, true, false, true>(w, g, w0, m, v, mu, n, c);
    if (grad) return fused_pass<kFma, true, false, false>(w, g, w0, m, v, mu, n, c);
    if (anchor && mean) return fused_pass<kFma, false, true, true>(w, g, w0, m, v, mu, n, c);
    if (anchor) return fused_pass<kFma, false, true, false>(w, g, w0, m, v, mu, n, c);
    if (mean) return fused_pass<kFma, false, false, true>(w, g, w0, m, v, mu, n, c);
    return 0.0;
}

// The FMA instantiation, compiled for AVX2+FMA (called only where the CPU has them).
__attribute__((target("avx2,fma"))) double fused_fma(bool grad, bool anchor, bool mean, float* w, const float* g,
                                                       const float* w0, float* m, float* v, float* mu, int64_t n,
                                                       const AdamCoefficients& c) {
    return fused_dispatch<true>(grad, anchor, mean, w, g, w0, m, v, mu, n, c);
}

// torch picks its AVX2 (or AVX512) kernels, whose add_ is a fused multiply-add, on such CPUs.
bool cpu_has_fma() {
    static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return has;
}

}  // namespace

double fused_adam_pass(bool grad, bool anchor, bool mean, float* w, const float* g, const float* w0, float* m,
                       float* v, float* mu, int64_t n, const AdamCoefficients& c) {
    return cpu_has_fma() ? fused_fma(grad, anchor, mean, w, g, w0, m, v, mu, n, c)
                         : fused_dispatch<false>(grad, anchor, mean, w, g, w0, m, v, mu, n, c);
}

}  // namespace faceadapt::learner::detail
