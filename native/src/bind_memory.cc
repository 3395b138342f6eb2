// Memory entry points: alloc, free, upload, download, copy, fill.
#include <cmath>
#include <cstring>

#include "context.h"
#include "bf16.h"
#include "elementwise.h"

namespace adabatch {

Napi::Value Context::Alloc(const Napi::CallbackInfo& info) {
  return guarded(info, "alloc", [&](Args& a) -> Napi::Value {
    const int64_t elems = a.integer("size", 0, int64_t(1) << 40);
    const DType dtype = static_cast<DType>(a.integer("dtype", 0, kLastDType));
    AllocationPtr alloc = registry::create(static_cast<size_t>(elems), dtype, owner_);
    live_ += alloc->bytes;
    peak_ = std::max(peak_, live_);
    return Napi::Number::New(info.Env(), static_cast<double>(alloc->id));
  });
}

Napi::Value Context::Free(const Napi::CallbackInfo& info) {
  return guarded(info, "free", [&](Args& a) -> Napi::Value {
    TensorArg t = a.tensor("t", kAny);
    if (t.offset != 0 || t.size != t.alloc->elems) a.fail("only a whole allocation can be freed, not a view");
    AllocationPtr removed = registry::remove(t.alloc->id);
    if (!removed) a.fail("t: buffer " + std::to_string(t.alloc->id) + " was freed");
    live_ -= removed->bytes;
    return info.Env().Undefined();
  });
}

Napi::Value Context::Upload(const Napi::CallbackInfo& info) {
  return guarded(info, "upload", [&](Args& a) -> Napi::Value {
    TensorArg t = a.tensor("t", kAny);
    Napi::TypedArray data = a.typedArray("data");
    // bf16 travels as its bit patterns (Uint16Array); the JavaScript side rounds and widens.
    const napi_typedarray_type want = t.dtype == DType::F32 ? napi_float32_array : t.dtype == DType::F64 ? napi_float64_array : t.dtype == DType::BF16 ? napi_uint16_array : napi_int32_array;
    if (data.TypedArrayType() != want) a.fail(std::string("data must be a typed array of the tensor's dtype ") + dtypeName(t.dtype) + (t.dtype == DType::BF16 ? " (a Uint16Array of bit patterns)" : ""));
    if (data.ElementLength() != t.size) a.fail("data has " + std::to_string(data.ElementLength()) + " elements, tensor has " + std::to_string(t.size));
    const char* src = static_cast<const char*>(data.ArrayBuffer().Data()) + data.ByteOffset();
    copyBytes(pool(), t.data<char>(), src, t.size * dtypeBytes(t.dtype));
    return info.Env().Undefined();
  });
}

Napi::Value Context::Download(const Napi::CallbackInfo& info) {
  return guarded(info, "download", [&](Args& a) -> Napi::Value {
    TensorArg t = a.tensor("t", kAny);
    const size_t bytes = t.size * dtypeBytes(t.dtype);
    Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(info.Env(), bytes);
    copyBytes(pool(), buf.Data(), t.data<char>(), bytes);
    switch (t.dtype) {
      case DType::F32: return Napi::Float32Array::New(info.Env(), t.size, buf, 0);
      case DType::F64: return Napi::Float64Array::New(info.Env(), t.size, buf, 0);
      case DType::I32: return Napi::Int32Array::New(info.Env(), t.size, buf, 0);
      case DType::BF16: return Napi::Uint16Array::New(info.Env(), t.size, buf, 0);
    }
    return info.Env().Undefined();
  });
}

Napi::Value Context::Copy(const Napi::CallbackInfo& info) {
  return guarded(info, "copy", [&](Args& a) -> Napi::Value {
    TensorArg dst = a.tensor("dst", kAny);
    TensorArg src = a.tensor("src", kAny);
    a.expectSameDtype(src, dst);
    a.expectSize(src, static_cast<int64_t>(dst.size), "the size of dst");
    copyBytes(pool(), dst.data<char>(), src.data<char>(), dst.size * dtypeBytes(dst.dtype));
    return info.Env().Undefined();
  });
}

namespace {
// JavaScript's ToInt32 (what storing a number into an Int32Array does), for finite values.
int32_t toInt32(double v) {
  double t = std::fmod(std::trunc(v), 4294967296.0);
  if (t < 0) t += 4294967296.0;
  if (t >= 2147483648.0) t -= 4294967296.0;
  return static_cast<int32_t>(t);
}
}  // namespace

Napi::Value Context::Fill(const Napi::CallbackInfo& info) {
  return guarded(info, "fill", [&](Args& a) -> Napi::Value {
    TensorArg t = a.tensor("t", kAny);
    const double value = a.number("value");
    switch (t.dtype) {
      case DType::F32: fillKernel<float>(pool(), t.data<float>(), t.size, static_cast<float>(value)); break;
      case DType::F64: fillKernel<double>(pool(), t.data<double>(), t.size, value); break;
      case DType::I32: fillKernel<int32_t>(pool(), t.data<int32_t>(), t.size, toInt32(value)); break;
      case DType::BF16: fillKernel<uint16_t>(pool(), t.data<uint16_t>(), t.size, bf16FromFloat(static_cast<float>(value))); break;
    }
    return info.Env().Undefined();
  });
}

}  // namespace adabatch
