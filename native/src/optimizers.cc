#include "optimizers.h"

#include <cmath>

#include "parallel.h"

namespace adabatch {

void adagradKernel(ThreadPool& pool, float* param, const float* grad, float* sum, size_t n, const AdagradHyper& h) {
  const float lr = static_cast<float>(h.lr), eps = static_cast<float>(h.eps), wd = static_cast<float>(h.weightDecay);
  parallelRanges(pool, n, kElemChunk, [&](size_t s, size_t e, size_t) {
    float* __restrict p = param + s;
    const float* __restrict g = grad + s;
    float* __restrict acc = sum + s;
#pragma omp simd
    for (size_t i = 0; i < e - s; i++) {
      const float gi = g[i] + wd * p[i];
      const float a = acc[i] + gi * gi;
      acc[i] = a;
      p[i] = p[i] - lr * gi / (std::sqrt(a) + eps);
    }
  });
}

void lambDirectionKernel(ThreadPool& pool, const float* param, float* grad, float* m, float* v, size_t n, const LambHyper& h) {
  // Bias corrections in float64 on the host side of the loop, as adamwKernel does.
  const double bc1 = 1.0 - std::pow(h.beta1, static_cast<double>(h.step));
  const double bc2 = 1.0 - std::pow(h.beta2, static_cast<double>(h.step));
  const float invBc1 = static_cast<float>(1.0 / bc1), invSqrtBc2 = static_cast<float>(1.0 / std::sqrt(bc2));
  const float b1 = static_cast<float>(h.beta1), b2 = static_cast<float>(h.beta2);
  const float c1 = static_cast<float>(1.0 - h.beta1), c2 = static_cast<float>(1.0 - h.beta2);
  const float eps = static_cast<float>(h.eps), wd = static_cast<float>(h.weightDecay);
  parallelRanges(pool, n, kElemChunk, [&](size_t s, size_t e, size_t) {
    const float* __restrict p = param + s;
    float* __restrict g = grad + s;
    float* __restrict mm = m + s;
    float* __restrict vv = v + s;
#pragma omp simd
    for (size_t i = 0; i < e - s; i++) {
      const float gi = g[i];
      const float mi = b1 * mm[i] + c1 * gi;
      const float vi = b2 * vv[i] + c2 * gi * gi;
      mm[i] = mi;
      vv[i] = vi;
      g[i] = mi * invBc1 / (std::sqrt(vi) * invSqrtBc2 + eps) + wd * p[i];
    }
  });
}

void muonMomentumKernel(ThreadPool& pool, float* grad, float* buf, size_t n, const MuonHyper& h) {
  const float beta = static_cast<float>(h.beta), omb = static_cast<float>(1.0 - h.beta);
  const bool nesterov = h.nesterov;
  parallelRanges(pool, n, kElemChunk, [&](size_t s, size_t e, size_t) {
    float* __restrict g = grad + s;
    float* __restrict b = buf + s;
#pragma omp simd
    for (size_t i = 0; i < e - s; i++) {
      const float gi = g[i];
      const float bi = b[i] + omb * (gi - b[i]);
      b[i] = bi;
      g[i] = nesterov ? gi + beta * (bi - gi) : bi;
    }
  });
}

}  // namespace adabatch
