// The Communicator: a rank's queue of collectives, its communicator thread, and the thread-safe
// function that settles each collective's Promise on the rank's JavaScript thread.
#include "comm.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <future>
#include <mutex>
#include <sstream>
#include <thread>

#include "args.h"

namespace adabatch {
namespace comm {

const char* kindName(Kind k) {
  switch (k) {
    case Kind::AllReduce: return "allReduce";
    case Kind::ReduceScatter: return "reduceScatter";
    case Kind::AllGather: return "allGather";
    case Kind::Broadcast: return "broadcast";
    case Kind::Barrier: return "barrier";
    case Kind::Scalars: return "allReduceScalars";
    case Kind::Close: return "close";
  }
  return "?";
}

std::string Job::describe() const {
  std::ostringstream s;
  s << kindName(kind) << " #" << seq;
  switch (kind) {
    case Kind::AllReduce: s << " (" << dtypeName(a.dtype) << " × " << a.count << ", " << (op == Op::Avg ? "avg" : "sum") << ")"; break;
    case Kind::ReduceScatter: s << " (" << dtypeName(a.dtype) << " × " << b.count << " → " << a.count << ", " << (op == Op::Avg ? "avg" : "sum") << ")"; break;
    case Kind::AllGather: s << " (" << dtypeName(a.dtype) << " × " << b.count << " → " << a.count << ")"; break;
    case Kind::Broadcast: s << " (" << dtypeName(a.dtype) << " × " << a.count << " from rank " << root << ")"; break;
    case Kind::Scalars: s << " (" << scalars.size() << " × f64, " << (op == Op::Avg ? "avg" : "sum") << ")"; break;
    default: break;
  }
  return s.str();
}

namespace {

struct Stat {
  uint64_t count = 0;
  double seconds = 0;
  double bytes = 0;
};

// Everything a rank's communicator shares between its JavaScript thread and its communicator
// thread. Kept alive by the JavaScript object, the thread and the thread-safe function.
class Core {
 public:
  Core(napi_env env, double timeoutSeconds) : env_(env), timeoutSeconds_(timeoutSeconds) {}

  // Starts the communicator thread, which creates the transport (MPI is initialised on it), and
  // waits until it is ready. Throws CommError when the transport cannot be opened.
  void start(std::function<std::unique_ptr<Transport>()> factory) {
    std::promise<void> ready;
    std::future<void> readyF = ready.get_future();
    thread_ = std::thread([this, factory = std::move(factory), &ready]() mutable { loop(std::move(factory), ready); });
    try {
      readyF.get();
    } catch (...) {
      thread_.join();
      throw;
    }
  }

  // ---- JavaScript thread ---------------------------------------------------------------------
  napi_value submit(Napi::Env env, std::unique_ptr<Job> job) {
    if (closing_) throw Napi::Error::New(env, std::string(kindName(job->kind)) + ": this communicator is closed");
    napi_value promise;
    if (napi_create_promise(env, &job->deferred, &promise) != napi_ok) throw Napi::Error::New(env, "cannot create a promise");
    job->seq = nextSeq_++;
    job->timeoutSeconds = timeoutSeconds_;
    job->deadline = Clock::now() + std::chrono::microseconds(static_cast<int64_t>(timeoutSeconds_ * 1e6));
    if (job->kind == Kind::Close) closing_ = true;
    if (pending_++ == 0 && tsfn_) napi_ref_threadsafe_function(env, tsfn_);
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(job.release());
    }
    cv_.notify_all();
    return promise;
  }

  void abort(const std::string& reason) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (abortRequested_.load()) return;
      abortReason_ = reason;
      abortRequested_.store(true);
    }
    if (transport_) transport_->abort(reason);
    cv_.notify_all();
  }

  // Called for every finished job on the JavaScript thread.
  void settle(napi_env env, Job* job) {
    std::unique_ptr<Job> owned(job);
    if (--pending_ == 0 && tsfn_) napi_unref_threadsafe_function(env, tsfn_);
    napi_value value = nullptr;
    if (job->error.empty()) {
      if (job->kind == Kind::Scalars) {
        Napi::Float64Array out = Napi::Float64Array::New(env, job->result.size());
        std::copy(job->result.begin(), job->result.end(), out.Data());
        value = out;
      } else {
        napi_get_undefined(env, &value);
      }
      napi_resolve_deferred(env, job->deferred, value);
    } else {
      Napi::Error err = Napi::Error::New(env, job->error);
      err.Set("code", Napi::String::New(env, job->code));
      err.Set("rank", Napi::Number::New(env, transport_ ? transport_->rank() : -1));
      napi_reject_deferred(env, job->deferred, err.Value());
    }
    if (job->kind == Kind::Close) shutdown(false);
  }

  // Stops the thread and releases the thread-safe function. With collectives still pending (the
  // environment is going away) the group is aborted first, so no other rank waits for this one.
  void shutdown(bool fromCleanupHook) {
    if (shutdown_) return;
    shutdown_ = true;
    if (thread_.joinable()) {
      bool busy;
      {
        std::lock_guard<std::mutex> lock(mu_);
        busy = !queue_.empty() || running_;
        stop_ = true;
      }
      if (busy) abort("rank " + std::to_string(rank()) + "'s JavaScript environment ended while collectives were pending");
      cv_.notify_all();
      thread_.join();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (Job* j : queue_) delete j;
      queue_.clear();
    }
    if (tsfn_) {
      napi_release_threadsafe_function(tsfn_, napi_tsfn_release);
      tsfn_ = nullptr;
    }
    if (!fromCleanupHook && hookAdded_) napi_remove_env_cleanup_hook(env_, &Core::cleanupHook, this);
    hookAdded_ = false;
  }

  static void cleanupHook(void* arg) {
    Core* self = static_cast<Core*>(arg);
    self->hookAdded_ = false;
    self->shutdown(true);
  }

  void setTsfn(napi_threadsafe_function t) { tsfn_ = t; }
  void markHookAdded() { hookAdded_ = true; }

  int rank() const { return transport_ ? transport_->rank() : -1; }
  int size() const { return transport_ ? transport_->size() : 0; }
  int localSize() const { return transport_ ? transport_->localSize() : 0; }
  int pending() const { return pending_; }
  bool closed() const { return closing_; }

  Napi::Object stats(Napi::Env env) {
    Napi::Object o = Napi::Object::New(env);
    std::lock_guard<std::mutex> lock(statsMu_);
    for (int k = 0; k < kKindCount; k++) {
      if (static_cast<Kind>(k) == Kind::Close) continue;
      Napi::Object s = Napi::Object::New(env);
      s.Set("count", static_cast<double>(stats_[k].count));
      s.Set("seconds", stats_[k].seconds);
      s.Set("bytes", stats_[k].bytes);
      o.Set(kindName(static_cast<Kind>(k)), s);
    }
    return o;
  }

  void resetStats() {
    std::lock_guard<std::mutex> lock(statsMu_);
    for (auto& s : stats_) s = Stat{};
  }

 private:
  // ---- communicator thread -------------------------------------------------------------------
  void loop(std::function<std::unique_ptr<Transport>()> factory, std::promise<void>& ready) {
    try {
      transport_ = factory();
      ready.set_value();
    } catch (...) {
      ready.set_exception(std::current_exception());
      return;
    }
    bool abortHandled = false;
    for (;;) {
      Job* job = nullptr;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return !queue_.empty() || stop_ || (abortRequested_.load() && !abortHandled); });
        if (abortRequested_.load() && !abortHandled) {
          abortHandled = true;
          const std::string reason = abortReason_;
          lock.unlock();
          transport_->abortNow(reason);  // MPI: ends the job; threads: the group is already aborted
          continue;
        }
        if (queue_.empty()) break;  // stop requested and nothing left
        job = queue_.front();
        queue_.pop_front();
        running_ = true;
      }
      const auto t0 = Clock::now();
      try {
        if (job->kind == Kind::Close) transport_->close();
        else transport_->run(*job);
      } catch (const CommError& e) {
        job->error = e.what();
        job->code = e.code;
      } catch (const std::exception& e) {
        job->error = std::string(kindName(job->kind)) + ": " + e.what();
        job->code = kFailed;
      }
      job->seconds = std::chrono::duration<double>(Clock::now() - t0).count();
      {
        std::lock_guard<std::mutex> lock(statsMu_);
        Stat& s = stats_[static_cast<int>(job->kind)];
        s.count++;
        s.seconds += job->seconds;
        s.bytes += static_cast<double>(std::max(job->a.bytes(), job->b.bytes()) + job->scalars.size() * 8);
      }
      const bool last = job->kind == Kind::Close;
      {
        std::lock_guard<std::mutex> lock(mu_);
        running_ = false;
      }
      if (!tsfn_ || napi_call_threadsafe_function(tsfn_, job, napi_tsfn_nonblocking) != napi_ok) delete job;
      if (last) break;
    }
  }

  napi_env env_;
  double timeoutSeconds_;
  napi_threadsafe_function tsfn_ = nullptr;
  std::unique_ptr<Transport> transport_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job*> queue_;
  bool stop_ = false;
  bool running_ = false;
  std::atomic<bool> abortRequested_{false};
  std::string abortReason_;
  // JavaScript thread only.
  int pending_ = 0;
  uint64_t nextSeq_ = 0;
  bool closing_ = false;
  bool shutdown_ = false;
  bool hookAdded_ = false;
  std::mutex statsMu_;
  Stat stats_[kKindCount];
};

void callJs(napi_env env, napi_value /*callback*/, void* context, void* data) {
  Job* job = static_cast<Job*>(data);
  if (env == nullptr) {  // the environment is being torn down
    delete job;
    return;
  }
  static_cast<Core*>(context)->settle(env, job);
}

void finalizeTsfn(napi_env /*env*/, void* data, void* /*hint*/) { delete static_cast<std::shared_ptr<Core>*>(data); }

// ---- argument reading --------------------------------------------------------------------------

[[noreturn]] void fail(const char* what, const std::string& message) { throw ArgError(std::string(what) + ": " + message); }

double numberArg(const Napi::CallbackInfo& info, size_t i, const char* what, const char* name) {
  if (i >= info.Length() || !info[i].IsNumber()) fail(what, std::string(name) + " must be a number");
  const double d = info[i].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) fail(what, std::string(name) + " must be finite");
  return d;
}

int64_t intArg(const Napi::CallbackInfo& info, size_t i, const char* what, const char* name, int64_t lo, int64_t hi) {
  const double d = numberArg(info, i, what, name);
  if (std::floor(d) != d || d < static_cast<double>(lo) || d > static_cast<double>(hi)) {
    fail(what, std::string(name) + " must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + std::to_string(d));
  }
  return static_cast<int64_t>(d);
}

// A tensor quadruple (buffer id, offset, size, dtype code) starting at info[i]. Unlike kernel
// arguments, the buffer may belong to any backend instance of the process (that is the point).
Buffer bufferArg(const Napi::CallbackInfo& info, size_t i, const char* what, const char* name, unsigned allowed) {
  const std::string n(name);
  const int64_t id = intArg(info, i, what, (n + ".buffer").c_str(), 1, kMaxCount);
  const int64_t offset = intArg(info, i + 1, what, (n + ".offset").c_str(), 0, kMaxCount);
  const int64_t size = intArg(info, i + 2, what, (n + ".size").c_str(), 0, kMaxCount);
  const int64_t code = intArg(info, i + 3, what, (n + ".dtype").c_str(), 0, kLastDType);
  Buffer b;
  b.alloc = registry::find(static_cast<uint64_t>(id));
  if (!b.alloc) fail(what, n + ": buffer " + std::to_string(id) + (registry::wasIssued(static_cast<uint64_t>(id)) ? " was freed" : " was never allocated"));
  b.dtype = static_cast<DType>(code);
  if (b.dtype != b.alloc->dtype) fail(what, n + ": tensor dtype " + dtypeName(b.dtype) + " does not match its buffer's dtype " + dtypeName(b.alloc->dtype));
  if (!(allowed & dtypeBit(b.dtype))) fail(what, n + " must be " + (allowed == kFloat ? "f32 or f64" : "f32, f64, i32 or bf16") + ", got " + dtypeName(b.dtype));
  if (static_cast<uint64_t>(offset) > b.alloc->elems || static_cast<uint64_t>(size) > b.alloc->elems - static_cast<uint64_t>(offset)) {
    fail(what, n + ": window [" + std::to_string(offset) + ", " + std::to_string(offset + size) + ") exceeds its buffer of " + std::to_string(b.alloc->elems) + " elements");
  }
  b.ptr = static_cast<char*>(b.alloc->ptr) + static_cast<size_t>(offset) * dtypeBytes(b.dtype);
  b.count = static_cast<size_t>(size);
  return b;
}

Op opArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (i >= info.Length() || !info[i].IsString()) fail(what, "op must be 'sum' or 'avg'");
  const std::string s = info[i].As<Napi::String>().Utf8Value();
  if (s == "sum") return Op::Sum;
  if (s == "avg") return Op::Avg;
  fail(what, "op must be 'sum' or 'avg', got '" + s + "'");
}

bool overlaps(const Buffer& x, const Buffer& y) {
  if (x.count == 0 || y.count == 0) return false;
  return x.ptr < y.ptr + y.bytes() && y.ptr < x.ptr + x.bytes();
}

// ---- the JavaScript class ----------------------------------------------------------------------

class Communicator : public Napi::ObjectWrap<Communicator> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Communicator",
                       {
                           InstanceMethod("rank", &Communicator::Rank),
                           InstanceMethod("size", &Communicator::Size),
                           InstanceMethod("localSize", &Communicator::LocalSize),
                           InstanceMethod("pending", &Communicator::Pending),
                           InstanceMethod("allReduce", &Communicator::AllReduce),
                           InstanceMethod("reduceScatter", &Communicator::ReduceScatter),
                           InstanceMethod("allGather", &Communicator::AllGather),
                           InstanceMethod("broadcast", &Communicator::Broadcast),
                           InstanceMethod("barrier", &Communicator::Barrier),
                           InstanceMethod("allReduceScalars", &Communicator::AllReduceScalars),
                           InstanceMethod("abort", &Communicator::Abort),
                           InstanceMethod("close", &Communicator::Close),
                           InstanceMethod("stats", &Communicator::Stats),
                           InstanceMethod("resetStats", &Communicator::ResetStats),
                       });
  }

  // new Communicator('threads', groupId, rank, timeoutSeconds) | new Communicator('mpi', 0, 0, timeoutSeconds)
  explicit Communicator(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Communicator>(info) {
    Napi::Env env = info.Env();
    try {
      if (info.Length() < 1 || !info[0].IsString()) fail("Communicator", "kind must be 'threads' or 'mpi'");
      const std::string kind = info[0].As<Napi::String>().Utf8Value();
      const double timeout = numberArg(info, 3, "Communicator", "timeoutSeconds");
      if (!(timeout > 0)) fail("Communicator", "timeoutSeconds must be positive");
      core_ = std::make_shared<Core>(env, timeout);
      std::function<std::unique_ptr<Transport>()> factory;
      if (kind == "threads") {
        const int group = static_cast<int>(intArg(info, 1, "Communicator", "group", 1, INT32_MAX));
        const int rank = static_cast<int>(intArg(info, 2, "Communicator", "rank", 0, INT32_MAX));
        factory = [group, rank] { return threadgroup::join(group, rank); };
      } else if (kind == "mpi") {
        factory = [] { return mpi::open(); };
      } else {
        fail("Communicator", "kind must be 'threads' or 'mpi', got '" + kind + "'");
      }
      core_->start(std::move(factory));
    } catch (const ArgError& e) {
      throw Napi::TypeError::New(env, e.what());
    } catch (const CommError& e) {
      Napi::Error err = Napi::Error::New(env, e.what());
      err.Set("code", Napi::String::New(env, e.code));
      throw err;
    }
    napi_threadsafe_function tsfn;
    napi_value name = Napi::String::New(env, "adabatch-communicator");
    auto* keep = new std::shared_ptr<Core>(core_);
    if (napi_create_threadsafe_function(env, nullptr, nullptr, name, 0, 1, keep, finalizeTsfn, core_.get(), callJs, &tsfn) != napi_ok) {
      delete keep;
      core_->shutdown(false);
      throw Napi::Error::New(env, "cannot create the communicator's thread-safe function");
    }
    napi_unref_threadsafe_function(env, tsfn);
    core_->setTsfn(tsfn);
    if (napi_add_env_cleanup_hook(env, &Core::cleanupHook, core_.get()) == napi_ok) core_->markHookAdded();
  }

  ~Communicator() override {
    if (core_) core_->shutdown(false);
  }

 private:
  template <class F>
  Napi::Value guarded(const Napi::CallbackInfo& info, const char* what, F&& body) {
    try {
      return body();
    } catch (const ArgError& e) {
      throw Napi::TypeError::New(info.Env(), e.what());
    }
  }

  Napi::Value Rank(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), core_->rank()); }
  Napi::Value Size(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), core_->size()); }
  Napi::Value LocalSize(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), core_->localSize()); }
  Napi::Value Pending(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), core_->pending()); }

  Napi::Value AllReduce(const Napi::CallbackInfo& info) {
    return guarded(info, "allReduce", [&]() -> Napi::Value {
      auto job = std::make_unique<Job>();
      job->kind = Kind::AllReduce;
      job->a = bufferArg(info, 0, "allReduce", "t", kFloat);
      job->op = opArg(info, 4, "allReduce");
      return Napi::Value(info.Env(), core_->submit(info.Env(), std::move(job)));
    });
  }

  Napi::Value ReduceScatter(const Napi::CallbackInfo& info) {
    return guarded(info, "reduceScatter", [&]() -> Napi::Value {
      auto job = std::make_unique<Job>();
      job->kind = Kind::ReduceScatter;
      job->a = bufferArg(info, 0, "reduceScatter", "out", kFloat);
      job->b = bufferArg(info, 4, "reduceScatter", "input", kFloat);
      job->op = opArg(info, 8, "reduceScatter");
      if (job->a.dtype != job->b.dtype) fail("reduceScatter", "out and input must have the same dtype");
      const size_t n = static_cast<size_t>(core_->size());
      if (job->b.count != job->a.count * n) fail("reduceScatter", "input must hold size × out elements (" + std::to_string(n) + " × " + std::to_string(job->a.count) + "), has " + std::to_string(job->b.count));
      // out may be this rank's own shard of input (in place), or disjoint from it.
      const char* own = job->b.ptr + static_cast<size_t>(core_->rank()) * job->a.bytes();
      if (overlaps(job->a, job->b) && job->a.ptr != own) fail("reduceScatter", "out overlaps input other than as this rank's own shard");
      return Napi::Value(info.Env(), core_->submit(info.Env(), std::move(job)));
    });
  }

  Napi::Value AllGather(const Napi::CallbackInfo& info) {
    return guarded(info, "allGather", [&]() -> Napi::Value {
      auto job = std::make_unique<Job>();
      job->kind = Kind::AllGather;
      job->a = bufferArg(info, 0, "allGather", "out", kAny);
      job->b = bufferArg(info, 4, "allGather", "shard", kAny);
      if (job->a.dtype != job->b.dtype) fail("allGather", "out and shard must have the same dtype");
      const size_t n = static_cast<size_t>(core_->size());
      if (job->a.count != job->b.count * n) fail("allGather", "out must hold size × shard elements (" + std::to_string(n) + " × " + std::to_string(job->b.count) + "), has " + std::to_string(job->a.count));
      const char* own = job->a.ptr + static_cast<size_t>(core_->rank()) * job->b.bytes();
      if (overlaps(job->a, job->b) && job->b.ptr != own) fail("allGather", "shard overlaps out other than as this rank's own shard of it");
      return Napi::Value(info.Env(), core_->submit(info.Env(), std::move(job)));
    });
  }

  Napi::Value Broadcast(const Napi::CallbackInfo& info) {
    return guarded(info, "broadcast", [&]() -> Napi::Value {
      auto job = std::make_unique<Job>();
      job->kind = Kind::Broadcast;
      job->a = bufferArg(info, 0, "broadcast", "t", kAny);
      job->root = static_cast<int>(intArg(info, 4, "broadcast", "root", 0, core_->size() - 1));
      return Napi::Value(info.Env(), core_->submit(info.Env(), std::move(job)));
    });
  }

  Napi::Value Barrier(const Napi::CallbackInfo& info) {
    auto job = std::make_unique<Job>();
    job->kind = Kind::Barrier;
    return Napi::Value(info.Env(), core_->submit(info.Env(), std::move(job)));
  }

  Napi::Value AllReduceScalars(const Napi::CallbackInfo& info) {
    return guarded(info, "allReduceScalars", [&]() -> Napi::Value {
      if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) fail("allReduceScalars", "values must be a Float64Array");
      Napi::Float64Array v = info[0].As<Napi::Float64Array>();
      auto job = std::make_unique<Job>();
      job->kind = Kind::Scalars;
      job->scalars.assign(v.Data(), v.Data() + v.ElementLength());
      job->op = opArg(info, 1, "allReduceScalars");
      return Napi::Value(info.Env(), core_->submit(info.Env(), std::move(job)));
    });
  }

  // abort(reason): every rank's pending and future collectives fail (threads) or the MPI job ends.
  Napi::Value Abort(const Napi::CallbackInfo& info) {
    const std::string reason = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : std::string("aborted");
    core_->abort(reason);
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (core_->closed()) {  // closing twice is a no-op
      Napi::Promise::Deferred done = Napi::Promise::Deferred::New(info.Env());
      done.Resolve(info.Env().Undefined());
      return done.Promise();
    }
    auto job = std::make_unique<Job>();
    job->kind = Kind::Close;
    return Napi::Value(info.Env(), core_->submit(info.Env(), std::move(job)));
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) { return core_->stats(info.Env()); }

  Napi::Value ResetStats(const Napi::CallbackInfo& info) {
    core_->resetStats();
    return info.Env().Undefined();
  }

  std::shared_ptr<Core> core_;
};

Napi::Value ThreadGroupCreate(const Napi::CallbackInfo& info) {
  try {
    const int size = static_cast<int>(intArg(info, 0, "threadGroupCreate", "size", 1, 4096));
    return Napi::Number::New(info.Env(), threadgroup::create(size));
  } catch (const ArgError& e) {
    throw Napi::TypeError::New(info.Env(), e.what());
  }
}

Napi::Value ThreadGroupAbort(const Napi::CallbackInfo& info) {
  try {
    const int id = static_cast<int>(intArg(info, 0, "threadGroupAbort", "group", 1, INT32_MAX));
    const std::string reason = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : std::string("aborted");
    return Napi::Boolean::New(info.Env(), threadgroup::abort(id, reason));
  } catch (const ArgError& e) {
    throw Napi::TypeError::New(info.Env(), e.what());
  }
}

Napi::Value ThreadGroupRelease(const Napi::CallbackInfo& info) {
  try {
    threadgroup::release(static_cast<int>(intArg(info, 0, "threadGroupRelease", "group", 1, INT32_MAX)));
    return info.Env().Undefined();
  } catch (const ArgError& e) {
    throw Napi::TypeError::New(info.Env(), e.what());
  }
}

}  // namespace

Napi::Function DefineCommunicator(Napi::Env env) { return Communicator::Define(env); }

void DefineFunctions(Napi::Env env, Napi::Object exports) {
  exports.Set("threadGroupCreate", Napi::Function::New(env, ThreadGroupCreate, "threadGroupCreate"));
  exports.Set("threadGroupAbort", Napi::Function::New(env, ThreadGroupAbort, "threadGroupAbort"));
  exports.Set("threadGroupRelease", Napi::Function::New(env, ThreadGroupRelease, "threadGroupRelease"));
  Napi::Object mpiInfo = Napi::Object::New(env);
  mpiInfo.Set("compiled", mpi::compiled());
  mpiInfo.Set("version", mpi::version());
  exports.Set("mpi", mpiInfo);
}

}  // namespace comm
}  // namespace adabatch
