// Element types of backend tensors: float32 activations and parameters, float64 statistics,
// int32 tokens. The codes match src/backend/cpu/native.ts.
#pragma once
#include <cstddef>

namespace adabatch {

enum class DType : int { F32 = 0, F64 = 1, I32 = 2 };

inline size_t dtypeBytes(DType t) { return t == DType::F64 ? 8 : 4; }

inline const char* dtypeName(DType t) {
  switch (t) {
    case DType::F32: return "f32";
    case DType::F64: return "f64";
    case DType::I32: return "i32";
  }
  return "?";
}

// Bit masks for "which dtypes may this argument have".
constexpr unsigned kF32 = 1u << 0;
constexpr unsigned kF64 = 1u << 1;
constexpr unsigned kI32 = 1u << 2;
constexpr unsigned kFloat = kF32 | kF64;
constexpr unsigned kAny = kF32 | kF64 | kI32;

inline unsigned dtypeBit(DType t) { return 1u << static_cast<int>(t); }

}  // namespace adabatch
