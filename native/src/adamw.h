// Decoupled-weight-decay Adam on one contiguous range (torch.optim.AdamW semantics).
#pragma once
#include <cstddef>

#include "thread_pool.h"

namespace adabatch {

struct AdamWHyper {
  double lr, beta1, beta2, eps, weightDecay;
  long long step;
};

void adamwKernel(ThreadPool& pool, float* param, const float* grad, float* m, float* v, size_t n, const AdamWHyper& p);

}  // namespace adabatch
