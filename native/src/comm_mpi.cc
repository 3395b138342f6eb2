// The `mpi` transport: a thin layer over the system MPI (compiled only when mpi.h was found at
// build time; see native/mpi-config.mjs). MPI is initialised on the communicator thread, which is
// the only thread that ever calls MPI (MPI_THREAD_FUNNELED, checked). Every collective is
// non-blocking (MPI_I*) and polled with MPI_Test, so the thread can watch two things while it
// waits: an abort requested by this rank (its JavaScript failed) and the collective's deadline.
// Either ends the whole job with MPI_Abort, so no rank waits forever for a dead or stuck peer.
//
// Determinism: all-reduce is a reduce-scatter followed by an all-gather, so each element is summed
// once (on the rank that owns its slice) and every rank receives the same bits; the scalar
// reduction gathers every rank's values and sums them in rank order on each rank.
#include <dlfcn.h>
#include <immintrin.h>
#include <mpi.h>
#include <sched.h>

#include <atomic>
#include <climits>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <thread>
#include <unistd.h>

#include "comm.h"

namespace adabatch {
namespace comm {

namespace {

// 0: never initialised by us, 1: initialised, 2: finalized (MPI cannot be initialised twice).
std::atomic<int> gState{0};

MPI_Datatype mpiType(DType d) {
  switch (d) {
    case DType::F32: return MPI_FLOAT;
    case DType::F64: return MPI_DOUBLE;
    case DType::I32: return MPI_INT;
  }
  return MPI_DATATYPE_NULL;
}

std::string errorString(int rc) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) return "MPI error " + std::to_string(rc);
  return std::string(text, static_cast<size_t>(len));
}

const char* levelName(int level) {
  switch (level) {
    case MPI_THREAD_SINGLE: return "MPI_THREAD_SINGLE";
    case MPI_THREAD_FUNNELED: return "MPI_THREAD_FUNNELED";
    case MPI_THREAD_SERIALIZED: return "MPI_THREAD_SERIALIZED";
    case MPI_THREAD_MULTIPLE: return "MPI_THREAD_MULTIPLE";
  }
  return "?";
}

template <class T>
void scale(void* p, size_t n, int size) {
  T* x = static_cast<T*>(p);
  const T inv = T(1) / static_cast<T>(size);
  for (size_t i = 0; i < n; i++) x[i] *= inv;
}

void scaleBuffer(void* p, size_t n, DType d, int size) {
  if (d == DType::F64) scale<double>(p, n, size);
  else scale<float>(p, n, size);
}

class MpiTransport : public Transport {
 public:
  MpiTransport() {
    if (gState.load() == 2) throw CommError(kFailed, "MPI was already finalized in this process (it cannot be initialised twice)");
    // Open MPI loads its components as plugins that expect libmpi's symbols to be global, while
    // Node loads addons (and so libmpi) with RTLD_LOCAL: promote libmpi before MPI_Init.
    Dl_info info;
    if (dladdr(reinterpret_cast<void*>(&MPI_Init_thread), &info) != 0 && info.dli_fname) dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
    int initialized = 0;
    MPI_Initialized(&initialized);
    int provided = MPI_THREAD_SINGLE;
    if (!initialized) {
      const int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
      if (rc != MPI_SUCCESS) throw CommError(kFailed, "MPI_Init_thread failed: " + errorString(rc));
      ownsInit_ = true;
    } else {
      MPI_Query_thread(&provided);
    }
    gState.store(1);
    if (provided < MPI_THREAD_FUNNELED) {
      throw CommError(kFailed, std::string("MPI provides only ") + levelName(provided) +
                                   "; adabatch calls MPI from one dedicated thread (not the process's first thread) and needs MPI_THREAD_FUNNELED");
    }
    MPI_Comm_dup(MPI_COMM_WORLD, &comm_);
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    MPI_Comm node;
    if (MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
      MPI_Comm_size(node, &localSize_);
      MPI_Comm_free(&node);
    }
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int localSize() const override { return localSize_; }

  void run(Job& job) override {
    const size_t eb = dtypeBytes(job.a.dtype);
    const MPI_Datatype type = mpiType(job.a.dtype);
    MPI_Request req = MPI_REQUEST_NULL;
    switch (job.kind) {
      case Kind::AllReduce: {
        if (size_ == 1) return;
        const size_t n = job.a.count;
        checkCount(job, n);
        // 64-byte aligned slices, one per rank (the same partition as the threads transport).
        const size_t align = 64 / eb;
        const size_t chunk = (n / size_ + (n % size_ != 0) + align - 1) / align * align;
        std::vector<int> counts(size_), displs(size_);
        for (int k = 0; k < size_; k++) {
          const size_t b = std::min(n, static_cast<size_t>(k) * chunk);
          displs[k] = static_cast<int>(b);
          counts[k] = static_cast<int>(std::min(n, b + chunk) - b);
        }
        char* mine = scratch(static_cast<size_t>(counts[rank_]) * eb);
        check(MPI_Ireduce_scatter(job.a.ptr, mine, counts.data(), type, MPI_SUM, comm_, &req), job, "MPI_Ireduce_scatter");
        wait(req, job);
        if (job.op == Op::Avg) scaleBuffer(mine, counts[rank_], job.a.dtype, size_);
        if (counts[rank_] > 0) std::memcpy(job.a.ptr + static_cast<size_t>(displs[rank_]) * eb, mine, static_cast<size_t>(counts[rank_]) * eb);
        check(MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, job.a.ptr, counts.data(), displs.data(), type, comm_, &req), job, "MPI_Iallgatherv");
        wait(req, job);
        return;
      }
      case Kind::ReduceScatter: {
        const size_t shard = job.a.count;
        checkCount(job, job.b.count);
        const bool inPlace = job.a.ptr == job.b.ptr + static_cast<size_t>(rank_) * shard * eb;
        char* recv = inPlace ? scratch(shard * eb) : job.a.ptr;
        check(MPI_Ireduce_scatter_block(job.b.ptr, recv, static_cast<int>(shard), type, MPI_SUM, comm_, &req), job, "MPI_Ireduce_scatter_block");
        wait(req, job);
        if (inPlace) std::memcpy(job.a.ptr, recv, shard * eb);
        if (job.op == Op::Avg) scaleBuffer(job.a.ptr, shard, job.a.dtype, size_);
        return;
      }
      case Kind::AllGather: {
        const size_t shard = job.b.count;
        checkCount(job, job.a.count);
        const bool inPlace = job.b.ptr == job.a.ptr + static_cast<size_t>(rank_) * shard * eb;
        check(MPI_Iallgather(inPlace ? MPI_IN_PLACE : job.b.ptr, static_cast<int>(shard), type, job.a.ptr, static_cast<int>(shard), type, comm_, &req), job, "MPI_Iallgather");
        wait(req, job);
        return;
      }
      case Kind::Broadcast:
        checkCount(job, job.a.count);
        check(MPI_Ibcast(job.a.ptr, static_cast<int>(job.a.count), type, job.root, comm_, &req), job, "MPI_Ibcast");
        wait(req, job);
        return;
      case Kind::Barrier:
        check(MPI_Ibarrier(comm_, &req), job, "MPI_Ibarrier");
        wait(req, job);
        return;
      case Kind::Scalars: {
        const size_t k = job.scalars.size();
        std::vector<double> all(k * static_cast<size_t>(size_));
        check(MPI_Iallgather(job.scalars.data(), static_cast<int>(k), MPI_DOUBLE, all.data(), static_cast<int>(k), MPI_DOUBLE, comm_, &req), job, "MPI_Iallgather");
        wait(req, job);
        job.result.assign(k, 0.0);
        for (size_t i = 0; i < k; i++) {
          double s = all[i];
          for (int p = 1; p < size_; p++) s += all[static_cast<size_t>(p) * k + i];
          job.result[i] = job.op == Op::Avg ? s / size_ : s;
        }
        return;
      }
      default:
        return;
    }
  }

  void abort(const std::string& reason) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (abortRequested_.load()) return;
    abortReason_ = reason;
    abortRequested_.store(true);
  }

  void abortNow(const std::string& reason) override { die(reason); }

  void close() override {
    if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
    if (ownsInit_) MPI_Finalize();
    gState.store(2);
  }

 private:
  [[noreturn]] void die(const std::string& reason) {
    std::fprintf(stderr, "adabatch: %s; rank %d calls MPI_Abort\n", reason.c_str(), rank_);
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    _exit(1);
  }

  void check(int rc, const Job& job, const char* call) {
    if (rc != MPI_SUCCESS) throw CommError(kFailed, "rank " + std::to_string(rank_) + ": " + job.describe() + ": " + call + " failed: " + errorString(rc));
  }

  void checkCount(const Job& job, size_t n) {
    if (n > static_cast<size_t>(INT_MAX)) throw CommError(kFailed, "rank " + std::to_string(rank_) + ": " + job.describe() + ": more than 2^31-1 elements in one MPI call");
  }

  char* scratch(size_t bytes) {
    if (scratch_.size() < bytes) scratch_.resize(bytes);
    return scratch_.data();
  }

  // Polls until the request completes; an abort request or the deadline ends the job instead.
  void wait(MPI_Request& req, const Job& job) {
    int polls = 0;
    for (;;) {
      int done = 0;
      check(MPI_Test(&req, &done, MPI_STATUS_IGNORE), job, "MPI_Test");
      if (done) return;
      if (abortRequested_.load()) {
        std::string reason;
        {
          std::lock_guard<std::mutex> lock(mu_);
          reason = abortReason_;
        }
        die(reason);
      }
      if (Clock::now() > job.deadline) {
        char t[32];
        std::snprintf(t, sizeof t, "%g", job.timeoutSeconds);
        die("rank " + std::to_string(rank_) + ": " + job.describe() + " timed out after " + t + " s (the dist timeout)");
      }
      // Poll tightly for a short while (small collectives finish in microseconds), then back off.
      if (++polls < 2000) _mm_pause();
      else if (polls < 4000) sched_yield();
      else std::this_thread::sleep_for(std::chrono::microseconds(polls < 20000 ? 20 : 200));
    }
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
  int localSize_ = 1;
  bool ownsInit_ = false;
  std::vector<char> scratch_;
  std::mutex mu_;
  std::atomic<bool> abortRequested_{false};
  std::string abortReason_;
};

}  // namespace

namespace mpi {

bool compiled() { return true; }

std::unique_ptr<Transport> open() { return std::make_unique<MpiTransport>(); }

std::string version() {
  char text[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  if (MPI_Get_library_version(text, &len) != MPI_SUCCESS) return "";
  std::string s(text, static_cast<size_t>(len));
  const size_t cut = s.find_first_of(",\n");
  return cut == std::string::npos ? s : s.substr(0, cut);
}

}  // namespace mpi
}  // namespace comm
}  // namespace adabatch
