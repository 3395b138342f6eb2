// Validation of the arguments of every native entry point. A tensor arrives from JavaScript as four
// numbers (buffer id, offset, size, dtype code); it is checked against the registry (exists, not
// freed, owned by this backend instance, dtype, window inside the allocation) before any kernel
// sees a pointer. Failures throw ArgError("<kernel>: <argument> …"), turned into a JavaScript Error.
#pragma once
#include <napi.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "dtype.h"
#include "registry.h"

namespace adabatch {

struct ArgError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A validated window of one allocation. Holding it keeps the memory alive.
struct TensorArg {
  AllocationPtr alloc;
  const char* name = "";
  size_t offset = 0;
  size_t size = 0;
  DType dtype = DType::F32;

  template <class T>
  T* data() const {
    return reinterpret_cast<T*>(static_cast<char*>(alloc->ptr) + offset * dtypeBytes(dtype));
  }
  uintptr_t byteBegin() const { return reinterpret_cast<uintptr_t>(alloc->ptr) + offset * dtypeBytes(dtype); }
  uintptr_t byteEnd() const { return byteBegin() + size * dtypeBytes(dtype); }
};

// Largest element count or dimension accepted (exact in a JavaScript number).
constexpr int64_t kMaxCount = int64_t(1) << 50;

class Args {
 public:
  Args(const Napi::CallbackInfo& info, const char* kernel, uint64_t owner) : info_(info), kernel_(kernel), owner_(owner) {}

  // Reads the next tensor (4 values); `allowed` is a mask of dtypes.
  TensorArg tensor(const char* name, unsigned allowed);
  // Reads the next value as a finite number.
  double number(const char* name);
  // Reads the next value as an integer in [min, max].
  int64_t integer(const char* name, int64_t min, int64_t max = kMaxCount);
  bool boolean(const char* name);
  // The next value as a typed array (for upload).
  Napi::TypedArray typedArray(const char* name);
  bool has(size_t count) const { return info_.Length() >= pos_ + count; }

  [[noreturn]] void fail(const std::string& message) const;
  void expectSize(const TensorArg& t, int64_t expected, const char* what = nullptr) const;
  void expectSameDtype(const TensorArg& t, const TensorArg& like) const;
  // Outputs must not overlap inputs they are computed from (BLAS and fused kernels read inputs
  // after writing outputs).
  void expectDisjoint(const TensorArg& out, const TensorArg& in) const;
  const char* kernel() const { return kernel_; }
  Napi::Env env() const { return info_.Env(); }

 private:
  Napi::Value next(const char* name);

  const Napi::CallbackInfo& info_;
  const char* kernel_;
  uint64_t owner_;
  size_t pos_ = 0;
};

// a·b with a check that the product stays below kMaxCount.
int64_t checkedMul(const Args& args, int64_t a, int64_t b);

}  // namespace adabatch
