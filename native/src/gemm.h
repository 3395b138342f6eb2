// Row-major GEMM on oneDNN's matmul primitive: C = alpha·op(A)·op(B) + beta·C, with A and B in f32
// or bf16 (both the same) and C in f32 (f32 accumulation).
//
// Threading is the backend's own pool: a large GEMM is cut into one block of C per task (along the
// longer of M and N, in multiples of 32) and every block is an independent single-threaded oneDNN
// call. Debian's libdnnl runs on OpenMP (libgomp); every thread that calls it sets its own OpenMP
// team size to 1 first, so oneDNN never starts threads of its own: several ranks as threads of one
// process, each with its pool, use exactly the cores their pools hold (docs/performance.md).
//
// Primitives are created once per shape, transposition, leading dimensions, alpha, beta and dtype,
// and cached per calling thread (creation costs 0.3–20 ms, a cached call a few microseconds).
#pragma once
#include <cstdint>
#include <string>

#include "thread_pool.h"

namespace adabatch {

enum class GemmType { F32, BF16 };

// a and b point to float (F32) or uint16_t bf16 bits (BF16); c is always float.
void gemm(ThreadPool& pool, GemmType type, bool transA, bool transB, int m, int n, int k, float alpha, const void* a, int lda, const void* b, int ldb, float beta, float* c, int ldc);

// The same, always on the calling thread (inside pool tasks).
void gemmSerial(GemmType type, bool transA, bool transB, int m, int n, int k, float alpha, const void* a, int lda, const void* b, int ldb, float beta, float* c, int ldc);

inline void sgemm(ThreadPool& pool, bool transA, bool transB, int m, int n, int k, float alpha, const float* a, int lda, const float* b, int ldb, float beta, float* c, int ldc) {
  gemm(pool, GemmType::F32, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
inline void sgemmSerial(bool transA, bool transB, int m, int n, int k, float alpha, const float* a, int lda, const float* b, int ldb, float beta, float* c, int ldc) {
  gemmSerial(GemmType::F32, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

struct GemmInfo {
  std::string library;  // e.g. "oneDNN 2.6.3"
  std::string isa;      // the instruction set oneDNN dispatches to, e.g. "avx512_core_bf16"
  std::string f32Impl;  // the implementation oneDNN picks for an f32 matmul, e.g. "brg:avx512_core"
  std::string bf16Impl; // the same for bf16, or "" when the CPU has no bf16 instructions
  bool bf16 = false;    // bf16 GEMMs run on native bf16 instructions (AVX512_BF16 or AMX)
};

const GemmInfo& gemmInfo();

}  // namespace adabatch
