// One generation step with a KV cache: the new token's k and v go into the caches at `pos`, and
// each query head attends over positions [0, pos].
#pragma once
#include <cstddef>
#include <vector>

#include "thread_pool.h"

namespace adabatch {

struct DecodeShape {
  size_t batch, maxSeqLen, nHeads, nKvHeads, headDim;
};

// workerScratch[w] holds maxSeqLen floats.
void attentionDecode(ThreadPool& pool, float* out, const float* qkv, float* kCache, float* vCache, size_t pos, const DecodeShape& s, const std::vector<float*>& workerScratch);

}  // namespace adabatch
