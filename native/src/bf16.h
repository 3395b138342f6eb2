// bfloat16: the upper 16 bits of an IEEE float32 (8 exponent bits, 7 mantissa bits). Conversions
// round to nearest even, as oneDNN, PyTorch and the AVX512_BF16 instructions do; NaN stays NaN.
#pragma once
#include <cstdint>
#include <cstring>

namespace adabatch {

inline uint16_t bf16FromFloat(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40u);  // quiet NaN
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

inline float floatFromBf16(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

}  // namespace adabatch
