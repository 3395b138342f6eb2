// Flat elementwise kernels and float64-accumulated reductions (float32 and float64 data).
#pragma once
#include <cstddef>
#include <cstdint>

#include "thread_pool.h"

namespace adabatch {

template <class T> void scaleKernel(ThreadPool& pool, T* x, size_t n, double alpha);
template <class T> void axpyKernel(ThreadPool& pool, T* y, double alpha, const T* x, size_t n);
template <class T> void addKernel(ThreadPool& pool, T* out, const T* a, const T* b, size_t n);
// Σ x² / Σ a·b, accumulated in float64.
template <class T> double sumSquaresKernel(ThreadPool& pool, const T* x, size_t n);
template <class T> double dotKernel(ThreadPool& pool, const T* a, const T* b, size_t n);
// acc += alpha·g, returns Σ g² (float64).
template <class T> double accumulateWithNormKernel(ThreadPool& pool, T* acc, double alpha, const T* g, size_t n);
void copyBytes(ThreadPool& pool, void* dst, const void* src, size_t bytes);
template <class T> void fillKernel(ThreadPool& pool, T* x, size_t n, T value);
// bfloat16 conversions (round to nearest even; see bf16.h).
void toBf16Kernel(ThreadPool& pool, uint16_t* dst, const float* src, size_t n);
void fromBf16Kernel(ThreadPool& pool, float* dst, const uint16_t* src, size_t n);

}  // namespace adabatch
