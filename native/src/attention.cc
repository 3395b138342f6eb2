#include "attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "gemm.h"
#include "simd.h"

namespace adabatch {

namespace {
size_t scoreStride(size_t seqLen) { return (seqLen + 15) / 16 * 16; }

void scaleRow(float* __restrict p, size_t n, float k) {
#pragma omp simd
  for (size_t j = 0; j < n; j++) p[j] *= k;
}

// Causal softmax of score rows [i0, i0 + rows) in place (row r sees keys [0, i0 + r]); lse per row.
void softmaxTile(float* S, size_t ldS, size_t i0, size_t rows, size_t keys, float* lse) {
  for (size_t r = 0; r < rows; r++) {
    float* p = S + r * ldS;
    const size_t valid = i0 + r + 1;
    const float m = maxOf(p, valid);
    const double sum = expShiftSum(p, p, valid, m);
    scaleRow(p, valid, static_cast<float>(1.0 / sum));
    std::memset(p + valid, 0, (keys - valid) * sizeof(float));
    lse[r] = static_cast<float>(m + std::log(sum));
  }
}

void dsRow(float* __restrict ds, const float* __restrict p, size_t n, float D, float scale) {
#pragma omp simd
  for (size_t j = 0; j < n; j++) ds[j] = p[j] * (ds[j] - D) * scale;
}

// P = exp(S − lse) and dS = P ⊙ (dP − D)·scale for a tile, D_i = dO_i · O_i; masked entries zeroed.
void softmaxBackwardTile(float* P, float* dS, size_t ldS, size_t i0, size_t rows, size_t keys, const float* lse, const float* dO, const float* O, size_t ldo, size_t hd, float scale) {
  for (size_t r = 0; r < rows; r++) {
    const size_t valid = i0 + r + 1;
    float* p = P + r * ldS;
    float* ds = dS + r * ldS;
    expShiftSum(p, p, valid, lse[r]);
    const float D = dotF32(dO + r * ldo, O + r * ldo, hd);
    dsRow(ds, p, valid, D, scale);
    std::memset(p + valid, 0, (keys - valid) * sizeof(float));
    std::memset(ds + valid, 0, (keys - valid) * sizeof(float));
  }
}
}  // namespace

size_t attentionScratchFloats(const AttentionShape& s) { return 2 * kAttentionTile * scoreStride(s.seqLen); }

void attentionForward(ThreadPool& pool, float* out, float* lse, const float* qkv, const AttentionShape& s, const std::vector<float*>& workerScratch) {
  const size_t T = s.seqLen, H = s.nHeads, hd = s.headDim, W = s.qkvWidth(), ldo = H * hd;
  const size_t group = H / s.nKvHeads, ldS = scoreStride(T);
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  pool.run(static_cast<int>(s.batch * H), [&](int task, int worker) {
    const size_t b = static_cast<size_t>(task) / H, h = static_cast<size_t>(task) % H, kvh = h / group;
    const float* base = qkv + b * T * W;
    const float* q = base + h * hd;
    const float* k = base + (H + kvh) * hd;
    const float* v = base + (H + s.nKvHeads + kvh) * hd;
    float* o = out + b * T * ldo + h * hd;
    float* l = lse + (b * H + h) * T;
    float* S = workerScratch[worker];
    for (size_t i0 = 0; i0 < T; i0 += kAttentionTile) {
      const size_t rows = std::min(kAttentionTile, T - i0), keys = i0 + rows;
      sgemmSerial(false, true, rows, keys, hd, scale, q + i0 * W, W, k, W, 0.0f, S, ldS);
      softmaxTile(S, ldS, i0, rows, keys, l + i0);
      sgemmSerial(false, false, rows, hd, keys, 1.0f, S, ldS, v, W, 0.0f, o + i0 * ldo, ldo);
    }
  });
}

void attentionBackward(ThreadPool& pool, float* dqkv, const float* dOut, const float* qkv, const float* out, const float* lse, const AttentionShape& s, const std::vector<float*>& workerScratch) {
  const size_t T = s.seqLen, H = s.nHeads, Hkv = s.nKvHeads, hd = s.headDim, W = s.qkvWidth(), ldo = H * hd;
  const size_t group = H / Hkv, ldS = scoreStride(T);
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  // One task per (sequence, kv head): it owns dK and dV of that head and the dQ of its query heads.
  pool.run(static_cast<int>(s.batch * Hkv), [&](int task, int worker) {
    const size_t b = static_cast<size_t>(task) / Hkv, kvh = static_cast<size_t>(task) % Hkv;
    const float* base = qkv + b * T * W;
    float* dbase = dqkv + b * T * W;
    const float* k = base + (H + kvh) * hd;
    const float* v = base + (H + Hkv + kvh) * hd;
    float* dk = dbase + (H + kvh) * hd;
    float* dv = dbase + (H + Hkv + kvh) * hd;
    for (size_t t = 0; t < T; t++) {
      std::memset(dk + t * W, 0, hd * sizeof(float));
      std::memset(dv + t * W, 0, hd * sizeof(float));
    }
    float* P = workerScratch[worker];
    float* dS = P + kAttentionTile * ldS;
    for (size_t h = kvh * group; h < (kvh + 1) * group; h++) {
      const float* q = base + h * hd;
      float* dq = dbase + h * hd;
      const float* o = out + b * T * ldo + h * hd;
      const float* dO = dOut + b * T * ldo + h * hd;
      const float* l = lse + (b * H + h) * T;
      for (size_t i0 = 0; i0 < T; i0 += kAttentionTile) {
        const size_t rows = std::min(kAttentionTile, T - i0), keys = i0 + rows;
        sgemmSerial(false, true, rows, keys, hd, scale, q + i0 * W, W, k, W, 0.0f, P, ldS);
        sgemmSerial(false, true, rows, keys, hd, 1.0f, dO + i0 * ldo, ldo, v, W, 0.0f, dS, ldS);
        softmaxBackwardTile(P, dS, ldS, i0, rows, keys, l + i0, dO + i0 * ldo, o + i0 * ldo, ldo, hd, scale);
        sgemmSerial(false, false, rows, hd, keys, 1.0f, dS, ldS, k, W, 0.0f, dq + i0 * W, W);
        sgemmSerial(true, false, keys, hd, rows, 1.0f, dS, ldS, q + i0 * W, W, 1.0f, dk, W);
        sgemmSerial(true, false, keys, hd, rows, 1.0f, P, ldS, dO + i0 * ldo, ldo, 1.0f, dv, W);
      }
    }
  });
}

}  // namespace adabatch
