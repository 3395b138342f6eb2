#include "head_loss.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "elementwise.h"
#include "gemm.h"
#include "norm.h"
#include "parallel.h"
#include "simd.h"

namespace adabatch {

namespace {
// One row of logits → its loss; with gradients the row becomes gradScale·(softmax − onehot).
double crossEntropyRow(float* __restrict row, size_t V, int32_t t, const HeadLossGrads* grads) {
  const float target = row[t];
  const float m = maxOf(row, V);
  const double sum = expShiftSum(row, row, V, m);
  if (grads) {
    const float k = static_cast<float>(grads->gradScale / sum);
#pragma omp simd
    for (size_t j = 0; j < V; j++) row[j] *= k;
    row[t] -= grads->gradScale;
  }
  return static_cast<double>(m) + std::log(sum) - static_cast<double>(target);
}
}  // namespace

size_t headLossScratchFloats(const HeadLossShape& s, bool lowp) {
  const size_t f32 = s.chunk * s.vocab + 2 * s.chunk * s.dim + s.chunk + rmsnormPartials(s.chunk, s.dim);
  return lowp ? f32 + (s.chunk * s.dim + s.chunk * s.vocab + 1) / 2 : f32;
}

void headLoss(ThreadPool& pool, const float* x, const float* normW, const float* headW, const uint16_t* headWLow, const int32_t* targets, const HeadLossShape& s, double eps, const HeadLossGrads* grads, const HeadLossScratch& sc, double* lossSum, double* count) {
  const int D = static_cast<int>(s.dim), NV = static_cast<int>(s.vocab);
  const size_t d = s.dim, V = s.vocab;
  double total = 0, counted = 0;
  for (size_t c0 = 0; c0 < s.rows; c0 += s.chunk) {
    const size_t cr = std::min(s.chunk, s.rows - c0);
    const float* xc = x + c0 * d;
    const int32_t* tc = targets + c0;
    rmsnormForward(pool, sc.xn, sc.rstd, xc, normW, cr, d, eps);
    const int R = static_cast<int>(cr);
    if (headWLow) {
      toBf16Kernel(pool, sc.xnLow, sc.xn, cr * d);
      gemm(pool, GemmType::BF16, false, true, R, NV, D, 1.0f, sc.xnLow, D, headWLow, D, 0.0f, sc.logits, NV);
    } else {
      sgemm(pool, false, true, R, NV, D, 1.0f, sc.xn, D, headW, D, 0.0f, sc.logits, NV);
    }
    // Softmax cross-entropy per row; with gradients the row becomes gradScale·(softmax − onehot).
    parallelRanges(pool, cr, std::max<size_t>(1, rowsPerPart(V)), [&](size_t r0, size_t r1, size_t) {
      for (size_t r = r0; r < r1; r++) {
        float* row = sc.logits + r * V;
        const int32_t t = tc[r];
        if (t < 0) {
          sc.rowLoss[r] = 0;
          if (grads) std::memset(row, 0, V * sizeof(float));
          continue;
        }
        sc.rowLoss[r] = crossEntropyRow(row, V, t, grads);
      }
    });
    for (size_t r = 0; r < cr; r++) {
      if (tc[r] < 0) continue;
      total += sc.rowLoss[r];
      counted += 1;
    }
    if (!grads) continue;
    if (headWLow) {
      toBf16Kernel(pool, sc.logitsLow, sc.logits, cr * V);
      gemm(pool, GemmType::BF16, false, false, R, D, NV, 1.0f, sc.logitsLow, NV, headWLow, D, 0.0f, sc.dxn, D);
      gemm(pool, GemmType::BF16, true, false, NV, D, R, 1.0f, sc.logitsLow, NV, sc.xnLow, D, 1.0f, grads->dHeadW, D);
    } else {
      sgemm(pool, false, false, R, D, NV, 1.0f, sc.logits, NV, headW, D, 0.0f, sc.dxn, D);
      sgemm(pool, true, false, NV, D, R, 1.0f, sc.logits, NV, sc.xn, D, 1.0f, grads->dHeadW, D);
    }
    // dxn is the gradient w.r.t. the normalised-and-scaled x: RMSNorm backward gives dx and dNormW.
    rmsnormBackward(pool, grads->dx + c0 * d, grads->dNormW, sc.dxn, xc, normW, sc.rstd, cr, d, false, sc.partials);
  }
  *lossSum = total;
  *count = counted;
}

}  // namespace adabatch
