#include "norm.h"

#include <cmath>

#include "parallel.h"
#include "simd.h"

namespace adabatch {

namespace {
size_t backwardRows(size_t dim) { return std::max<size_t>(16, rowsPerPart(dim)); }

// out may alias x exactly (in-place normalisation): each row's sum is taken before it is written.
void forwardRows(float* out, float* __restrict rstd, const float* x, const float* __restrict w, size_t r0, size_t r1, size_t dim, double eps) {
  for (size_t r = r0; r < r1; r++) {
    const float* xr = x + r * dim;
    float* o = out + r * dim;
    const float ss = dotF32(xr, xr, dim);
    const float rs = static_cast<float>(1.0 / std::sqrt(static_cast<double>(ss) / static_cast<double>(dim) + eps));
    rstd[r] = rs;
#pragma omp simd
    for (size_t i = 0; i < dim; i++) o[i] = xr[i] * rs * w[i];
  }
}

// dx may alias dOut or x exactly (each element is read before it is written).
void backwardRowsRange(float* dx, float* __restrict pdw, const float* dOut, const float* x, const float* __restrict w, const float* __restrict rstd, size_t r0, size_t r1, size_t dim, bool accumulate) {
  for (size_t i = 0; i < dim; i++) pdw[i] = 0;
  for (size_t r = r0; r < r1; r++) {
    const float* xr = x + r * dim;
    const float* gr = dOut + r * dim;
    float* d = dx + r * dim;
    const float rs = rstd[r];
    float dot = 0;
#pragma omp simd reduction(+ : dot)
    for (size_t i = 0; i < dim; i++) dot += gr[i] * w[i] * xr[i];
    const float rs2mean = rs * rs * rs * dot / static_cast<float>(dim);
#pragma omp simd
    for (size_t i = 0; i < dim; i++) pdw[i] += gr[i] * xr[i] * rs;
    if (accumulate) {
#pragma omp simd
      for (size_t i = 0; i < dim; i++) d[i] += rs * gr[i] * w[i] - xr[i] * rs2mean;
    } else {
#pragma omp simd
      for (size_t i = 0; i < dim; i++) d[i] = rs * gr[i] * w[i] - xr[i] * rs2mean;
    }
  }
}
}  // namespace

void rmsnormForward(ThreadPool& pool, float* out, float* rstd, const float* x, const float* w, size_t rows, size_t dim, double eps) {
  parallelRanges(pool, rows, rowsPerPart(dim), [&](size_t r0, size_t r1, size_t) { forwardRows(out, rstd, x, w, r0, r1, dim, eps); });
}

size_t rmsnormPartials(size_t rows, size_t dim) { return ceilDiv(rows, backwardRows(dim)) * dim; }

void rmsnormBackward(ThreadPool& pool, float* dx, float* dw, const float* dOut, const float* x, const float* w, const float* rstd, size_t rows, size_t dim, bool accumulate, float* partials) {
  // y = x̂·w with x̂ = x·rstd:  dx = rstd·(dy·w − x̂·mean(dy·w·x̂)),  dw += Σ_rows dy·x̂.
  const size_t chunk = backwardRows(dim);
  const size_t parts = ceilDiv(rows, chunk);
  parallelRanges(pool, rows, chunk, [&](size_t r0, size_t r1, size_t part) { backwardRowsRange(dx, partials + part * dim, dOut, x, w, rstd, r0, r1, dim, accumulate); });
  for (size_t p = 0; p < parts; p++) {
    const float* pdw = partials + p * dim;
#pragma omp simd
    for (size_t i = 0; i < dim; i++) dw[i] += pdw[i];
  }
}

}  // namespace adabatch
