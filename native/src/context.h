// One backend instance as seen from JavaScript (class `Context` of the addon): its thread pool,
// its live/peak byte counters, its scratch memory, and every kernel entry point. Buffers live in
// the process-global registry tagged with the instance's owner id; an instance only accepts its
// own buffers, and frees all of them when it is disposed or garbage-collected.
#pragma once
#include <napi.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "args.h"
#include "thread_pool.h"

namespace adabatch {

// Grow-only aligned scratch memory, reused across calls (never visible to JavaScript).
class Scratch {
 public:
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() { release(); }
  void* get(size_t bytes);
  void release();
  size_t reserved() const { return reserved_; }

 private:
  void* ptr_ = nullptr;
  size_t capacity_ = 0;
  size_t reserved_ = 0;
  bool viaMmap_ = false;
};

class Context : public Napi::ObjectWrap<Context> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit Context(const Napi::CallbackInfo& info);
  ~Context() override;

  ThreadPool& pool() { return *pool_; }
  // Scratch slot `slot` with at least `bytes` bytes; call from the JavaScript thread only.
  template <class T>
  T* scratch(size_t slot, size_t count) {
    if (slot >= scratch_.size()) scratch_.resize(slot + 1);
    if (!scratch_[slot]) scratch_[slot] = std::make_unique<Scratch>();
    return static_cast<T*>(scratch_[slot]->get(count * sizeof(T)));
  }
  // One scratch area of `count` floats per pool worker.
  std::vector<float*> workerScratch(size_t count) {
    std::vector<float*> out(pool_->threads());
    for (size_t w = 0; w < out.size(); w++) out[w] = scratch<float>(kWorkerSlots + w, count);
    return out;
  }

  // Scratch slots.
  static constexpr size_t kSlotHead = 0;
  static constexpr size_t kSlotRowLoss = 1;
  static constexpr size_t kSlotPartials = 2;
  static constexpr size_t kWorkerSlots = 8;

 private:
  // Runs `body` with validated-argument helpers; C++ errors become JavaScript errors.
  Napi::Value guarded(const Napi::CallbackInfo& info, const char* kernel, const std::function<Napi::Value(Args&)>& body);
  void releaseAll();

  // ---- instance management (context.cc)
  Napi::Value SetThreads(const Napi::CallbackInfo& info);
  Napi::Value GetThreads(const Napi::CallbackInfo& info);
  Napi::Value SetSpin(const Napi::CallbackInfo& info);
  Napi::Value LiveBytes(const Napi::CallbackInfo& info);
  Napi::Value PeakBytes(const Napi::CallbackInfo& info);
  Napi::Value ResetPeak(const Napi::CallbackInfo& info);
  Napi::Value ScratchBytes(const Napi::CallbackInfo& info);
  Napi::Value ReleaseScratch(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value OwnerId(const Napi::CallbackInfo& info);

  // ---- memory (bind_memory.cc)
  Napi::Value Alloc(const Napi::CallbackInfo& info);
  Napi::Value Free(const Napi::CallbackInfo& info);
  Napi::Value Upload(const Napi::CallbackInfo& info);
  Napi::Value Download(const Napi::CallbackInfo& info);
  Napi::Value Copy(const Napi::CallbackInfo& info);
  Napi::Value Fill(const Napi::CallbackInfo& info);

  // ---- elementwise and reductions (bind_math.cc)
  Napi::Value Convert(const Napi::CallbackInfo& info);
  Napi::Value Scale(const Napi::CallbackInfo& info);
  Napi::Value Axpy(const Napi::CallbackInfo& info);
  Napi::Value Add(const Napi::CallbackInfo& info);
  Napi::Value SumSquares(const Napi::CallbackInfo& info);
  Napi::Value Dot(const Napi::CallbackInfo& info);
  Napi::Value AccumulateWithNorm(const Napi::CallbackInfo& info);
  Napi::Value ClipByGlobalNorm(const Napi::CallbackInfo& info);
  Napi::Value Adamw(const Napi::CallbackInfo& info);

  // ---- optimizers other than AdamW (bind_optim.cc)
  Napi::Value Adagrad(const Napi::CallbackInfo& info);
  Napi::Value LambDirection(const Napi::CallbackInfo& info);
  Napi::Value MuonMomentum(const Napi::CallbackInfo& info);

  // ---- layers (bind_layers.cc)
  Napi::Value EmbeddingForward(const Napi::CallbackInfo& info);
  Napi::Value EmbeddingBackward(const Napi::CallbackInfo& info);
  Napi::Value RmsnormForward(const Napi::CallbackInfo& info);
  Napi::Value RmsnormBackward(const Napi::CallbackInfo& info);
  Napi::Value Matmul(const Napi::CallbackInfo& info);
  Napi::Value Rope(const Napi::CallbackInfo& info);
  Napi::Value AttentionForward(const Napi::CallbackInfo& info);
  Napi::Value AttentionBackward(const Napi::CallbackInfo& info);
  Napi::Value AttentionDecode(const Napi::CallbackInfo& info);
  Napi::Value SwigluForward(const Napi::CallbackInfo& info);
  Napi::Value SwigluBackward(const Napi::CallbackInfo& info);
  Napi::Value HeadLoss(const Napi::CallbackInfo& info);

  uint64_t owner_;
  bool disposed_ = false;
  std::unique_ptr<ThreadPool> pool_;
  int spinMicros_ = 300;
  size_t live_ = 0;
  size_t peak_ = 0;
  std::vector<std::unique_ptr<Scratch>> scratch_;
};

}  // namespace adabatch
