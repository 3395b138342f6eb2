// Module entry point. Context-aware (Napi::Addon): the addon can be loaded by the main thread and
// by any number of worker_threads; per-environment state lives in the Addon instance, and the only
// process-wide state is the thread-safe buffer registry (and the thread groups of comm_threads.cc).
#include <napi.h>

#include "comm.h"
#include "context.h"
#include "gemm.h"
#include "peak_probe.h"
#include "registry.h"
#include "simd512.h"

namespace adabatch {

class AdabatchAddon : public Napi::Addon<AdabatchAddon> {
 public:
  AdabatchAddon(Napi::Env env, Napi::Object exports) {
    DefineAddon(exports, {
                             InstanceValue("Context", Context::Define(env)),
                             InstanceValue("Communicator", comm::DefineCommunicator(env)),
                             InstanceMethod("liveBufferCount", &AdabatchAddon::LiveBufferCount),
                             InstanceMethod("gemmConfig", &AdabatchAddon::GemmConfig),
                             InstanceMethod("peakProbe", &AdabatchAddon::PeakProbe),
                             InstanceMethod("bufferIsLive", &AdabatchAddon::BufferIsLive),
                         });
    comm::DefineFunctions(env, exports);
  }

 private:
  Napi::Value LiveBufferCount(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(registry::liveCount())); }

  // Whether a buffer id is registered (any backend instance, any thread).
  Napi::Value BufferIsLive(const Napi::CallbackInfo& info) {
    const double id = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : -1;
    return Napi::Boolean::New(info.Env(), id >= 1 && id < 9007199254740992.0 && registry::find(static_cast<uint64_t>(id)) != nullptr);
  }

  Napi::Value GemmConfig(const Napi::CallbackInfo& info) {
    Napi::Object o = Napi::Object::New(info.Env());
    const GemmInfo& g = gemmInfo();
    o.Set("library", g.library);
    o.Set("isa", g.isa);
    o.Set("f32Impl", g.f32Impl);
    o.Set("bf16Impl", g.bf16Impl);
    o.Set("bf16", g.bf16);
    o.Set("kernels", cpuHasAvx512() ? "avx512" : "avx2");
    return o;
  }

  // Peak f32 / bf16 GFLOP/s of one core, measured on the calling thread (blocks it for about
  // 6 × seconds): see peak_probe.h.
  Napi::Value PeakProbe(const Napi::CallbackInfo& info) {
    const double seconds = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : 0.2;
    const PeakProbeResult r = peakProbe(seconds);
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("f32Gflops", r.f32Gflops);
    o.Set("bf16Gflops", r.bf16Gflops >= 0 ? Napi::Value(Napi::Number::New(info.Env(), r.bf16Gflops)) : info.Env().Null());
    o.Set("f32Isa", r.f32Avx512 ? "avx512" : "avx2");
    return o;
  }
};

}  // namespace adabatch

using adabatch::AdabatchAddon;
NODE_API_ADDON(AdabatchAddon)
