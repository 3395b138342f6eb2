// Final RMSNorm + LM head + softmax cross-entropy, fused and processed in chunks of tokens so the
// N × vocab logits never exist at once: per chunk one GEMM for the logits, a softmax pass that turns
// them into dlogits in place, and (with gradients) two GEMMs for dx̂ and dHeadW, then the RMSNorm
// backward. Targets < 0 are ignored; targets are validated by the caller.
#pragma once
#include <cstddef>
#include <cstdint>

#include "thread_pool.h"

namespace adabatch {

struct HeadLossShape {
  size_t rows, dim, vocab, chunk;
};

struct HeadLossGrads {
  float* dx;
  float* dNormW;
  float* dHeadW;
  float gradScale;
};

struct HeadLossScratch {
  float* logits;    // chunk × vocab
  float* xn;        // chunk × dim
  float* dxn;       // chunk × dim
  float* rstd;      // chunk
  double* rowLoss;  // chunk
  float* partials;  // rmsnormPartials(chunk, dim)
};

// Floats (4-byte units) of scratch needed, excluding rowLoss (chunk doubles).
size_t headLossScratchFloats(const HeadLossShape& s);

void headLoss(ThreadPool& pool, const float* x, const float* normW, const float* headW, const int32_t* targets, const HeadLossShape& s, double eps, const HeadLossGrads* grads, const HeadLossScratch& scratch, double* lossSum, double* count);

}  // namespace adabatch
