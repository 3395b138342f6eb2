// Row-major single-precision GEMM on OpenBLAS: C = alpha·op(A)·op(B) + beta·C.
//
// OpenBLAS itself runs single-threaded; with a multi-threaded pool a large GEMM is cut into one
// block of C per thread (along the longer of M and N, in multiples of 64) and every block is an
// independent cblas_sgemm call. Measured on a 2-core Sapphire Rapids this matches OpenBLAS's own
// threading on large shapes and beats it on short-and-wide ones (e.g. 512×4096×256), and it never
// leaves BLAS threads spinning against the pool's.
#pragma once
#include "thread_pool.h"

namespace adabatch {

void sgemm(ThreadPool& pool, bool transA, bool transB, int m, int n, int k, float alpha, const float* a, int lda, const float* b, int ldb, float beta, float* c, int ldc);

// The same, always on the calling thread (inside pool tasks).
void sgemmSerial(bool transA, bool transB, int m, int n, int k, float alpha, const float* a, int lda, const float* b, int ldb, float beta, float* c, int ldc);

}  // namespace adabatch
