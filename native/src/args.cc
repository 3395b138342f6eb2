#include "args.h"

#include <cmath>

namespace adabatch {

void Args::fail(const std::string& message) const { throw ArgError(std::string(kernel_) + ": " + message); }

Napi::Value Args::next(const char* name) {
  if (pos_ >= info_.Length()) fail(std::string("missing argument ") + name);
  return info_[pos_++];
}

double Args::number(const char* name) {
  Napi::Value v = next(name);
  if (!v.IsNumber()) fail(std::string(name) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) fail(std::string(name) + " must be a finite number, got " + std::to_string(d));
  return d;
}

int64_t Args::integer(const char* name, int64_t min, int64_t max) {
  Napi::Value v = next(name);
  if (!v.IsNumber()) fail(std::string(name) + " must be an integer");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::floor(d) != d) fail(std::string(name) + " must be an integer, got " + std::to_string(d));
  if (d < static_cast<double>(min) || d > static_cast<double>(max)) {
    fail(std::string(name) + " must be in [" + std::to_string(min) + ", " + std::to_string(max) + "], got " + std::to_string(static_cast<long long>(d)));
  }
  return static_cast<int64_t>(d);
}

bool Args::boolean(const char* name) {
  Napi::Value v = next(name);
  if (!v.IsBoolean()) fail(std::string(name) + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

Napi::TypedArray Args::typedArray(const char* name) {
  Napi::Value v = next(name);
  if (!v.IsTypedArray()) fail(std::string(name) + " must be a typed array");
  return v.As<Napi::TypedArray>();
}

TensorArg Args::tensor(const char* name, unsigned allowed) {
  const std::string n(name);
  const int64_t id = integer((n + ".buffer").c_str(), 1);
  const int64_t offset = integer((n + ".offset").c_str(), 0);
  const int64_t size = integer((n + ".size").c_str(), 0);
  const int64_t code = integer((n + ".dtype").c_str(), 0, kLastDType);
  TensorArg t;
  t.name = name;
  t.alloc = registry::find(static_cast<uint64_t>(id));
  if (!t.alloc) {
    if (registry::wasIssued(static_cast<uint64_t>(id))) fail(n + ": buffer " + std::to_string(id) + " was freed");
    fail(n + ": buffer " + std::to_string(id) + " was never allocated");
  }
  if (t.alloc->owner != owner_) fail(n + ": buffer " + std::to_string(id) + " belongs to another cpu backend instance");
  t.dtype = static_cast<DType>(code);
  if (t.dtype != t.alloc->dtype) {
    fail(n + ": tensor dtype " + dtypeName(t.dtype) + " does not match its buffer's dtype " + dtypeName(t.alloc->dtype));
  }
  if (!(allowed & dtypeBit(t.dtype))) {
    std::string want;
    for (DType d : {DType::F32, DType::F64, DType::I32, DType::BF16}) {
      if (allowed & dtypeBit(d)) want += (want.empty() ? "" : " or ") + std::string(dtypeName(d));
    }
    fail(n + " must have dtype " + want + " on the cpu backend, got " + dtypeName(t.dtype));
  }
  if (static_cast<uint64_t>(offset) > t.alloc->elems || static_cast<uint64_t>(size) > t.alloc->elems - static_cast<uint64_t>(offset)) {
    fail(n + ": window [" + std::to_string(offset) + ", " + std::to_string(offset + size) + ") exceeds its buffer of " + std::to_string(t.alloc->elems) + " elements");
  }
  t.offset = static_cast<size_t>(offset);
  t.size = static_cast<size_t>(size);
  return t;
}

void Args::expectSize(const TensorArg& t, int64_t expected, const char* what) const {
  if (static_cast<int64_t>(t.size) != expected) {
    fail(std::string(t.name) + " must have " + std::to_string(expected) + " elements" + (what ? std::string(" (") + what + ")" : "") + ", has " + std::to_string(t.size));
  }
}

void Args::expectSameDtype(const TensorArg& t, const TensorArg& like) const {
  if (t.dtype != like.dtype) fail(std::string(t.name) + " must have the dtype of " + like.name + " (" + dtypeName(like.dtype) + "), got " + dtypeName(t.dtype));
}

void Args::expectDisjoint(const TensorArg& out, const TensorArg& in) const {
  if (out.size == 0 || in.size == 0) return;
  if (out.byteBegin() < in.byteEnd() && in.byteBegin() < out.byteEnd()) fail(std::string(out.name) + " must not overlap " + in.name);
}

int64_t checkedMul(const Args& args, int64_t a, int64_t b) {
  if (a != 0 && b > kMaxCount / a) args.fail("dimensions are too large (" + std::to_string(a) + " × " + std::to_string(b) + ")");
  return a * b;
}

}  // namespace adabatch
