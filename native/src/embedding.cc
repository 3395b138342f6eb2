#include "embedding.h"

#include <cstring>

#include "parallel.h"

namespace adabatch {

namespace {
void addRow(float* __restrict t, const float* __restrict g, size_t n) {
#pragma omp simd
  for (size_t c = 0; c < n; c++) t[c] += g[c];
}
}  // namespace

void embeddingForward(ThreadPool& pool, float* out, const float* table, const int32_t* tokens, size_t n, size_t dim) {
  parallelRanges(pool, n, rowsPerPart(dim), [&](size_t r0, size_t r1, size_t) {
    for (size_t r = r0; r < r1; r++) std::memcpy(out + r * dim, table + static_cast<size_t>(tokens[r]) * dim, dim * sizeof(float));
  });
}

void embeddingBackward(ThreadPool& pool, float* dTable, const float* dOut, const int32_t* tokens, size_t n, size_t dim) {
  const size_t colChunk = dim >= 128 && n * dim >= kElemChunk ? 64 : dim;
  parallelRanges(pool, dim, colChunk, [&](size_t c0, size_t c1, size_t) {
    for (size_t r = 0; r < n; r++) {
      addRow(dTable + static_cast<size_t>(tokens[r]) * dim + c0, dOut + r * dim + c0, c1 - c0);
    }
  });
}

}  // namespace adabatch
