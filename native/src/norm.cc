#include "norm.h"

#include <cmath>

#include "parallel.h"

namespace adabatch {

namespace {
size_t backwardRows(size_t dim) { return std::max<size_t>(16, rowsPerPart(dim)); }
}  // namespace

void rmsnormForward(ThreadPool& pool, float* out, float* rstd, const float* x, const float* w, size_t rows, size_t dim, double eps) {
  parallelRanges(pool, rows, rowsPerPart(dim), [&](size_t r0, size_t r1, size_t) {
    for (size_t r = r0; r < r1; r++) {
      const float* xr = x + r * dim;
      float* o = out + r * dim;
      float ss = 0;
#pragma omp simd reduction(+ : ss)
      for (size_t i = 0; i < dim; i++) ss += xr[i] * xr[i];
      const float rs = static_cast<float>(1.0 / std::sqrt(static_cast<double>(ss) / static_cast<double>(dim) + eps));
      rstd[r] = rs;
#pragma omp simd
      for (size_t i = 0; i < dim; i++) o[i] = xr[i] * rs * w[i];
    }
  });
}

size_t rmsnormPartials(size_t rows, size_t dim) { return ceilDiv(rows, backwardRows(dim)) * dim; }

void rmsnormBackward(ThreadPool& pool, float* dx, float* dw, const float* dOut, const float* x, const float* w, const float* rstd, size_t rows, size_t dim, bool accumulate, float* partials) {
  // y = x̂·w with x̂ = x·rstd:  dx = rstd·(dy·w − x̂·mean(dy·w·x̂)),  dw += Σ_rows dy·x̂.
  const size_t chunk = backwardRows(dim);
  const size_t parts = ceilDiv(rows, chunk);
  parallelRanges(pool, rows, chunk, [&](size_t r0, size_t r1, size_t part) {
    float* pdw = partials + part * dim;
    for (size_t i = 0; i < dim; i++) pdw[i] = 0;
    for (size_t r = r0; r < r1; r++) {
      const float* xr = x + r * dim;
      const float* gr = dOut + r * dim;
      float* d = dx + r * dim;
      const float rs = rstd[r];
      float dot = 0;
#pragma omp simd reduction(+ : dot)
      for (size_t i = 0; i < dim; i++) dot += gr[i] * w[i] * xr[i];
      const float mean = dot * rs / static_cast<float>(dim);
      const float rs2mean = rs * rs * mean;
      if (accumulate) {
#pragma omp simd
        for (size_t i = 0; i < dim; i++) d[i] += rs * gr[i] * w[i] - xr[i] * rs2mean;
      } else {
#pragma omp simd
        for (size_t i = 0; i < dim; i++) d[i] = rs * gr[i] * w[i] - xr[i] * rs2mean;
      }
#pragma omp simd
      for (size_t i = 0; i < dim; i++) pdw[i] += gr[i] * xr[i] * rs;
    }
  });
  for (size_t p = 0; p < parts; p++) {
    const float* pdw = partials + p * dim;
#pragma omp simd
    for (size_t i = 0; i < dim; i++) dw[i] += pdw[i];
  }
}

}  // namespace adabatch
