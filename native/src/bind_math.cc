// Elementwise, reduction and optimizer entry points.
#include <algorithm>
#include <cmath>

#include "adamw.h"
#include "context.h"
#include "elementwise.h"

namespace adabatch {

namespace {
// The float64 statistics slot out[index].
double* statSlot(Args& a, const char* outName, const char* indexName) {
  TensorArg out = a.tensor(outName, kF64);
  const int64_t index = a.integer(indexName, 0);
  if (static_cast<size_t>(index) >= out.size) a.fail(std::string(indexName) + " " + std::to_string(index) + " is outside " + outName + " (" + std::to_string(out.size) + " elements)");
  return out.data<double>() + index;
}
}  // namespace

// dst = src rounded to bf16 (f32 → bf16, nearest even) or widened (bf16 → f32).
Napi::Value Context::Convert(const Napi::CallbackInfo& info) {
  return guarded(info, "convert", [&](Args& a) -> Napi::Value {
    TensorArg dst = a.tensor("dst", kF32 | kBF16);
    TensorArg src = a.tensor("src", kF32 | kBF16);
    a.expectSize(src, static_cast<int64_t>(dst.size), "the size of dst");
    if (dst.dtype == src.dtype) a.fail(std::string("dst and src must differ in dtype (f32 ↔ bf16), both are ") + dtypeName(dst.dtype));
    a.expectDisjoint(dst, src);
    if (dst.dtype == DType::BF16) toBf16Kernel(pool(), dst.data<uint16_t>(), src.data<float>(), dst.size);
    else fromBf16Kernel(pool(), dst.data<float>(), src.data<uint16_t>(), dst.size);
    return info.Env().Undefined();
  });
}

Napi::Value Context::Scale(const Napi::CallbackInfo& info) {
  return guarded(info, "scale", [&](Args& a) -> Napi::Value {
    TensorArg x = a.tensor("x", kFloat);
    const double alpha = a.number("alpha");
    if (x.dtype == DType::F32) scaleKernel(pool(), x.data<float>(), x.size, alpha);
    else scaleKernel(pool(), x.data<double>(), x.size, alpha);
    return info.Env().Undefined();
  });
}

Napi::Value Context::Axpy(const Napi::CallbackInfo& info) {
  return guarded(info, "axpy", [&](Args& a) -> Napi::Value {
    TensorArg y = a.tensor("y", kFloat);
    const double alpha = a.number("alpha");
    TensorArg x = a.tensor("x", kFloat);
    a.expectSameDtype(x, y);
    a.expectSize(x, static_cast<int64_t>(y.size), "the size of y");
    if (y.dtype == DType::F32) axpyKernel(pool(), y.data<float>(), alpha, x.data<float>(), y.size);
    else axpyKernel(pool(), y.data<double>(), alpha, x.data<double>(), y.size);
    return info.Env().Undefined();
  });
}

Napi::Value Context::Add(const Napi::CallbackInfo& info) {
  return guarded(info, "add", [&](Args& a) -> Napi::Value {
    TensorArg out = a.tensor("out", kFloat);
    TensorArg x = a.tensor("a", kFloat);
    TensorArg y = a.tensor("b", kFloat);
    a.expectSameDtype(x, out);
    a.expectSameDtype(y, out);
    a.expectSize(x, static_cast<int64_t>(out.size), "the size of out");
    a.expectSize(y, static_cast<int64_t>(out.size), "the size of out");
    if (out.dtype == DType::F32) addKernel(pool(), out.data<float>(), x.data<float>(), y.data<float>(), out.size);
    else addKernel(pool(), out.data<double>(), x.data<double>(), y.data<double>(), out.size);
    return info.Env().Undefined();
  });
}

Napi::Value Context::SumSquares(const Napi::CallbackInfo& info) {
  return guarded(info, "sumSquares", [&](Args& a) -> Napi::Value {
    TensorArg x = a.tensor("x", kFloat);
    double* slot = statSlot(a, "out", "index");
    *slot += x.dtype == DType::F32 ? sumSquaresKernel(pool(), x.data<float>(), x.size) : sumSquaresKernel(pool(), x.data<double>(), x.size);
    return info.Env().Undefined();
  });
}

Napi::Value Context::Dot(const Napi::CallbackInfo& info) {
  return guarded(info, "dot", [&](Args& a) -> Napi::Value {
    TensorArg x = a.tensor("a", kFloat);
    TensorArg y = a.tensor("b", kFloat);
    double* slot = statSlot(a, "out", "index");
    a.expectSameDtype(y, x);
    a.expectSize(y, static_cast<int64_t>(x.size), "the size of a");
    *slot += x.dtype == DType::F32 ? dotKernel(pool(), x.data<float>(), y.data<float>(), x.size) : dotKernel(pool(), x.data<double>(), y.data<double>(), x.size);
    return info.Env().Undefined();
  });
}

Napi::Value Context::AccumulateWithNorm(const Napi::CallbackInfo& info) {
  return guarded(info, "accumulateWithNorm", [&](Args& a) -> Napi::Value {
    TensorArg acc = a.tensor("acc", kFloat);
    const double alpha = a.number("alpha");
    TensorArg g = a.tensor("g", kFloat);
    double* slot = statSlot(a, "out", "index");
    a.expectSameDtype(g, acc);
    a.expectSize(g, static_cast<int64_t>(acc.size), "the size of acc");
    *slot += acc.dtype == DType::F32 ? accumulateWithNormKernel(pool(), acc.data<float>(), alpha, g.data<float>(), acc.size)
                                     : accumulateWithNormKernel(pool(), acc.data<double>(), alpha, g.data<double>(), acc.size);
    return info.Env().Undefined();
  });
}

Napi::Value Context::ClipByGlobalNorm(const Napi::CallbackInfo& info) {
  return guarded(info, "clipByGlobalNorm", [&](Args& a) -> Napi::Value {
    TensorArg x = a.tensor("x", kFloat);
    const double* slot = statSlot(a, "sqNorm", "index");
    const double maxNorm = a.number("maxNorm");
    const double coef = std::min(1.0, maxNorm / (std::sqrt(*slot) + 1e-6));
    if (coef == 1.0) return info.Env().Undefined();
    if (x.dtype == DType::F32) scaleKernel(pool(), x.data<float>(), x.size, coef);
    else scaleKernel(pool(), x.data<double>(), x.size, coef);
    return info.Env().Undefined();
  });
}

Napi::Value Context::Adamw(const Napi::CallbackInfo& info) {
  return guarded(info, "adamw", [&](Args& a) -> Napi::Value {
    TensorArg param = a.tensor("param", kF32);
    TensorArg grad = a.tensor("grad", kF32);
    TensorArg m = a.tensor("m", kF32);
    TensorArg v = a.tensor("v", kF32);
    for (const TensorArg* t : {&grad, &m, &v}) a.expectSize(*t, static_cast<int64_t>(param.size), "the size of param");
    const TensorArg* all[] = {&param, &grad, &m, &v};
    for (int i = 0; i < 4; i++)
      for (int j = i + 1; j < 4; j++) a.expectDisjoint(*all[i], *all[j]);
    AdamWHyper h;
    h.lr = a.number("lr");
    h.beta1 = a.number("beta1");
    h.beta2 = a.number("beta2");
    h.eps = a.number("eps");
    h.weightDecay = a.number("weightDecay");
    h.step = a.integer("step", 1);
    if (h.beta1 < 0 || h.beta1 >= 1) a.fail("beta1 must be in [0, 1)");
    if (h.beta2 < 0 || h.beta2 >= 1) a.fail("beta2 must be in [0, 1)");
    adamwKernel(pool(), param.data<float>(), grad.data<float>(), m.data<float>(), v.data<float>(), param.size, h);
    return info.Env().Undefined();
  });
}

}  // namespace adabatch
