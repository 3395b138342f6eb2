#include "elementwise.h"

#include <cstdint>
#include <cstring>
#include <vector>

#include "bf16.h"
#include "parallel.h"
#include "simd.h"

namespace adabatch {

// The loops live in plain functions over local pointers (not in lambdas capturing by reference),
// which the compiler vectorises; out may alias an input exactly (same index), never partially.
namespace {
template <class T>
void scaleRange(T* x, size_t n, T a) {
#pragma omp simd
  for (size_t i = 0; i < n; i++) x[i] *= a;
}
template <class T>
void axpyRange(T* y, T a, const T* x, size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; i++) y[i] += a * x[i];
}
template <class T>
void addRange(T* out, const T* a, const T* b, size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}
template <class T>
void fillRange(T* x, size_t n, T v) {
  for (size_t i = 0; i < n; i++) x[i] = v;
}

double dotRange(const float* a, const float* b, size_t n) { return dotF32toF64(a, b, n); }
double dotRange(const double* a, const double* b, size_t n) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += a[i] * b[i];
    s1 += a[i + 1] * b[i + 1];
    s2 += a[i + 2] * b[i + 2];
    s3 += a[i + 3] * b[i + 3];
  }
  for (; i < n; i++) s0 += a[i] * b[i];
  return (s0 + s1) + (s2 + s3);
}
double axpyNormRange(float* acc, float alpha, const float* g, size_t n) { return axpyNormF32(acc, alpha, g, n); }
double axpyNormRange(double* acc, double alpha, const double* g, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) {
    s += g[i] * g[i];
    acc[i] += alpha * g[i];
  }
  return s;
}

// Runs part(b, e) → double over fixed partitions and sums the partials in partition order.
template <class F>
double reduceParts(ThreadPool& pool, size_t n, F&& part) {
  const size_t parts = ceilDiv(n, kElemChunk);
  if (parts <= 1) return n ? part(size_t(0), n) : 0.0;
  std::vector<double> partial(parts);
  parallelRanges(pool, n, kElemChunk, [&](size_t b, size_t e, size_t p) { partial[p] = part(b, e); });
  double s = 0;
  for (double v : partial) s += v;
  return s;
}
}  // namespace

template <class T>
void scaleKernel(ThreadPool& pool, T* x, size_t n, double alpha) {
  const T a = static_cast<T>(alpha);
  parallelRanges(pool, n, kElemChunk, [&](size_t b, size_t e, size_t) { scaleRange(x + b, e - b, a); });
}

template <class T>
void axpyKernel(ThreadPool& pool, T* y, double alpha, const T* x, size_t n) {
  const T a = static_cast<T>(alpha);
  parallelRanges(pool, n, kElemChunk, [&](size_t b, size_t e, size_t) { axpyRange(y + b, a, x + b, e - b); });
}

template <class T>
void addKernel(ThreadPool& pool, T* out, const T* a, const T* b, size_t n) {
  parallelRanges(pool, n, kElemChunk, [&](size_t s, size_t e, size_t) { addRange(out + s, a + s, b + s, e - s); });
}

template <class T>
double sumSquaresKernel(ThreadPool& pool, const T* x, size_t n) {
  return reduceParts(pool, n, [&](size_t b, size_t e) { return dotRange(x + b, x + b, e - b); });
}

template <class T>
double dotKernel(ThreadPool& pool, const T* a, const T* b, size_t n) {
  return reduceParts(pool, n, [&](size_t s, size_t e) { return dotRange(a + s, b + s, e - s); });
}

template <class T>
double accumulateWithNormKernel(ThreadPool& pool, T* acc, double alpha, const T* g, size_t n) {
  const T a = static_cast<T>(alpha);
  return reduceParts(pool, n, [&](size_t b, size_t e) { return axpyNormRange(acc + b, a, g + b, e - b); });
}

void copyBytes(ThreadPool& pool, void* dst, const void* src, size_t bytes) {
  if (dst == src || bytes == 0) return;
  char* d = static_cast<char*>(dst);
  const char* s = static_cast<const char*>(src);
  if (d < s + bytes && s < d + bytes) {  // overlapping windows: one memmove keeps the semantics
    std::memmove(d, s, bytes);
    return;
  }
  parallelRanges(pool, bytes, size_t(1) << 18, [&](size_t b, size_t e, size_t) { std::memcpy(d + b, s + b, e - b); });
}

template <class T>
void fillKernel(ThreadPool& pool, T* x, size_t n, T value) {
  parallelRanges(pool, n, kElemChunk * 4, [&](size_t b, size_t e, size_t) { fillRange(x + b, e - b, value); });
}

void toBf16Kernel(ThreadPool& pool, uint16_t* dst, const float* src, size_t n) {
  parallelRanges(pool, n, kElemChunk * 2, [&](size_t b, size_t e, size_t) {
    for (size_t i = b; i < e; i++) dst[i] = bf16FromFloat(src[i]);
  });
}

void fromBf16Kernel(ThreadPool& pool, float* dst, const uint16_t* src, size_t n) {
  parallelRanges(pool, n, kElemChunk * 2, [&](size_t b, size_t e, size_t) {
    for (size_t i = b; i < e; i++) dst[i] = floatFromBf16(src[i]);
  });
}

template void scaleKernel<float>(ThreadPool&, float*, size_t, double);
template void scaleKernel<double>(ThreadPool&, double*, size_t, double);
template void axpyKernel<float>(ThreadPool&, float*, double, const float*, size_t);
template void axpyKernel<double>(ThreadPool&, double*, double, const double*, size_t);
template void addKernel<float>(ThreadPool&, float*, const float*, const float*, size_t);
template void addKernel<double>(ThreadPool&, double*, const double*, const double*, size_t);
template double sumSquaresKernel<float>(ThreadPool&, const float*, size_t);
template double sumSquaresKernel<double>(ThreadPool&, const double*, size_t);
template double dotKernel<float>(ThreadPool&, const float*, const float*, size_t);
template double dotKernel<double>(ThreadPool&, const double*, const double*, size_t);
template double accumulateWithNormKernel<float>(ThreadPool&, float*, double, const float*, size_t);
template double accumulateWithNormKernel<double>(ThreadPool&, double*, double, const double*, size_t);
template void fillKernel<float>(ThreadPool&, float*, size_t, float);
template void fillKernel<double>(ThreadPool&, double*, size_t, double);
template void fillKernel<int32_t>(ThreadPool&, int32_t*, size_t, int32_t);
template void fillKernel<uint16_t>(ThreadPool&, uint16_t*, size_t, uint16_t);

}  // namespace adabatch
