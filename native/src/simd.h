// Vector exp for float32 (8 lanes with AVX2 + FMA; 16 lanes with AVX-512, chosen at run time):
// Cephes-style range reduction and a degree-6 polynomial, max relative error ≈ 2 ulp. exp(x) = 0
// below −87 (so no result is ever a subnormal, which would cost a microcode assist per lane), and
// arguments above 88.38 are clamped.
#pragma once
#include <immintrin.h>

#include <cmath>
#include <cstddef>

#include "simd512.h"

namespace adabatch {

inline __m256 exp8(__m256 x) {
  const __m256 hi = _mm256_set1_ps(88.3762626647949f);
  const __m256 lo = _mm256_set1_ps(-87.0f);
  const __m256 underflow = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
  x = _mm256_min_ps(hi, x);  // operand order keeps NaN inputs NaN
  x = _mm256_max_ps(lo, x);
  // n = round(x / ln 2), r = x − n·ln 2 (two-constant Cody–Waite reduction)
  __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500E-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507E-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073E-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894E-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459E-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201E-1f));
  __m256 r2 = _mm256_mul_ps(r, r);
  p = _mm256_fmadd_ps(p, r2, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  // 2^n through the exponent bits (n ∈ [−126, 127] after clamping)
  __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  __m256 result = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
  return _mm256_andnot_ps(underflow, result);
}

// Lane mask for the first `count` (< 8) lanes, for masked loads and stores of loop tails.
inline __m256i tailMask(size_t count) {
  alignas(32) static const int kMask[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kMask + 8 - count));
}

// dst[i] = exp(src[i] − shift) for i < n; returns Σ dst (float32 lanes, then summed in double).
inline double expShiftSum(float* dst, const float* src, size_t n, float shift) {
  if (cpuHasAvx512()) return expShiftSum512(dst, src, n, shift);
  const __m256 s = _mm256_set1_ps(shift);
  __m256 acc = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(src + i), s));
    _mm256_storeu_ps(dst + i, e);
    acc = _mm256_add_ps(acc, e);
  }
  if (i < n) {
    __m256i m = tailMask(n - i);
    __m256 e = exp8(_mm256_sub_ps(_mm256_maskload_ps(src + i, m), s));
    e = _mm256_and_ps(e, _mm256_castsi256_ps(m));
    _mm256_maskstore_ps(dst + i, m, e);
    acc = _mm256_add_ps(acc, e);
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, acc);
  double sum = 0;
  for (float v : lanes) sum += v;
  return sum;
}

// max over src[0, n) (n ≥ 1).
inline float maxOf(const float* src, size_t n) {
  if (cpuHasAvx512()) return maxOf512(src, n);
  __m256 m = _mm256_set1_ps(-INFINITY);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(src + i));
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, m);
  float r = lanes[0];
  for (int k = 1; k < 8; k++) r = lanes[k] > r ? lanes[k] : r;
  for (; i < n; i++) r = src[i] > r ? src[i] : r;
  return r;
}

}  // namespace adabatch

namespace adabatch {

// ---- float32 data, explicit AVX2 (the compiler does not reliably vectorise reductions) --------

inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline double hsum4d(__m256d v) {
  __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

// Σ a·b in float32 (4 accumulators).
inline float dotF32(const float* a, const float* b, size_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
    s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
  }
  for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
  if (i < n) {
    const __m256i m = tailMask(n - i);
    s1 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m), s1);
  }
  return hsum8(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
}

// Σ a·b with float32 inputs accumulated in float64.
inline double dotF32toF64(const float* a, const float* b, size_t n) {
  __m256d s0 = _mm256_setzero_pd(), s1 = s0, s2 = s0, s3 = s0;
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 a0 = _mm256_loadu_ps(a + i), a1 = _mm256_loadu_ps(a + i + 8);
    const __m256 b0 = _mm256_loadu_ps(b + i), b1 = _mm256_loadu_ps(b + i + 8);
    s0 = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(a0)), _mm256_cvtps_pd(_mm256_castps256_ps128(b0)), s0);
    s1 = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(a0, 1)), _mm256_cvtps_pd(_mm256_extractf128_ps(b0, 1)), s1);
    s2 = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(a1)), _mm256_cvtps_pd(_mm256_castps256_ps128(b1)), s2);
    s3 = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(a1, 1)), _mm256_cvtps_pd(_mm256_extractf128_ps(b1, 1)), s3);
  }
  double s = hsum4d(_mm256_add_pd(_mm256_add_pd(s0, s1), _mm256_add_pd(s2, s3)));
  for (; i < n; i++) s += static_cast<double>(a[i]) * static_cast<double>(b[i]);
  return s;
}

// acc += alpha·g and returns Σ g² accumulated in float64.
inline double axpyNormF32(float* acc, float alpha, const float* g, size_t n) {
  const __m256 al = _mm256_set1_ps(alpha);
  __m256d s0 = _mm256_setzero_pd(), s1 = s0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 gv = _mm256_loadu_ps(g + i);
    _mm256_storeu_ps(acc + i, _mm256_fmadd_ps(al, gv, _mm256_loadu_ps(acc + i)));
    const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(gv)), hi = _mm256_cvtps_pd(_mm256_extractf128_ps(gv, 1));
    s0 = _mm256_fmadd_pd(lo, lo, s0);
    s1 = _mm256_fmadd_pd(hi, hi, s1);
  }
  double s = hsum4d(_mm256_add_pd(s0, s1));
  for (; i < n; i++) {
    s += static_cast<double>(g[i]) * static_cast<double>(g[i]);
    acc[i] += alpha * g[i];
  }
  return s;
}

}  // namespace adabatch
