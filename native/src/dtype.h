// Element types of backend tensors: float32 activations and parameters, float64 statistics,
// int32 tokens, bfloat16 GEMM inputs (mixed precision). The codes match DTYPE_CODE in src/addon/addon.ts.
#pragma once
#include <cstddef>

namespace adabatch {

enum class DType : int { F32 = 0, F64 = 1, I32 = 2, BF16 = 3 };
constexpr int kLastDType = 3;

inline size_t dtypeBytes(DType t) { return t == DType::F64 ? 8 : t == DType::BF16 ? 2 : 4; }

inline const char* dtypeName(DType t) {
  switch (t) {
    case DType::F32: return "f32";
    case DType::F64: return "f64";
    case DType::I32: return "i32";
    case DType::BF16: return "bf16";
  }
  return "?";
}

// Bit masks for "which dtypes may this argument have".
constexpr unsigned kF32 = 1u << 0;
constexpr unsigned kF64 = 1u << 1;
constexpr unsigned kI32 = 1u << 2;
constexpr unsigned kBF16 = 1u << 3;
constexpr unsigned kFloat = kF32 | kF64;
constexpr unsigned kAny = kF32 | kF64 | kI32 | kBF16;

inline unsigned dtypeBit(DType t) { return 1u << static_cast<int>(t); }

}  // namespace adabatch
