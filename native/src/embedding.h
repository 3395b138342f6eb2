// Token embedding lookup and its gradient. Token ids are validated by the caller.
#pragma once
#include <cstddef>
#include <cstdint>

#include "thread_pool.h"

namespace adabatch {

void embeddingForward(ThreadPool& pool, float* out, const float* table, const int32_t* tokens, size_t n, size_t dim);
// dTable[tokens[r]] += dOut[r]; partitioned by columns, so repeated tokens never race.
void embeddingBackward(ThreadPool& pool, float* dTable, const float* dOut, const int32_t* tokens, size_t n, size_t dim);

}  // namespace adabatch
