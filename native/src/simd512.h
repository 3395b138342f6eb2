// AVX-512 versions of the exp-heavy row loops (softmax rows, SwiGLU), compiled with a target
// attribute and chosen at run time: the addon itself is built for x86-64-v3 (AVX2) and runs on
// machines without AVX-512.
#pragma once
#include <immintrin.h>

// GCC 12's AVX-512 headers trip -Wuninitialized on their own _mm512_undefined_* placeholders.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <cmath>
#include <cstddef>
#include <cstdlib>

#define ADABATCH_AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma")))

namespace adabatch {

// True when the CPU supports AVX-512 F/DQ/BW/VL, unless ADABATCH_NO_AVX512 is set (which forces
// the AVX2 paths, so they can be tested on AVX-512 machines).
inline bool cpuHasAvx512() {
  static const bool has = std::getenv("ADABATCH_NO_AVX512") == nullptr && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                          __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
  return has;
}

ADABATCH_AVX512 inline __m512 exp16(__m512 x) {
  const __m512 hi = _mm512_set1_ps(88.3762626647949f);
  const __m512 lo = _mm512_set1_ps(-87.0f);
  const __mmask16 keep = _mm512_cmp_ps_mask(x, lo, _CMP_NLT_UQ);  // x ≥ −87 or NaN
  x = _mm512_min_ps(hi, x);
  x = _mm512_max_ps(lo, x);
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500E-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507E-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073E-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894E-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459E-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201E-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  // p·2ⁿ (scalef is exact for the n range after clamping)
  return _mm512_maskz_scalef_ps(keep, p, n);
}

inline __mmask16 tailMask16(size_t count) { return static_cast<__mmask16>((1u << count) - 1u); }

ADABATCH_AVX512 inline double expShiftSum512(float* dst, const float* src, size_t n, float shift) {
  const __m512 s = _mm512_set1_ps(shift);
  __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0;
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512 e0 = exp16(_mm512_sub_ps(_mm512_loadu_ps(src + i), s));
    const __m512 e1 = exp16(_mm512_sub_ps(_mm512_loadu_ps(src + i + 16), s));
    _mm512_storeu_ps(dst + i, e0);
    _mm512_storeu_ps(dst + i + 16, e1);
    acc0 = _mm512_add_ps(acc0, e0);
    acc1 = _mm512_add_ps(acc1, e1);
  }
  for (; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? static_cast<__mmask16>(0xFFFF) : tailMask16(n - i);
    const __m512 e = _mm512_maskz_mov_ps(m, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, src + i), s)));
    _mm512_mask_storeu_ps(dst + i, m, e);
    acc0 = _mm512_add_ps(acc0, e);
  }
  const __m512 acc = _mm512_add_ps(acc0, acc1);
  const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(acc));
  const __m512d hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc), 1)));
  return _mm512_reduce_add_pd(_mm512_add_pd(lo, hi));
}

ADABATCH_AVX512 inline float maxOf512(const float* src, size_t n) {
  __m512 m = _mm512_set1_ps(-INFINITY);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) m = _mm512_max_ps(m, _mm512_loadu_ps(src + i));
  if (i < n) m = _mm512_mask_max_ps(m, tailMask16(n - i), m, _mm512_maskz_loadu_ps(tailMask16(n - i), src + i));
  return _mm512_reduce_max_ps(m);
}

}  // namespace adabatch
