#include "gemm.h"

#include <dnnl.hpp>

#include <algorithm>
#include <cstring>
#include <list>
#include <mutex>
#include <stdexcept>
#include <unordered_map>

// libgomp's: the team size of OpenMP regions this thread starts (oneDNN's threads).
extern "C" void omp_set_num_threads(int);

namespace adabatch {

namespace {
// Below this many multiply-adds a GEMM stays on one thread (fork-join would cost more than it saves).
constexpr double kSplitMacs = 4.0e6;
constexpr int kSplitAlign = 32;
// Cached primitives per thread; the least recently used goes beyond this (a model has a few dozen shapes).
constexpr size_t kCacheEntries = 512;

struct Key {
  int type, transA, transB, m, n, k, lda, ldb, ldc;
  float alpha, beta;
  bool operator==(const Key& o) const { return std::memcmp(this, &o, sizeof(Key)) == 0; }
};
struct KeyHash {
  size_t operator()(const Key& key) const {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(&key);
    size_t h = 1469598103934665603ull;
    for (size_t i = 0; i < sizeof(Key); i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
  }
};

// A primitive with its memory objects and argument map, made once: a call only swaps the data
// pointers (small attention GEMMs run thousands of times per step, so per-call setup matters).
struct Prepared {
  dnnl::matmul prim;
  dnnl::memory a, b, c;
  std::unordered_map<int, dnnl::memory> args;
};

// One per thread: the engine, a stream, and the primitives it created, least recently used last.
class ThreadGemm {
 public:
  ThreadGemm() : engine_(dnnl::engine::kind::cpu, 0), stream_(engine_) {
    omp_set_num_threads(1);
  }
  void run(const Key& key, const void* a, const void* b, float* c) {
    Prepared& p = prepared(key);
    p.a.set_data_handle(const_cast<void*>(a));
    p.b.set_data_handle(const_cast<void*>(b));
    p.c.set_data_handle(c);
    p.prim.execute(stream_, p.args);
  }
  dnnl::engine& engine() { return engine_; }

 private:
  Prepared& prepared(const Key& key) {
    auto it = index_.find(key);
    if (it != index_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second);
      return it->second->second;
    }
    lru_.emplace_front(key, create(key));
    index_[key] = lru_.begin();
    if (lru_.size() > kCacheEntries) {
      index_.erase(lru_.back().first);
      lru_.pop_back();
    }
    return lru_.front().second;
  }
  Prepared create(const Key& key) {
    using dt = dnnl::memory::data_type;
    const dt in = key.type == static_cast<int>(GemmType::BF16) ? dt::bf16 : dt::f32;
    const dnnl::memory::dim m = key.m, n = key.n, k = key.k;
    // Row-major with leading dimensions; a transposed operand is the same memory read with swapped strides.
    const dnnl::memory::desc ad({m, k}, in, key.transA ? dnnl::memory::dims{1, key.lda} : dnnl::memory::dims{key.lda, 1});
    const dnnl::memory::desc bd({k, n}, in, key.transB ? dnnl::memory::dims{1, key.ldb} : dnnl::memory::dims{key.ldb, 1});
    const dnnl::memory::desc cd({m, n}, dt::f32, dnnl::memory::dims{key.ldc, 1});
    dnnl::primitive_attr attr;
    if (key.alpha != 1.0f) attr.set_output_scales(0, {key.alpha});
    if (key.beta != 0.0f) {
      dnnl::post_ops ops;
      ops.append_sum(key.beta);
      attr.set_post_ops(ops);
    }
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(ad, bd, cd), attr, engine_);
    Prepared p;
    p.prim = dnnl::matmul(pd);
    // Memory objects without a buffer of their own: every call sets the data pointers.
    p.a = dnnl::memory(ad, engine_, DNNL_MEMORY_NONE);
    p.b = dnnl::memory(bd, engine_, DNNL_MEMORY_NONE);
    p.c = dnnl::memory(cd, engine_, DNNL_MEMORY_NONE);
    p.args = {{DNNL_ARG_SRC, p.a}, {DNNL_ARG_WEIGHTS, p.b}, {DNNL_ARG_DST, p.c}};
    return p;
  }

  dnnl::engine engine_;
  dnnl::stream stream_;
  std::list<std::pair<Key, Prepared>> lru_;
  std::unordered_map<Key, std::list<std::pair<Key, Prepared>>::iterator, KeyHash> index_;
};

ThreadGemm& threadGemm() {
  thread_local ThreadGemm g;
  return g;
}

// C = beta·C (k = 0 or alpha = 0: no product to add).
void scaleOnly(int m, int n, float beta, float* c, int ldc) {
  for (int i = 0; i < m; i++) {
    float* row = c + static_cast<size_t>(i) * ldc;
    if (beta == 0.0f) std::memset(row, 0, sizeof(float) * n);
    else if (beta != 1.0f)
      for (int j = 0; j < n; j++) row[j] *= beta;
  }
}

std::string isaName(dnnl::cpu_isa isa) {
  switch (isa) {
    case dnnl::cpu_isa::sse41: return "sse41";
    case dnnl::cpu_isa::avx: return "avx";
    case dnnl::cpu_isa::avx2: return "avx2";
    case dnnl::cpu_isa::avx2_vnni: return "avx2_vnni";
    case dnnl::cpu_isa::avx512_mic: return "avx512_mic";
    case dnnl::cpu_isa::avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl::cpu_isa::avx512_core: return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx: return "avx512_core_amx";
    default: return "other";
  }
}

std::string implOf(GemmType type, dnnl::engine& engine) {
  using dt = dnnl::memory::data_type;
  const dt in = type == GemmType::BF16 ? dt::bf16 : dt::f32;
  dnnl::memory::desc a({256, 256}, in, dnnl::memory::dims{256, 1}), b({256, 256}, in, dnnl::memory::dims{1, 256}), c({256, 256}, dt::f32, dnnl::memory::dims{256, 1});
  try {
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, b, c), engine);
    return pd.impl_info_str();
  } catch (const dnnl::error&) {
    return "";
  }
}
}  // namespace

void gemmSerial(GemmType type, bool transA, bool transB, int m, int n, int k, float alpha, const void* a, int lda, const void* b, int ldb, float beta, float* c, int ldc) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0 || alpha == 0.0f) {
    scaleOnly(m, n, beta, c, ldc);
    return;
  }
  const Key key{static_cast<int>(type), transA, transB, m, n, k, std::max(lda, 1), std::max(ldb, 1), std::max(ldc, 1), alpha, beta};
  try {
    threadGemm().run(key, a, b, c);
  } catch (const dnnl::error& e) {
    throw std::runtime_error(std::string("oneDNN matmul failed (") + e.what() + ")");
  }
}

void gemm(ThreadPool& pool, GemmType type, bool transA, bool transB, int m, int n, int k, float alpha, const void* a, int lda, const void* b, int ldb, float beta, float* c, int ldc) {
  const int threads = pool.threads();
  const double macs = static_cast<double>(m) * n * k;
  if (threads <= 1 || macs < kSplitMacs || k <= 0) {
    gemmSerial(type, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  const size_t elem = type == GemmType::BF16 ? 2 : 4;
  const char* ab = static_cast<const char*>(a);
  const char* bb = static_cast<const char*>(b);
  const bool splitM = m >= n;
  const int extent = splitM ? m : n;
  // Two blocks per thread, handed out dynamically: if one thread is slowed down (another process
  // on its core), the others take over its remaining block instead of waiting for it.
  const int wanted = macs >= kSplitMacs * 4 ? 2 * threads : threads;
  int block = (extent + wanted - 1) / wanted;
  block = (block + kSplitAlign - 1) / kSplitAlign * kSplitAlign;
  const int parts = (extent + block - 1) / block;
  if (parts <= 1) {
    gemmSerial(type, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  pool.run(parts, [&](int part, int) {
    const int lo = part * block;
    const int len = std::min(extent, lo + block) - lo;
    if (splitM) {
      const char* ap = ab + elem * (transA ? static_cast<size_t>(lo) : static_cast<size_t>(lo) * lda);
      gemmSerial(type, transA, transB, len, n, k, alpha, ap, lda, b, ldb, beta, c + static_cast<size_t>(lo) * ldc, ldc);
    } else {
      const char* bp = bb + elem * (transB ? static_cast<size_t>(lo) * ldb : static_cast<size_t>(lo));
      gemmSerial(type, transA, transB, m, len, k, alpha, a, lda, bp, ldb, beta, c + lo, ldc);
    }
  });
}

const GemmInfo& gemmInfo() {
  static const GemmInfo info = [] {
    GemmInfo g;
    const dnnl_version_t* v = dnnl_version();
    g.library = "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch);
    const dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
    g.isa = isaName(isa);
    // Native bf16 dot products: AVX512_BF16 (Cooper Lake, Zen 4 and newer) or AMX (Sapphire Rapids).
    g.bf16 = isa == dnnl::cpu_isa::avx512_core_bf16 || isa == dnnl::cpu_isa::avx512_core_amx;
    dnnl::engine& engine = threadGemm().engine();
    g.f32Impl = implOf(GemmType::F32, engine);
    if (g.bf16) g.bf16Impl = implOf(GemmType::BF16, engine);
    return g;
  }();
  return info;
}

}  // namespace adabatch
