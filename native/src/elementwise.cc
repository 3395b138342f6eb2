#include "elementwise.h"

#include <cstdint>
#include <cstring>
#include <vector>

#include "parallel.h"

namespace adabatch {

template <class T>
void scaleKernel(ThreadPool& pool, T* x, size_t n, double alpha) {
  const T a = static_cast<T>(alpha);
  parallelRanges(pool, n, kElemChunk, [&](size_t b, size_t e, size_t) {
#pragma omp simd
    for (size_t i = b; i < e; i++) x[i] *= a;
  });
}

template <class T>
void axpyKernel(ThreadPool& pool, T* y, double alpha, const T* x, size_t n) {
  const T a = static_cast<T>(alpha);
  parallelRanges(pool, n, kElemChunk, [&](size_t b, size_t e, size_t) {
#pragma omp simd
    for (size_t i = b; i < e; i++) y[i] += a * x[i];
  });
}

template <class T>
void addKernel(ThreadPool& pool, T* out, const T* a, const T* b, size_t n) {
  // out may alias a or b exactly (elementwise, same index).
  parallelRanges(pool, n, kElemChunk, [&](size_t s, size_t e, size_t) {
#pragma omp simd
    for (size_t i = s; i < e; i++) out[i] = a[i] + b[i];
  });
}

// Runs part(b, e) → double over fixed partitions and sums the partials in partition order.
template <class F>
static double reduceParts(ThreadPool& pool, size_t n, F&& part) {
  const size_t parts = ceilDiv(n, kElemChunk);
  if (parts <= 1) return n ? part(size_t(0), n) : 0.0;
  std::vector<double> partial(parts);
  parallelRanges(pool, n, kElemChunk, [&](size_t b, size_t e, size_t p) { partial[p] = part(b, e); });
  double s = 0;
  for (double v : partial) s += v;
  return s;
}

template <class T>
double sumSquaresKernel(ThreadPool& pool, const T* x, size_t n) {
  return reduceParts(pool, n, [&](size_t b, size_t e) {
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (size_t i = b; i < e; i++) s += static_cast<double>(x[i]) * static_cast<double>(x[i]);
    return s;
  });
}

template <class T>
double dotKernel(ThreadPool& pool, const T* a, const T* b, size_t n) {
  return reduceParts(pool, n, [&](size_t s, size_t e) {
    double acc = 0;
#pragma omp simd reduction(+ : acc)
    for (size_t i = s; i < e; i++) acc += static_cast<double>(a[i]) * static_cast<double>(b[i]);
    return acc;
  });
}

template <class T>
double accumulateWithNormKernel(ThreadPool& pool, T* acc, double alpha, const T* g, size_t n) {
  const T a = static_cast<T>(alpha);
  return reduceParts(pool, n, [&](size_t b, size_t e) {
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (size_t i = b; i < e; i++) {
      const double gi = static_cast<double>(g[i]);
      s += gi * gi;
      acc[i] += a * g[i];
    }
    return s;
  });
}

void copyBytes(ThreadPool& pool, void* dst, const void* src, size_t bytes) {
  if (dst == src || bytes == 0) return;
  char* d = static_cast<char*>(dst);
  const char* s = static_cast<const char*>(src);
  if (d < s + bytes && s < d + bytes) {  // overlapping windows: one memmove keeps the semantics
    std::memmove(d, s, bytes);
    return;
  }
  parallelRanges(pool, bytes, size_t(1) << 18, [&](size_t b, size_t e, size_t) { std::memmove(d + b, s + b, e - b); });
}

template <class T>
void fillKernel(ThreadPool& pool, T* x, size_t n, T value) {
  parallelRanges(pool, n, kElemChunk * 4, [&](size_t b, size_t e, size_t) {
    for (size_t i = b; i < e; i++) x[i] = value;
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

}  // namespace adabatch
