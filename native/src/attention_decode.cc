#include "attention_decode.h"

#include <cmath>
#include <cstring>

#include "simd.h"

namespace adabatch {

namespace {
void accumulateRow(float* __restrict o, float p, const float* __restrict v, size_t n) {
#pragma omp simd
  for (size_t c = 0; c < n; c++) o[c] += p * v[c];
}
}  // namespace

void attentionDecode(ThreadPool& pool, float* out, const float* qkv, float* kCache, float* vCache, size_t pos, const DecodeShape& s, const std::vector<float*>& workerScratch) {
  const size_t H = s.nHeads, Hkv = s.nKvHeads, hd = s.headDim, S = s.maxSeqLen;
  const size_t W = (H + 2 * Hkv) * hd, kvW = Hkv * hd, group = H / Hkv;
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  for (size_t b = 0; b < s.batch; b++) {
    std::memcpy(kCache + (b * S + pos) * kvW, qkv + b * W + H * hd, kvW * sizeof(float));
    std::memcpy(vCache + (b * S + pos) * kvW, qkv + b * W + (H + Hkv) * hd, kvW * sizeof(float));
  }
  pool.run(static_cast<int>(s.batch * H), [&](int task, int worker) {
    const size_t b = static_cast<size_t>(task) / H, h = static_cast<size_t>(task) % H, kvh = h / group;
    const float* q = qkv + b * W + h * hd;
    const float* kc = kCache + b * S * kvW + kvh * hd;
    const float* vc = vCache + b * S * kvW + kvh * hd;
    float* scores = workerScratch[worker];
    for (size_t j = 0; j <= pos; j++) scores[j] = dotF32(q, kc + j * kvW, hd) * scale;
    const float m = maxOf(scores, pos + 1);
    const double sum = expShiftSum(scores, scores, pos + 1, m);
    const float inv = static_cast<float>(1.0 / sum);
    float* o = out + b * H * hd + h * hd;
    for (size_t c = 0; c < hd; c++) o[c] = 0;
    for (size_t j = 0; j <= pos; j++) accumulateRow(o, scores[j] * inv, vc + j * kvW, hd);
  });
}

}  // namespace adabatch
