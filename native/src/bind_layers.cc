// Layer entry points. Each validates every tensor against the kernel's dimension arguments (and
// token ids against the vocabulary) before the kernel runs.
#include <algorithm>
#include <climits>

#include "attention.h"
#include "attention_decode.h"
#include "context.h"
#include "embedding.h"
#include "gemm.h"
#include "head_loss.h"
#include "norm.h"
#include "rope.h"
#include "swiglu.h"

namespace adabatch {

namespace {
constexpr int64_t kMaxDim = INT_MAX;  // BLAS dimensions are int

// Every token id must index the vocabulary; negative ids are allowed only for ignored targets.
void checkTokens(Args& a, const TensorArg& tokens, int64_t vocab, bool allowNegative) {
  const int32_t* t = tokens.data<int32_t>();
  for (size_t i = 0; i < tokens.size; i++) {
    if ((t[i] < 0 && !allowNegative) || t[i] >= vocab) {
      a.fail(std::string(tokens.name) + ": token " + std::to_string(t[i]) + " at position " + std::to_string(i) + " is outside the vocabulary [0, " + std::to_string(vocab) + ")");
    }
  }
}

AttentionShape attentionShape(Args& a) {
  AttentionShape s;
  s.batch = static_cast<size_t>(a.integer("dims.batch", 1));
  s.seqLen = static_cast<size_t>(a.integer("dims.seqLen", 1, kMaxDim));
  s.nHeads = static_cast<size_t>(a.integer("dims.nHeads", 1, 65536));
  s.nKvHeads = static_cast<size_t>(a.integer("dims.nKvHeads", 1, 65536));
  s.headDim = static_cast<size_t>(a.integer("dims.headDim", 1, 65536));
  if (s.nHeads % s.nKvHeads != 0) a.fail("dims.nHeads must be divisible by dims.nKvHeads");
  return s;
}
}  // namespace

Napi::Value Context::EmbeddingForward(const Napi::CallbackInfo& info) {
  return guarded(info, "embeddingForward", [&](Args& a) -> Napi::Value {
    TensorArg out = a.tensor("out", kF32);
    TensorArg table = a.tensor("table", kF32);
    TensorArg tokens = a.tensor("tokens", kI32);
    const int64_t vocab = a.integer("vocab", 0, kMaxDim), dim = a.integer("dim", 0, kMaxDim);
    a.expectSize(table, checkedMul(a, vocab, dim), "vocab × dim");
    a.expectSize(out, checkedMul(a, static_cast<int64_t>(tokens.size), dim), "tokens × dim");
    a.expectDisjoint(out, table);
    checkTokens(a, tokens, vocab, false);
    embeddingForward(pool(), out.data<float>(), table.data<float>(), tokens.data<int32_t>(), tokens.size, static_cast<size_t>(dim));
    return info.Env().Undefined();
  });
}

Napi::Value Context::EmbeddingBackward(const Napi::CallbackInfo& info) {
  return guarded(info, "embeddingBackward", [&](Args& a) -> Napi::Value {
    TensorArg dTable = a.tensor("dTable", kF32);
    TensorArg dOut = a.tensor("dOut", kF32);
    TensorArg tokens = a.tensor("tokens", kI32);
    const int64_t vocab = a.integer("vocab", 0, kMaxDim), dim = a.integer("dim", 0, kMaxDim);
    a.expectSize(dTable, checkedMul(a, vocab, dim), "vocab × dim");
    a.expectSize(dOut, checkedMul(a, static_cast<int64_t>(tokens.size), dim), "tokens × dim");
    a.expectDisjoint(dTable, dOut);
    checkTokens(a, tokens, vocab, false);
    embeddingBackward(pool(), dTable.data<float>(), dOut.data<float>(), tokens.data<int32_t>(), tokens.size, static_cast<size_t>(dim));
    return info.Env().Undefined();
  });
}

Napi::Value Context::RmsnormForward(const Napi::CallbackInfo& info) {
  return guarded(info, "rmsnormForward", [&](Args& a) -> Napi::Value {
    TensorArg out = a.tensor("out", kF32);
    TensorArg rstd = a.tensor("rstd", kF32);
    TensorArg x = a.tensor("x", kF32);
    TensorArg w = a.tensor("w", kF32);
    const int64_t rows = a.integer("rows", 0), dim = a.integer("dim", 0);
    const double eps = a.number("eps");
    if (eps < 0) a.fail("eps must be ≥ 0");
    a.expectSize(x, checkedMul(a, rows, dim), "rows × dim");
    a.expectSize(out, static_cast<int64_t>(x.size), "the size of x");
    a.expectSize(w, dim, "dim");
    a.expectSize(rstd, rows, "rows");
    a.expectDisjoint(rstd, x);
    a.expectDisjoint(out, w);
    a.expectDisjoint(rstd, w);
    a.expectDisjoint(out, rstd);
    rmsnormForward(pool(), out.data<float>(), rstd.data<float>(), x.data<float>(), w.data<float>(), static_cast<size_t>(rows), static_cast<size_t>(dim), eps);
    return info.Env().Undefined();
  });
}

Napi::Value Context::RmsnormBackward(const Napi::CallbackInfo& info) {
  return guarded(info, "rmsnormBackward", [&](Args& a) -> Napi::Value {
    TensorArg dx = a.tensor("dx", kF32);
    TensorArg dw = a.tensor("dw", kF32);
    TensorArg dOut = a.tensor("dOut", kF32);
    TensorArg x = a.tensor("x", kF32);
    TensorArg w = a.tensor("w", kF32);
    TensorArg rstd = a.tensor("rstd", kF32);
    const int64_t rows = a.integer("rows", 0), dim = a.integer("dim", 0);
    const bool accumulate = a.boolean("accumulate");
    a.expectSize(x, checkedMul(a, rows, dim), "rows × dim");
    a.expectSize(dx, static_cast<int64_t>(x.size), "the size of x");
    a.expectSize(dOut, static_cast<int64_t>(x.size), "the size of x");
    a.expectSize(w, dim, "dim");
    a.expectSize(dw, dim, "dim");
    a.expectSize(rstd, rows, "rows");
    for (const TensorArg* in : {&dOut, &x, &w, &rstd, &dx}) {
      if (in != &dx) a.expectDisjoint(dw, *in);
    }
    a.expectDisjoint(dx, w);
    a.expectDisjoint(dx, rstd);
    float* partials = scratch<float>(kSlotPartials, std::max<size_t>(1, rmsnormPartials(static_cast<size_t>(rows), static_cast<size_t>(dim))));
    rmsnormBackward(pool(), dx.data<float>(), dw.data<float>(), dOut.data<float>(), x.data<float>(), w.data<float>(), rstd.data<float>(), static_cast<size_t>(rows), static_cast<size_t>(dim), accumulate, partials);
    return info.Env().Undefined();
  });
}

Napi::Value Context::Matmul(const Napi::CallbackInfo& info) {
  return guarded(info, "matmul", [&](Args& a) -> Napi::Value {
    TensorArg c = a.tensor("c", kF32);
    TensorArg ma = a.tensor("a", kF32 | kBF16);
    TensorArg mb = a.tensor("b", kF32 | kBF16);
    a.expectSameDtype(ma, mb);
    if (ma.dtype == DType::BF16 && !gemmInfo().bf16) a.fail("bf16 matmul needs a CPU with bf16 instructions (AVX512_BF16 or AMX); oneDNN dispatches to " + gemmInfo().isa);
    const bool transA = a.boolean("transA"), transB = a.boolean("transB");
    const int64_t m = a.integer("m", 0, kMaxDim), n = a.integer("n", 0, kMaxDim), k = a.integer("k", 0, kMaxDim);
    const double alpha = a.number("alpha"), beta = a.number("beta");
    a.expectSize(ma, checkedMul(a, m, k), "m × k");
    a.expectSize(mb, checkedMul(a, k, n), "k × n");
    a.expectSize(c, checkedMul(a, m, n), "m × n");
    a.expectDisjoint(c, ma);
    a.expectDisjoint(c, mb);
    const int lda = static_cast<int>(transA ? m : k), ldb = static_cast<int>(transB ? k : n);
    gemm(pool(), ma.dtype == DType::BF16 ? GemmType::BF16 : GemmType::F32, transA, transB, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), static_cast<float>(alpha), ma.data<char>(), lda,
         mb.data<char>(), ldb, static_cast<float>(beta), c.data<float>(), static_cast<int>(n));
    return info.Env().Undefined();
  });
}

Napi::Value Context::Rope(const Napi::CallbackInfo& info) {
  return guarded(info, "rope", [&](Args& a) -> Napi::Value {
    TensorArg x = a.tensor("x", kF32);
    TensorArg cos = a.tensor("cos", kF32);
    TensorArg sin = a.tensor("sin", kF32);
    const int64_t rows = a.integer("rows", 0), width = a.integer("width", 0);
    const int64_t seqLen = a.integer("seqLen", 1), nHeads = a.integer("nHeads", 0), headDim = a.integer("headDim", 2);
    const bool inverse = a.boolean("inverse");
    if (headDim % 2 != 0) a.fail("headDim must be even");
    a.expectSize(x, checkedMul(a, rows, width), "rows × width");
    if (checkedMul(a, nHeads, headDim) > width) a.fail("nHeads × headDim exceed the row width of x");
    if (rows % seqLen != 0) a.fail("rows of x must be a multiple of seqLen");
    a.expectSize(cos, checkedMul(a, seqLen, headDim / 2), "seqLen × headDim/2");
    a.expectSize(sin, checkedMul(a, seqLen, headDim / 2), "seqLen × headDim/2");
    a.expectDisjoint(x, cos);
    a.expectDisjoint(x, sin);
    ropeKernel(pool(), x.data<float>(), cos.data<float>(), sin.data<float>(), static_cast<size_t>(rows), static_cast<size_t>(width), static_cast<size_t>(seqLen), static_cast<size_t>(nHeads),
               static_cast<size_t>(headDim), inverse);
    return info.Env().Undefined();
  });
}

Napi::Value Context::AttentionForward(const Napi::CallbackInfo& info) {
  return guarded(info, "attentionForward", [&](Args& a) -> Napi::Value {
    TensorArg out = a.tensor("out", kF32);
    TensorArg lse = a.tensor("lse", kF32);
    TensorArg qkv = a.tensor("qkv", kF32);
    const AttentionShape s = attentionShape(a);
    const int64_t n = checkedMul(a, static_cast<int64_t>(s.batch), static_cast<int64_t>(s.seqLen));
    a.expectSize(qkv, checkedMul(a, n, static_cast<int64_t>(s.qkvWidth())), "batch·seqLen × (H + 2·Hkv)·headDim");
    a.expectSize(out, checkedMul(a, n, static_cast<int64_t>(s.nHeads * s.headDim)), "batch·seqLen × H·headDim");
    a.expectSize(lse, checkedMul(a, n, static_cast<int64_t>(s.nHeads)), "batch·H·seqLen");
    a.expectDisjoint(out, qkv);
    a.expectDisjoint(lse, qkv);
    a.expectDisjoint(out, lse);
    const std::vector<float*> ws = workerScratch(attentionScratchFloats(s));
    attentionForward(pool(), out.data<float>(), lse.data<float>(), qkv.data<float>(), s, ws);
    return info.Env().Undefined();
  });
}

Napi::Value Context::AttentionBackward(const Napi::CallbackInfo& info) {
  return guarded(info, "attentionBackward", [&](Args& a) -> Napi::Value {
    TensorArg dqkv = a.tensor("dqkv", kF32);
    TensorArg dOut = a.tensor("dOut", kF32);
    TensorArg qkv = a.tensor("qkv", kF32);
    TensorArg out = a.tensor("out", kF32);
    TensorArg lse = a.tensor("lse", kF32);
    const AttentionShape s = attentionShape(a);
    const int64_t n = checkedMul(a, static_cast<int64_t>(s.batch), static_cast<int64_t>(s.seqLen));
    a.expectSize(qkv, checkedMul(a, n, static_cast<int64_t>(s.qkvWidth())), "batch·seqLen × (H + 2·Hkv)·headDim");
    a.expectSize(dqkv, static_cast<int64_t>(qkv.size), "the size of qkv");
    a.expectSize(out, checkedMul(a, n, static_cast<int64_t>(s.nHeads * s.headDim)), "batch·seqLen × H·headDim");
    a.expectSize(dOut, static_cast<int64_t>(out.size), "the size of out");
    a.expectSize(lse, checkedMul(a, n, static_cast<int64_t>(s.nHeads)), "batch·H·seqLen");
    for (const TensorArg* in : {&dOut, &qkv, &out, &lse}) a.expectDisjoint(dqkv, *in);
    const std::vector<float*> ws = workerScratch(attentionScratchFloats(s));
    attentionBackward(pool(), dqkv.data<float>(), dOut.data<float>(), qkv.data<float>(), out.data<float>(), lse.data<float>(), s, ws);
    return info.Env().Undefined();
  });
}

Napi::Value Context::AttentionDecode(const Napi::CallbackInfo& info) {
  return guarded(info, "attentionDecode", [&](Args& a) -> Napi::Value {
    TensorArg out = a.tensor("out", kF32);
    TensorArg qkv = a.tensor("qkv", kF32);
    TensorArg kCache = a.tensor("kCache", kF32);
    TensorArg vCache = a.tensor("vCache", kF32);
    const int64_t pos = a.integer("pos", 0);
    DecodeShape s;
    s.batch = static_cast<size_t>(a.integer("dims.batch", 1));
    s.maxSeqLen = static_cast<size_t>(a.integer("dims.maxSeqLen", 1, kMaxDim));
    s.nHeads = static_cast<size_t>(a.integer("dims.nHeads", 1, 65536));
    s.nKvHeads = static_cast<size_t>(a.integer("dims.nKvHeads", 1, 65536));
    s.headDim = static_cast<size_t>(a.integer("dims.headDim", 1, 65536));
    if (s.nHeads % s.nKvHeads != 0) a.fail("dims.nHeads must be divisible by dims.nKvHeads");
    if (static_cast<size_t>(pos) >= s.maxSeqLen) a.fail("pos " + std::to_string(pos) + " is outside the cache (maxSeqLen " + std::to_string(s.maxSeqLen) + ")");
    const int64_t b = static_cast<int64_t>(s.batch);
    a.expectSize(qkv, checkedMul(a, b, static_cast<int64_t>((s.nHeads + 2 * s.nKvHeads) * s.headDim)), "batch × (H + 2·Hkv)·headDim");
    a.expectSize(out, checkedMul(a, b, static_cast<int64_t>(s.nHeads * s.headDim)), "batch × H·headDim");
    const int64_t cache = checkedMul(a, checkedMul(a, b, static_cast<int64_t>(s.maxSeqLen)), static_cast<int64_t>(s.nKvHeads * s.headDim));
    a.expectSize(kCache, cache, "batch × maxSeqLen × Hkv·headDim");
    a.expectSize(vCache, cache, "batch × maxSeqLen × Hkv·headDim");
    for (const TensorArg* o : {&out, &kCache, &vCache}) a.expectDisjoint(*o, qkv);
    a.expectDisjoint(out, kCache);
    a.expectDisjoint(out, vCache);
    a.expectDisjoint(kCache, vCache);
    const std::vector<float*> ws = workerScratch(s.maxSeqLen);
    attentionDecode(pool(), out.data<float>(), qkv.data<float>(), kCache.data<float>(), vCache.data<float>(), static_cast<size_t>(pos), s, ws);
    return info.Env().Undefined();
  });
}

Napi::Value Context::SwigluForward(const Napi::CallbackInfo& info) {
  return guarded(info, "swigluForward", [&](Args& a) -> Napi::Value {
    TensorArg h = a.tensor("h", kF32);
    TensorArg gu = a.tensor("gu", kF32);
    const int64_t rows = a.integer("rows", 0), ffn = a.integer("ffn", 0);
    a.expectSize(gu, checkedMul(a, rows, 2 * ffn), "rows × 2·ffn");
    a.expectSize(h, checkedMul(a, rows, ffn), "rows × ffn");
    a.expectDisjoint(h, gu);
    swigluForward(pool(), h.data<float>(), gu.data<float>(), static_cast<size_t>(rows), static_cast<size_t>(ffn));
    return info.Env().Undefined();
  });
}

Napi::Value Context::SwigluBackward(const Napi::CallbackInfo& info) {
  return guarded(info, "swigluBackward", [&](Args& a) -> Napi::Value {
    TensorArg dgu = a.tensor("dgu", kF32);
    TensorArg dh = a.tensor("dh", kF32);
    TensorArg gu = a.tensor("gu", kF32);
    const int64_t rows = a.integer("rows", 0), ffn = a.integer("ffn", 0);
    a.expectSize(gu, checkedMul(a, rows, 2 * ffn), "rows × 2·ffn");
    a.expectSize(dgu, static_cast<int64_t>(gu.size), "the size of gu");
    a.expectSize(dh, checkedMul(a, rows, ffn), "rows × ffn");
    a.expectDisjoint(dgu, dh);
    a.expectDisjoint(dgu, gu);
    swigluBackward(pool(), dgu.data<float>(), dh.data<float>(), gu.data<float>(), static_cast<size_t>(rows), static_cast<size_t>(ffn));
    return info.Env().Undefined();
  });
}

Napi::Value Context::HeadLoss(const Napi::CallbackInfo& info) {
  return guarded(info, "headLoss", [&](Args& a) -> Napi::Value {
    TensorArg x = a.tensor("x", kF32);
    TensorArg normW = a.tensor("normW", kF32);
    TensorArg headW = a.tensor("headW", kF32);
    TensorArg targets = a.tensor("targets", kI32);
    TensorArg lossOut = a.tensor("lossOut", kF64);
    const int64_t lossIndex = a.integer("lossIndex", 0);
    const double eps = a.number("eps");
    const int64_t rows = a.integer("rows", 0), dim = a.integer("dim", 0, kMaxDim), vocab = a.integer("vocab", 0, kMaxDim);
    int64_t chunk = a.integer("chunkTokens", 1, kMaxDim);
    const bool lowp = a.boolean("lowp");
    TensorArg headWLow;
    if (lowp) {
      headWLow = a.tensor("headWLowp", kBF16);
      if (!gemmInfo().bf16) a.fail("bf16 GEMMs need a CPU with bf16 instructions (AVX512_BF16 or AMX); oneDNN dispatches to " + gemmInfo().isa);
    }
    const bool withGrads = a.boolean("withGrads");
    if (static_cast<size_t>(lossIndex) + 2 > lossOut.size) a.fail("lossIndex " + std::to_string(lossIndex) + " needs two slots in lossOut of " + std::to_string(lossOut.size));
    a.expectSize(x, checkedMul(a, rows, dim), "rows × dim");
    a.expectSize(normW, dim, "dim");
    a.expectSize(headW, checkedMul(a, vocab, dim), "vocab × dim");
    a.expectSize(targets, rows, "rows");
    if (lowp) a.expectSize(headWLow, static_cast<int64_t>(headW.size), "the size of headW");
    HeadLossGrads g{};
    if (withGrads) {
      TensorArg dx = a.tensor("grads.dx", kF32);
      TensorArg dNormW = a.tensor("grads.dNormW", kF32);
      TensorArg dHeadW = a.tensor("grads.dHeadW", kF32);
      g.gradScale = static_cast<float>(a.number("grads.gradScale"));
      a.expectSize(dx, static_cast<int64_t>(x.size), "the size of x");
      a.expectSize(dNormW, dim, "dim");
      a.expectSize(dHeadW, static_cast<int64_t>(headW.size), "the size of headW");
      for (const TensorArg* out : {&dx, &dNormW, &dHeadW}) {
        for (const TensorArg* in : {&x, &normW, &headW, &targets, &lossOut}) {
          if (!(out == &dx && in == &x)) a.expectDisjoint(*out, *in);
        }
        if (lowp) a.expectDisjoint(*out, headWLow);
      }
      a.expectDisjoint(dx, dNormW);
      a.expectDisjoint(dx, dHeadW);
      a.expectDisjoint(dNormW, dHeadW);
      g.dx = dx.data<float>();
      g.dNormW = dNormW.data<float>();
      g.dHeadW = dHeadW.data<float>();
    }
    checkTokens(a, targets, vocab, true);
    double* slots = lossOut.data<double>() + lossIndex;
    if (rows == 0) return info.Env().Undefined();
    chunk = std::min(chunk, rows);
    HeadLossShape s{static_cast<size_t>(rows), static_cast<size_t>(dim), static_cast<size_t>(vocab), static_cast<size_t>(chunk)};
    checkedMul(a, chunk, vocab);
    float* area = scratch<float>(kSlotHead, headLossScratchFloats(s, lowp));
    HeadLossScratch sc;
    sc.logits = area;
    sc.xn = sc.logits + s.chunk * s.vocab;
    sc.dxn = sc.xn + s.chunk * s.dim;
    sc.rstd = sc.dxn + s.chunk * s.dim;
    sc.partials = sc.rstd + s.chunk;
    if (lowp) {
      sc.xnLow = reinterpret_cast<uint16_t*>(sc.partials + rmsnormPartials(s.chunk, s.dim));
      sc.logitsLow = sc.xnLow + s.chunk * s.dim;
    }
    sc.rowLoss = scratch<double>(kSlotRowLoss, s.chunk);
    double sum = 0, count = 0;
    headLoss(pool(), x.data<float>(), normW.data<float>(), headW.data<float>(), lowp ? headWLow.data<uint16_t>() : nullptr, targets.data<int32_t>(), s, eps, withGrads ? &g : nullptr, sc, &sum, &count);
    slots[0] += sum;
    slots[1] += count;
    return info.Env().Undefined();
  });
}

}  // namespace adabatch
