// Peak floating-point throughput of one core, measured on the calling thread: a dependency-free
// loop of f32 FMAs (zmm vfmadd231ps with AVX-512F, else ymm) and, where the CPU has AVX512_BF16,
// of vdpbf16ps zmm. The number already folds in the clock the core ran at (instructions/cycle ×
// clock), so it is the roof a GEMM on that core can be compared against (× threads for several).
#pragma once

namespace adabatch {

struct PeakProbeResult {
  double f32Gflops = 0;    // best of 3 runs
  double bf16Gflops = -1;  // < 0: the CPU has no AVX512_BF16
  bool f32Avx512 = false;  // the f32 loop ran 512-bit FMAs (else 256-bit AVX2 FMAs)
};

// Runs each loop for about `seconds` (clamped to [0.001, 10]), three times, keeping the best.
// Blocks the calling thread for about 6 × seconds (3 × with no bf16) plus a short warm-up.
PeakProbeResult peakProbe(double seconds);

}  // namespace adabatch
