#include "rope.h"

#include "parallel.h"

namespace adabatch {

namespace {
// Rotates the first nHeads heads of one row.
void rotateRow(float* __restrict x, const float* __restrict c, const float* __restrict s, size_t nHeads, size_t headDim, float sign) {
  const size_t half = headDim / 2;
  for (size_t h = 0; h < nHeads; h++) {
    float* x1 = x + h * headDim;
    float* x2 = x1 + half;
#pragma omp simd
    for (size_t i = 0; i < half; i++) {
      const float a = x1[i];
      const float b = x2[i];
      const float si = sign * s[i];
      x1[i] = a * c[i] - b * si;
      x2[i] = b * c[i] + a * si;
    }
  }
}
}  // namespace

void ropeKernel(ThreadPool& pool, float* x, const float* cos, const float* sin, size_t rows, size_t width, size_t seqLen, size_t nHeads, size_t headDim, bool inverse) {
  const size_t half = headDim / 2;
  const float sign = inverse ? -1.0f : 1.0f;
  parallelRanges(pool, rows, rowsPerPart(nHeads * headDim), [&](size_t r0, size_t r1, size_t) {
    for (size_t r = r0; r < r1; r++) {
      const size_t pos = r % seqLen;
      const float* c = cos + pos * half;
      const float* s = sin + pos * half;
      rotateRow(x + r * width, c, s, nHeads, headDim, sign);
    }
  });
}

}  // namespace adabatch
