// Elementwise halves of the optimizers other than AdamW (adamw.h), on one contiguous range each:
// AdaGrad (torch.optim.Adagrad), LAMB's direction (You et al. 2020) and Muon's momentum
// (KellerJordan/Muon). The whole-tensor parts (LAMB's trust ratio, Muon's Newton–Schulz) are
// composed in TypeScript from these and the GEMM / reduction kernels.
#pragma once
#include <cstddef>

#include "thread_pool.h"

namespace adabatch {

struct AdagradHyper {
  double lr, eps, weightDecay;
};

struct LambHyper {
  double beta1, beta2, eps, weightDecay;
  long long step;
};

struct MuonHyper {
  double beta;
  bool nesterov;
};

// g' = g + wd·param; sum += g'²; param -= lr·g'/(√sum + eps).
void adagradKernel(ThreadPool& pool, float* param, const float* grad, float* sum, size_t n, const AdagradHyper& h);
// m, v as Adam; grad ← m̂/(√v̂ + eps) + wd·param.
void lambDirectionKernel(ThreadPool& pool, const float* param, float* grad, float* m, float* v, size_t n, const LambHyper& h);
// buf ← buf + (1−β)(grad − buf); grad ← grad + β(buf − grad) (Nesterov) or buf.
void muonMomentumKernel(ThreadPool& pool, float* grad, float* buf, size_t n, const MuonHyper& h);

}  // namespace adabatch
