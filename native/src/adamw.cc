#include "adamw.h"

#include <cmath>

#include "parallel.h"

namespace adabatch {

namespace {
struct Coefs {
  float decay, stepSize, invSqrtBc2, b1, b2, c1, c2, eps;
};

void adamwRange(float* __restrict param, const float* __restrict grad, float* __restrict m, float* __restrict v, size_t n, Coefs k) {
#pragma omp simd
  for (size_t i = 0; i < n; i++) {
    const float g = grad[i];
    const float mi = k.b1 * m[i] + k.c1 * g;
    const float vi = k.b2 * v[i] + k.c2 * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] = param[i] * k.decay - k.stepSize * mi / (std::sqrt(vi) * k.invSqrtBc2 + k.eps);
  }
}
}  // namespace

void adamwKernel(ThreadPool& pool, float* param, const float* grad, float* m, float* v, size_t n, const AdamWHyper& p) {
  const double bc1 = 1.0 - std::pow(p.beta1, static_cast<double>(p.step));
  const double bc2 = 1.0 - std::pow(p.beta2, static_cast<double>(p.step));
  const float decay = static_cast<float>(1.0 - p.lr * p.weightDecay);
  const float stepSize = static_cast<float>(p.lr / bc1);
  const float invSqrtBc2 = static_cast<float>(1.0 / std::sqrt(bc2));
  const float b1 = static_cast<float>(p.beta1), b2 = static_cast<float>(p.beta2);
  const float c1 = static_cast<float>(1.0 - p.beta1), c2 = static_cast<float>(1.0 - p.beta2);
  const float eps = static_cast<float>(p.eps);
  const Coefs k{decay, stepSize, invSqrtBc2, b1, b2, c1, c2, eps};
  parallelRanges(pool, n, kElemChunk, [&](size_t s, size_t e, size_t) { adamwRange(param + s, grad + s, m + s, v + s, e - s, k); });
}

}  // namespace adabatch
