// Rotary position embedding in place (Hugging Face rotate-half layout) on the first nHeads heads of
// each row; `inverse` applies the transposed rotation (the backward pass).
#pragma once
#include <cstddef>

#include "thread_pool.h"

namespace adabatch {

void ropeKernel(ThreadPool& pool, float* x, const float* cos, const float* sin, size_t rows, size_t width, size_t seqLen, size_t nHeads, size_t headDim, bool inverse);

}  // namespace adabatch
