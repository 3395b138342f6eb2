#include "adamw.h"

#include <cmath>

#include "parallel.h"

namespace adabatch {

void adamwKernel(ThreadPool& pool, float* param, const float* grad, float* m, float* v, size_t n, const AdamWHyper& p) {
  const double bc1 = 1.0 - std::pow(p.beta1, static_cast<double>(p.step));
  const double bc2 = 1.0 - std::pow(p.beta2, static_cast<double>(p.step));
  const float decay = static_cast<float>(1.0 - p.lr * p.weightDecay);
  const float stepSize = static_cast<float>(p.lr / bc1);
  const float invSqrtBc2 = static_cast<float>(1.0 / std::sqrt(bc2));
  const float b1 = static_cast<float>(p.beta1), b2 = static_cast<float>(p.beta2);
  const float c1 = static_cast<float>(1.0 - p.beta1), c2 = static_cast<float>(1.0 - p.beta2);
  const float eps = static_cast<float>(p.eps);
  parallelRanges(pool, n, kElemChunk, [&](size_t s, size_t e, size_t) {
#pragma omp simd
    for (size_t i = s; i < e; i++) {
      const float g = grad[i];
      const float mi = b1 * m[i] + c1 * g;
      const float vi = b2 * v[i] + c2 * g * g;
      m[i] = mi;
      v[i] = vi;
      param[i] = param[i] * decay - stepSize * mi / (std::sqrt(vi) * invSqrtBc2 + eps);
    }
  });
}

}  // namespace adabatch
