// Causal grouped-query self-attention on a fused qkv tensor (rows = tokens, each row
// [q heads | k heads | v heads]), as tiled GEMMs: queries in tiles of kAttentionTile rows attend to
// keys [0, end of tile), so key blocks above the diagonal are never computed. Softmax statistics
// (lse) are kept for the backward pass, which recomputes the probabilities tile by tile instead of
// storing the T×T matrix.
#pragma once
#include <cstddef>
#include <vector>

#include "thread_pool.h"

namespace adabatch {

struct AttentionShape {
  size_t batch, seqLen, nHeads, nKvHeads, headDim;
  size_t qkvWidth() const { return (nHeads + 2 * nKvHeads) * headDim; }
};

constexpr size_t kAttentionTile = 64;

// Floats of scratch per worker thread.
size_t attentionScratchFloats(const AttentionShape& s);

// workerScratch[w]: attentionScratchFloats floats for pool worker w.
void attentionForward(ThreadPool& pool, float* out, float* lse, const float* qkv, const AttentionShape& s, const std::vector<float*>& workerScratch);
void attentionBackward(ThreadPool& pool, float* dqkv, const float* dOut, const float* qkv, const float* out, const float* lse, const AttentionShape& s, const std::vector<float*>& workerScratch);

}  // namespace adabatch
