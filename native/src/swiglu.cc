#include "swiglu.h"

#include "parallel.h"
#include "simd.h"

namespace adabatch {

namespace {
// σ(g) for 8 lanes: 1 / (1 + exp(−g)).
inline __m256 sigmoid8(__m256 g) {
  const __m256 one = _mm256_set1_ps(1.0f);
  return _mm256_div_ps(one, _mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), g))));
}

template <class Body>
inline void lanes(size_t n, Body&& body) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) body(i, _mm256_set1_epi32(-1), true);
  if (i < n) body(i, tailMask(n - i), false);
}

ADABATCH_AVX512 inline __m512 sigmoid16(__m512 g) {
  const __m512 one = _mm512_set1_ps(1.0f);
  return _mm512_div_ps(one, _mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), g))));
}

ADABATCH_AVX512 void forwardRows512(float* h, const float* gu, size_t r0, size_t r1, size_t ffn) {
  for (size_t r = r0; r < r1; r++) {
    const float* g = gu + r * 2 * ffn;
    const float* u = g + ffn;
    float* o = h + r * ffn;
    for (size_t i = 0; i < ffn; i += 16) {
      const __mmask16 m = ffn - i >= 16 ? static_cast<__mmask16>(0xFFFF) : tailMask16(ffn - i);
      const __m512 gv = _mm512_maskz_loadu_ps(m, g + i);
      _mm512_mask_storeu_ps(o + i, m, _mm512_mul_ps(_mm512_mul_ps(gv, sigmoid16(gv)), _mm512_maskz_loadu_ps(m, u + i)));
    }
  }
}

ADABATCH_AVX512 void backwardRows512(float* dgu, const float* dh, const float* gu, size_t r0, size_t r1, size_t ffn) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (size_t r = r0; r < r1; r++) {
    const float* g = gu + r * 2 * ffn;
    const float* u = g + ffn;
    const float* d = dh + r * ffn;
    float* dg = dgu + r * 2 * ffn;
    float* du = dg + ffn;
    for (size_t i = 0; i < ffn; i += 16) {
      const __mmask16 m = ffn - i >= 16 ? static_cast<__mmask16>(0xFFFF) : tailMask16(ffn - i);
      const __m512 gv = _mm512_maskz_loadu_ps(m, g + i), uv = _mm512_maskz_loadu_ps(m, u + i), dv = _mm512_maskz_loadu_ps(m, d + i);
      const __m512 sg = sigmoid16(gv);
      const __m512 dsilu = _mm512_mul_ps(sg, _mm512_fmadd_ps(gv, _mm512_sub_ps(one, sg), one));
      _mm512_mask_storeu_ps(dg + i, m, _mm512_mul_ps(_mm512_mul_ps(dv, uv), dsilu));
      _mm512_mask_storeu_ps(du + i, m, _mm512_mul_ps(dv, _mm512_mul_ps(gv, sg)));
    }
  }
}

inline __m256 load(const float* p, __m256i m, bool full) { return full ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, m); }
inline void store(float* p, __m256 v, __m256i m, bool full) {
  if (full) _mm256_storeu_ps(p, v);
  else _mm256_maskstore_ps(p, m, v);
}
}  // namespace

void swigluForward(ThreadPool& pool, float* h, const float* gu, size_t rows, size_t ffn) {
  parallelRanges(pool, rows, rowsPerPart(3 * ffn), [&](size_t r0, size_t r1, size_t) {
    if (cpuHasAvx512()) return forwardRows512(h, gu, r0, r1, ffn);
    for (size_t r = r0; r < r1; r++) {
      const float* g = gu + r * 2 * ffn;
      const float* u = g + ffn;
      float* o = h + r * ffn;
      lanes(ffn, [&](size_t i, __m256i m, bool full) {
        const __m256 gv = load(g + i, m, full);
        store(o + i, _mm256_mul_ps(_mm256_mul_ps(gv, sigmoid8(gv)), load(u + i, m, full)), m, full);
      });
    }
  });
}

void swigluBackward(ThreadPool& pool, float* dgu, const float* dh, const float* gu, size_t rows, size_t ffn) {
  // h = g·σ(g)·u:  ∂h/∂g = u·σ(g)·(1 + g·(1 − σ(g))),  ∂h/∂u = g·σ(g).
  parallelRanges(pool, rows, rowsPerPart(5 * ffn), [&](size_t r0, size_t r1, size_t) {
    if (cpuHasAvx512()) return backwardRows512(dgu, dh, gu, r0, r1, ffn);
    const __m256 one = _mm256_set1_ps(1.0f);
    for (size_t r = r0; r < r1; r++) {
      const float* g = gu + r * 2 * ffn;
      const float* u = g + ffn;
      const float* d = dh + r * ffn;
      float* dg = dgu + r * 2 * ffn;
      float* du = dg + ffn;
      lanes(ffn, [&](size_t i, __m256i m, bool full) {
        const __m256 gv = load(g + i, m, full), uv = load(u + i, m, full), dv = load(d + i, m, full);
        const __m256 sg = sigmoid8(gv);
        const __m256 gs = _mm256_mul_ps(gv, sg);
        const __m256 dsilu = _mm256_mul_ps(sg, _mm256_fmadd_ps(gv, _mm256_sub_ps(one, sg), one));
        store(dg + i, _mm256_mul_ps(_mm256_mul_ps(dv, uv), dsilu), m, full);
        store(du + i, _mm256_mul_ps(dv, gs), m, full);
      });
    }
  });
}

}  // namespace adabatch
