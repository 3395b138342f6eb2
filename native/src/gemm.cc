#include "gemm.h"

#include <cblas.h>

#include <algorithm>
#include <cstring>

namespace adabatch {

namespace {
// Below this many multiply-adds a GEMM stays on one thread (fork-join would cost more than it saves).
constexpr double kSplitMacs = 4.0e6;
constexpr int kSplitAlign = 32;
}  // namespace

void sgemmSerial(bool transA, bool transB, int m, int n, int k, float alpha, const float* a, int lda, const float* b, int ldb, float beta, float* c, int ldc) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0 || alpha == 0.0f) {
    // C = beta·C (BLAS leaves k = 0 to the implementation; be explicit).
    for (int i = 0; i < m; i++) {
      float* row = c + static_cast<size_t>(i) * ldc;
      if (beta == 0.0f) std::memset(row, 0, sizeof(float) * n);
      else if (beta != 1.0f)
        for (int j = 0; j < n; j++) row[j] *= beta;
    }
    return;
  }
  cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, std::max(lda, 1), b, std::max(ldb, 1), beta, c, std::max(ldc, 1));
}

void sgemm(ThreadPool& pool, bool transA, bool transB, int m, int n, int k, float alpha, const float* a, int lda, const float* b, int ldb, float beta, float* c, int ldc) {
  const int threads = pool.threads();
  const double macs = static_cast<double>(m) * n * k;
  if (threads <= 1 || macs < kSplitMacs || k <= 0) {
    sgemmSerial(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  const bool splitM = m >= n;
  const int extent = splitM ? m : n;
  // Two blocks per thread, handed out dynamically: if one thread is slowed down (another process
  // on its core), the others take over its remaining block instead of waiting for it.
  const int wanted = macs >= kSplitMacs * 4 ? 2 * threads : threads;
  int block = (extent + wanted - 1) / wanted;
  block = (block + kSplitAlign - 1) / kSplitAlign * kSplitAlign;
  const int parts = (extent + block - 1) / block;
  if (parts <= 1) {
    sgemmSerial(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  pool.run(parts, [&](int part, int) {
    const int lo = part * block;
    const int len = std::min(extent, lo + block) - lo;
    if (splitM) {
      const float* ap = transA ? a + lo : a + static_cast<size_t>(lo) * lda;
      sgemmSerial(transA, transB, len, n, k, alpha, ap, lda, b, ldb, beta, c + static_cast<size_t>(lo) * ldc, ldc);
    } else {
      const float* bp = transB ? b + static_cast<size_t>(lo) * ldb : b + lo;
      sgemmSerial(transA, transB, m, len, k, alpha, a, lda, bp, ldb, beta, c + lo, ldc);
    }
  });
}

}  // namespace adabatch
