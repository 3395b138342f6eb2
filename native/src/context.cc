#include "context.h"


#include <new>
#include <string>

namespace adabatch {

void* Scratch::get(size_t bytes) {
  if (bytes <= capacity_ && ptr_) return ptr_;
  release();
  // Grow geometrically so a slowly increasing request does not reallocate every call.
  size_t want = bytes < 4096 ? 4096 : bytes + bytes / 4;
  ptr_ = alignedZeroAlloc(want, &reserved_, &viaMmap_);
  capacity_ = want;
  return ptr_;
}

void Scratch::release() {
  alignedFree(ptr_, reserved_, viaMmap_);
  ptr_ = nullptr;
  capacity_ = 0;
  reserved_ = 0;
}

Napi::Function Context::Define(Napi::Env env) {
  return DefineClass(env, "Context",
                     {
                         InstanceMethod("setThreads", &Context::SetThreads),
                         InstanceMethod("getThreads", &Context::GetThreads),
                         InstanceMethod("setSpin", &Context::SetSpin),
                         InstanceMethod("liveBytes", &Context::LiveBytes),
                         InstanceMethod("peakBytes", &Context::PeakBytes),
                         InstanceMethod("resetPeak", &Context::ResetPeak),
                         InstanceMethod("scratchBytes", &Context::ScratchBytes),
                         InstanceMethod("releaseScratch", &Context::ReleaseScratch),
                         InstanceMethod("dispose", &Context::Dispose),
                         InstanceMethod("ownerId", &Context::OwnerId),
                         InstanceMethod("alloc", &Context::Alloc),
                         InstanceMethod("free", &Context::Free),
                         InstanceMethod("upload", &Context::Upload),
                         InstanceMethod("download", &Context::Download),
                         InstanceMethod("copy", &Context::Copy),
                         InstanceMethod("fill", &Context::Fill),
                         InstanceMethod("convert", &Context::Convert),
                         InstanceMethod("scale", &Context::Scale),
                         InstanceMethod("axpy", &Context::Axpy),
                         InstanceMethod("add", &Context::Add),
                         InstanceMethod("sumSquares", &Context::SumSquares),
                         InstanceMethod("dot", &Context::Dot),
                         InstanceMethod("accumulateWithNorm", &Context::AccumulateWithNorm),
                         InstanceMethod("clipByGlobalNorm", &Context::ClipByGlobalNorm),
                         InstanceMethod("adamw", &Context::Adamw),
                         InstanceMethod("adagrad", &Context::Adagrad),
                         InstanceMethod("lambDirection", &Context::LambDirection),
                         InstanceMethod("muonMomentum", &Context::MuonMomentum),
                         InstanceMethod("embeddingForward", &Context::EmbeddingForward),
                         InstanceMethod("embeddingBackward", &Context::EmbeddingBackward),
                         InstanceMethod("rmsnormForward", &Context::RmsnormForward),
                         InstanceMethod("rmsnormBackward", &Context::RmsnormBackward),
                         InstanceMethod("matmul", &Context::Matmul),
                         InstanceMethod("rope", &Context::Rope),
                         InstanceMethod("attentionForward", &Context::AttentionForward),
                         InstanceMethod("attentionBackward", &Context::AttentionBackward),
                         InstanceMethod("attentionDecode", &Context::AttentionDecode),
                         InstanceMethod("swigluForward", &Context::SwigluForward),
                         InstanceMethod("swigluBackward", &Context::SwigluBackward),
                         InstanceMethod("headLoss", &Context::HeadLoss),
                     });
}

Context::Context(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Context>(info), owner_(registry::newOwnerId()) {
  int threads = 1;
  if (info.Length() > 0 && info[0].IsNumber()) {
    double t = info[0].As<Napi::Number>().DoubleValue();
    if (!(t >= 1 && t <= 256) || t != static_cast<int>(t)) {
      throw Napi::RangeError::New(info.Env(), "cpu backend: threads must be an integer in [1, 256]");
    }
    threads = static_cast<int>(t);
  }
  pool_ = std::make_unique<ThreadPool>(threads);
  pool_->setSpinMicros(spinMicros_);
}

Context::~Context() { releaseAll(); }

void Context::releaseAll() {
  pool_.reset();
  registry::removeOwnedBy(owner_);  // memory is released when the last user drops it
  live_ = 0;
  scratch_.clear();
}

Napi::Value Context::guarded(const Napi::CallbackInfo& info, const char* kernel, const std::function<Napi::Value(Args&)>& body) {
  try {
    if (disposed_) throw ArgError(std::string(kernel) + ": this cpu backend instance was disposed");
    Args args(info, kernel, owner_);
    return body(args);
  } catch (const ArgError& e) {
    throw Napi::Error::New(info.Env(), e.what());
  } catch (const std::bad_alloc&) {
    throw Napi::Error::New(info.Env(), std::string(kernel) + ": out of memory");
  }
}

Napi::Value Context::SetThreads(const Napi::CallbackInfo& info) {
  return guarded(info, "setThreads", [&](Args& a) -> Napi::Value {
    int n = static_cast<int>(a.integer("n", 1, 256));
    if (n != pool_->threads()) {
      pool_.reset();
      pool_ = std::make_unique<ThreadPool>(n);
      pool_->setSpinMicros(spinMicros_);
    }
    return info.Env().Undefined();
  });
}

Napi::Value Context::GetThreads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), pool_ ? pool_->threads() : 0); }

Napi::Value Context::SetSpin(const Napi::CallbackInfo& info) {
  return guarded(info, "setSpin", [&](Args& a) -> Napi::Value {
    spinMicros_ = static_cast<int>(a.integer("micros", 0, 1000000));
    pool_->setSpinMicros(spinMicros_);
    return info.Env().Undefined();
  });
}

Napi::Value Context::LiveBytes(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(live_)); }
Napi::Value Context::PeakBytes(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(peak_)); }

Napi::Value Context::ResetPeak(const Napi::CallbackInfo& info) {
  peak_ = live_;
  return info.Env().Undefined();
}

Napi::Value Context::ScratchBytes(const Napi::CallbackInfo& info) {
  size_t total = 0;
  for (auto& s : scratch_) total += s ? s->reserved() : 0;
  return Napi::Number::New(info.Env(), static_cast<double>(total));
}

Napi::Value Context::ReleaseScratch(const Napi::CallbackInfo& info) {
  scratch_.clear();
  return info.Env().Undefined();
}

Napi::Value Context::Dispose(const Napi::CallbackInfo& info) {
  if (!disposed_) {
    releaseAll();
    disposed_ = true;
  }
  return info.Env().Undefined();
}

Napi::Value Context::OwnerId(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(owner_)); }

}  // namespace adabatch
