// Entry points of the optimizer kernels other than AdamW (optimizers.h): every tensor is validated
// (owner, dtype, window, equal sizes, no overlap between any two) before a pointer is taken.
#include <initializer_list>
#include <string>

#include "context.h"
#include "optimizers.h"

namespace adabatch {

namespace {
// All tensors as large as the first, and pairwise disjoint (each is read and written in one pass).
void expectSameSizeDisjoint(Args& a, std::initializer_list<const TensorArg*> ts) {
  const TensorArg* first = *ts.begin();
  for (const TensorArg* t : ts)
    if (t != first) a.expectSize(*t, static_cast<int64_t>(first->size), (std::string("the size of ") + first->name).c_str());
  for (auto i = ts.begin(); i != ts.end(); ++i)
    for (auto j = i + 1; j != ts.end(); ++j) a.expectDisjoint(**i, **j);
}

double beta(Args& a, const char* name) {
  const double b = a.number(name);
  if (b < 0 || b >= 1) a.fail(std::string(name) + " must be in [0, 1)");
  return b;
}
}  // namespace

Napi::Value Context::Adagrad(const Napi::CallbackInfo& info) {
  return guarded(info, "adagrad", [&](Args& a) -> Napi::Value {
    TensorArg param = a.tensor("param", kF32);
    TensorArg grad = a.tensor("grad", kF32);
    TensorArg sum = a.tensor("sum", kF32);
    expectSameSizeDisjoint(a, {&param, &grad, &sum});
    AdagradHyper h;
    h.lr = a.number("lr");
    h.eps = a.number("eps");
    h.weightDecay = a.number("weightDecay");
    if (!(h.eps > 0)) a.fail("eps must be positive");
    adagradKernel(pool(), param.data<float>(), grad.data<float>(), sum.data<float>(), param.size, h);
    return info.Env().Undefined();
  });
}

Napi::Value Context::LambDirection(const Napi::CallbackInfo& info) {
  return guarded(info, "lambDirection", [&](Args& a) -> Napi::Value {
    TensorArg param = a.tensor("param", kF32);
    TensorArg grad = a.tensor("grad", kF32);
    TensorArg m = a.tensor("m", kF32);
    TensorArg v = a.tensor("v", kF32);
    expectSameSizeDisjoint(a, {&param, &grad, &m, &v});
    LambHyper h;
    h.beta1 = beta(a, "beta1");
    h.beta2 = beta(a, "beta2");
    h.eps = a.number("eps");
    h.weightDecay = a.number("weightDecay");
    h.step = a.integer("step", 1);
    lambDirectionKernel(pool(), param.data<float>(), grad.data<float>(), m.data<float>(), v.data<float>(), param.size, h);
    return info.Env().Undefined();
  });
}

Napi::Value Context::MuonMomentum(const Napi::CallbackInfo& info) {
  return guarded(info, "muonMomentum", [&](Args& a) -> Napi::Value {
    TensorArg grad = a.tensor("grad", kF32);
    TensorArg buf = a.tensor("buf", kF32);
    expectSameSizeDisjoint(a, {&grad, &buf});
    MuonHyper h;
    h.beta = beta(a, "beta");
    h.nesterov = a.boolean("nesterov");
    muonMomentumKernel(pool(), grad.data<float>(), buf.data<float>(), grad.size, h);
    return info.Env().Undefined();
  });
}

}  // namespace adabatch
