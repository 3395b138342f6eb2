// SwiGLU on a fused [gate | up] row layout: h = silu(gate) · up, and its backward.
#pragma once
#include <cstddef>

#include "thread_pool.h"

namespace adabatch {

void swigluForward(ThreadPool& pool, float* h, const float* gu, size_t rows, size_t ffn);
void swigluBackward(ThreadPool& pool, float* dgu, const float* dh, const float* gu, size_t rows, size_t ffn);

}  // namespace adabatch
