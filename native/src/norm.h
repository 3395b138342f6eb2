// RMSNorm, rowwise over the last dimension: out = x · rstd · w with rstd = 1/sqrt(mean(x²) + eps).
#pragma once
#include <cstddef>

#include "thread_pool.h"

namespace adabatch {

void rmsnormForward(ThreadPool& pool, float* out, float* rstd, const float* x, const float* w, size_t rows, size_t dim, double eps);

// Rows per partition of rmsnormBackward: dw partials need rmsnormPartials(rows, dim) floats of scratch.
size_t rmsnormPartials(size_t rows, size_t dim);

// dx (= or += when accumulate) and dw += from dOut; `partials` is scratch of rmsnormPartials floats.
void rmsnormBackward(ThreadPool& pool, float* dx, float* dw, const float* dOut, const float* x, const float* w, const float* rstd, size_t rows, size_t dim, bool accumulate, float* partials);

}  // namespace adabatch
