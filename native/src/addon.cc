// Module entry point. Context-aware (Napi::Addon): the addon can be loaded by the main thread and
// by any number of worker_threads; per-environment state lives in the Addon instance, and the only
// process-wide state is the thread-safe buffer registry (and the thread groups of comm_threads.cc).
#include <cblas.h>
#include <napi.h>

#include "comm.h"
#include "context.h"
#include "registry.h"
#include "simd512.h"

namespace adabatch {

class AdabatchAddon : public Napi::Addon<AdabatchAddon> {
 public:
  AdabatchAddon(Napi::Env env, Napi::Object exports) {
    // OpenBLAS's thread count is process-wide: keep it single-threaded and let each backend
    // instance's pool (or each data-parallel rank) supply the parallelism. OpenBLAS supports
    // concurrent calls from application threads in this mode.
    openblas_set_num_threads(1);
    DefineAddon(exports, {
                             InstanceValue("Context", Context::Define(env)),
                             InstanceValue("Communicator", comm::DefineCommunicator(env)),
                             InstanceMethod("liveBufferCount", &AdabatchAddon::LiveBufferCount),
                             InstanceMethod("blasConfig", &AdabatchAddon::BlasConfig),
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

  Napi::Value BlasConfig(const Napi::CallbackInfo& info) {
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("config", openblas_get_config());
    o.Set("core", openblas_get_corename());
    o.Set("threads", openblas_get_num_threads());
    o.Set("kernels", cpuHasAvx512() ? "avx512" : "avx2");
    return o;
  }
};

}  // namespace adabatch

using adabatch::AdabatchAddon;
NODE_API_ADDON(AdabatchAddon)
