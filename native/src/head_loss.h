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
  // bf16 GEMM operands (with headWLow only): x̂ and the logit gradients, rounded.
  uint16_t* xnLow = nullptr;      // chunk × dim
  uint16_t* logitsLow = nullptr;  // chunk × vocab
};

// Floats (4-byte units) of scratch needed, excluding rowLoss (chunk doubles); `lowp` adds the bf16 operands.
size_t headLossScratchFloats(const HeadLossShape& s, bool lowp);

// headWLow (bf16 bits of headW, or null): the three GEMMs read bf16 operands with f32 accumulation.
void headLoss(ThreadPool& pool, const float* x, const float* normW, const float* headW, const uint16_t* headWLow, const int32_t* targets, const HeadLossShape& s, double eps, const HeadLossGrads* grads, const HeadLossScratch& scratch, double* lossSum, double* count);

}  // namespace adabatch
