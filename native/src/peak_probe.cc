// See peak_probe.h. Each loop keeps enough independent accumulators in registers to cover
// latency × pipes of every current core (FMA: 4–5 cycles × 2 pipes; vdpbf16ps: up to 6 × 2), so
// the loop is bound by throughput only; the accumulators are summed into the result at the end, so
// the compiler cannot drop the work, and the constants come through volatile loads so it cannot
// fold it. The instruction selection is per function (target attributes): the addon itself is
// built for x86-64-v3 and the AVX-512 loops run only where the CPU has the instructions (the
// hardware check, not cpuHasAvx512(): ADABATCH_NO_AVX512 steers our own kernels, not oneDNN's).
#include "peak_probe.h"

#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdint>

// GCC 12's AVX-512 headers trip -Wuninitialized on their own _mm512_undefined_* placeholders.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace adabatch {
namespace {

using Clock = std::chrono::steady_clock;

// Iterations of the unrolled body between clock reads: ~16k vector instructions, a few µs.
constexpr int kInner = 1024;

volatile float gB = 0.999999f;  // multiplier < 1 and small addend: accumulators converge, never denormal/inf
volatile float gC = 1e-6f;
volatile float gSink = 0;

struct Run {
  double seconds;
  uint64_t instructions;
};

#define PEAK_REP16(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)
#define PEAK_REP12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

// 16 zmm accumulators + 2 operands = 18 of the 32 zmm registers.
__attribute__((target("avx512f"), noinline)) Run fma512(double seconds) {
  const __m512 b = _mm512_set1_ps(gB), c = _mm512_set1_ps(gC);
#define DECL(i) __m512 a##i = _mm512_set1_ps(static_cast<float>(i));
  PEAK_REP16(DECL)
#undef DECL
  uint64_t blocks = 0;
  const auto t0 = Clock::now();
  double elapsed = 0;
  do {
    for (int it = 0; it < kInner; it++) {
#define STEP(i) a##i = _mm512_fmadd_ps(a##i, b, c);
      PEAK_REP16(STEP)
#undef STEP
    }
    blocks++;
    elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  } while (elapsed < seconds);
  __m512 s = _mm512_setzero_ps();
#define SUM(i) s = _mm512_add_ps(s, a##i);
  PEAK_REP16(SUM)
#undef SUM
  gSink = _mm512_reduce_add_ps(s);
  return {elapsed, blocks * kInner * 16};
}

// 12 ymm accumulators + 2 operands = 14 of the 16 ymm registers.
__attribute__((target("avx2,fma"), noinline)) Run fma256(double seconds) {
  const __m256 b = _mm256_set1_ps(gB), c = _mm256_set1_ps(gC);
#define DECL(i) __m256 a##i = _mm256_set1_ps(static_cast<float>(i));
  PEAK_REP12(DECL)
#undef DECL
  uint64_t blocks = 0;
  const auto t0 = Clock::now();
  double elapsed = 0;
  do {
    for (int it = 0; it < kInner; it++) {
#define STEP(i) a##i = _mm256_fmadd_ps(a##i, b, c);
      PEAK_REP12(STEP)
#undef STEP
    }
    blocks++;
    elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  } while (elapsed < seconds);
  __m256 s = _mm256_setzero_ps();
#define SUM(i) s = _mm256_add_ps(s, a##i);
  PEAK_REP12(SUM)
#undef SUM
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, s);
  float t = 0;
  for (float v : lanes) t += v;
  gSink = t;
  return {elapsed, blocks * kInner * 12};
}

// vdpbf16ps zmm: each lane adds two bf16 products to an f32 accumulator. The operands are
// bf16(1e-3) pairs, so each instruction adds 2e-6 per lane: no overflow, no denormals.
__attribute__((target("avx512bf16,avx512f"), noinline)) Run dpbf16(double seconds) {
  const __m512 v = _mm512_set1_ps(gC * 1000.0f);
  const __m512bh x = _mm512_cvtne2ps_pbh(v, v), y = _mm512_cvtne2ps_pbh(v, v);
#define DECL(i) __m512 a##i = _mm512_set1_ps(static_cast<float>(i));
  PEAK_REP16(DECL)
#undef DECL
  uint64_t blocks = 0;
  const auto t0 = Clock::now();
  double elapsed = 0;
  do {
    for (int it = 0; it < kInner; it++) {
#define STEP(i) a##i = _mm512_dpbf16_ps(a##i, x, y);
      PEAK_REP16(STEP)
#undef STEP
    }
    blocks++;
    elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  } while (elapsed < seconds);
  __m512 s = _mm512_setzero_ps();
#define SUM(i) s = _mm512_add_ps(s, a##i);
  PEAK_REP16(SUM)
#undef SUM
  gSink = _mm512_reduce_add_ps(s);
  return {elapsed, blocks * kInner * 16};
}

#undef PEAK_REP16
#undef PEAK_REP12

// Best GFLOP/s of three runs, after a short untimed warm-up (the core's clock and, on some Intel
// parts, the AVX-512 frequency licence settle first).
template <typename F>
double best3(F loop, double seconds, double flopsPerInstruction) {
  loop(std::min(0.05, seconds));
  double best = 0;
  for (int r = 0; r < 3; r++) {
    const Run run = loop(seconds);
    best = std::max(best, static_cast<double>(run.instructions) * flopsPerInstruction / run.seconds / 1e9);
  }
  return best;
}

}  // namespace

PeakProbeResult peakProbe(double seconds) {
  if (!(seconds >= 0.001)) seconds = 0.001;  // also NaN
  if (seconds > 10) seconds = 10;
  PeakProbeResult r;
  r.f32Avx512 = __builtin_cpu_supports("avx512f");
  // An FMA is 2 flops per lane: zmm 16 lanes = 32, ymm 8 lanes = 16.
  r.f32Gflops = r.f32Avx512 ? best3(fma512, seconds, 32.0) : best3(fma256, seconds, 16.0);
  // vdpbf16ps zmm: 16 lanes × 2 multiply-adds = 64 flops.
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16")) r.bf16Gflops = best3(dpbf16, seconds, 64.0);
  return r;
}

}  // namespace adabatch
