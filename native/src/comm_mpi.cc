// The `mpi` transport: a thin layer over the system MPI (compiled only when mpi.h was found at
// build time; see native/mpi-config.mjs). MPI is initialised on the communicator thread, which is
// the only thread that ever calls MPI (MPI_THREAD_FUNNELED, checked). Every collective is
// non-blocking (MPI_I*) and polled with MPI_Test, so the thread can watch two things while it
// waits: an abort requested by this rank (its JavaScript failed) and the collective's deadline.
// Either ends the whole job with MPI_Abort, so no rank waits forever for a dead or stuck peer.
//
// The large collectives are rings of non-blocking point-to-point messages (MPI_Isend/MPI_Irecv to
// the next and previous rank): reduce-scatter in P−1 steps, each passing a running partial sum of
// one slice to the next rank, which adds its own slice; all-gather in P−1 steps passing finished
// slices on. All-reduce is the one followed by the other. Each element is summed exactly once, on
// the rank that owns its slice, so every rank receives the same bits whatever MPI's own tuning, and
// the traffic per rank is 2·(P−1)/P of the buffer, as in the best MPI all-reduce algorithms (Open
// MPI's non-blocking collectives default to slower ones for large buffers). The scalar reduction
// gathers every rank's values and sums them in rank order on each rank.
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
    case DType::BF16: return MPI_UINT16_T;  // moved, never reduced (reductions take f32 or f64)
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

// out[i] = a[i] + b[i] (out may alias a or b).
template <class T>
void addInto(T* out, const T* a, const T* b, size_t n) {
  for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void addBuffer(void* out, const void* a, const void* b, size_t n, DType d) {
  if (d == DType::F64) addInto(static_cast<double*>(out), static_cast<const double*>(a), static_cast<const double*>(b), n);
  else addInto(static_cast<float*>(out), static_cast<const float*>(a), static_cast<const float*>(b), n);
}

// A partition of n elements into `parts` slices, 64-byte aligned (the threads transport's partition).
struct Slices {
  std::vector<size_t> begin, count;
  Slices(size_t n, int parts, size_t elemBytes) : begin(parts), count(parts) {
    const size_t align = 64 / elemBytes;
    const size_t chunk = (n / parts + (n % parts != 0) + align - 1) / align * align;
    for (int k = 0; k < parts; k++) {
      begin[k] = std::min(n, static_cast<size_t>(k) * chunk);
      count[k] = std::min(n, begin[k] + chunk) - begin[k];
    }
  }
  // Equal slices of `shard` elements (reduce-scatter and all-gather of shards).
  Slices(int parts, size_t shard) : begin(parts), count(parts, shard) {
    for (int k = 0; k < parts; k++) begin[k] = static_cast<size_t>(k) * shard;
  }
};

constexpr int kRingTag = 7;

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
        const Slices sl(job.a.count, size_, eb);
        char* own = job.a.ptr + sl.begin[rank_] * eb;
        ringReduceScatter(job, job.a.ptr, sl, own);
        if (job.op == Op::Avg) scaleBuffer(own, sl.count[rank_], job.a.dtype, size_);
        ringAllGather(job, job.a.ptr, sl);
        return;
      }
      case Kind::ReduceScatter: {
        const Slices sl(size_, job.a.count);
        if (size_ == 1) {
          if (job.a.ptr != job.b.ptr) std::memcpy(job.a.ptr, job.b.ptr, job.a.bytes());
        } else {
          ringReduceScatter(job, job.b.ptr, sl, job.a.ptr);
        }
        if (job.op == Op::Avg) scaleBuffer(job.a.ptr, job.a.count, job.a.dtype, size_);
        return;
      }
      case Kind::AllGather: {
        const Slices sl(size_, job.b.count);
        char* own = job.a.ptr + sl.begin[rank_] * eb;
        if (own != job.b.ptr) std::memcpy(own, job.b.ptr, job.b.bytes());
        ringAllGather(job, job.a.ptr, sl);
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

  // One ring step: send `count` elements to the next rank while receiving from the previous one.
  void exchange(const Job& job, const void* send, size_t sendCount, void* recv, size_t recvCount) {
    const MPI_Datatype type = mpiType(job.a.dtype);
    const int right = (rank_ + 1) % size_;
    const int left = (rank_ + size_ - 1) % size_;
    checkCount(job, std::max(sendCount, recvCount));
    MPI_Request reqs[2];
    check(MPI_Irecv(recv, static_cast<int>(recvCount), type, left, kRingTag, comm_, &reqs[0]), job, "MPI_Irecv");
    check(MPI_Isend(send, static_cast<int>(sendCount), type, right, kRingTag, comm_, &reqs[1]), job, "MPI_Isend");
    waitAll(reqs, 2, job);
  }

  // Ring reduce-scatter of `in` (slices sl) across ranks: this rank's slice of the sum goes to `out`
  // (which may be its own slice of `in`). `in` is otherwise left unchanged.
  void ringReduceScatter(const Job& job, const char* in, const Slices& sl, char* out) {
    const size_t eb = dtypeBytes(job.a.dtype);
    const int P = size_;
    size_t maxCount = 0;
    for (size_t c : sl.count) maxCount = std::max(maxCount, c);
    char* partial = scratch(2 * maxCount * eb);
    char* received = partial + maxCount * eb;
    // Step s passes slice (r−1−s) on and receives slice (r−2−s), adding this rank's part of it;
    // after P−1 steps the slice received is this rank's own, complete.
    const char* send = in + sl.begin[(rank_ + P - 1) % P] * eb;
    for (int s = 0; s < P - 1; s++) {
      const int sent = (rank_ + 2 * P - 1 - s) % P;
      const int recv = (rank_ + 2 * P - 2 - s) % P;
      exchange(job, send, sl.count[sent], received, sl.count[recv]);
      char* target = s == P - 2 ? out : partial;
      addBuffer(target, received, in + sl.begin[recv] * eb, sl.count[recv], job.a.dtype);
      send = partial;
    }
  }

  // Ring all-gather in place: this rank's slice of `buf` is complete; after P−1 steps all are.
  void ringAllGather(const Job& job, char* buf, const Slices& sl) {
    const size_t eb = dtypeBytes(job.a.dtype);
    const int P = size_;
    for (int s = 0; s < P - 1; s++) {
      const int sent = (rank_ + P - s) % P;
      const int recv = (rank_ + 2 * P - 1 - s) % P;
      exchange(job, buf + sl.begin[sent] * eb, sl.count[sent], buf + sl.begin[recv] * eb, sl.count[recv]);
    }
  }

  void wait(MPI_Request& req, const Job& job) { waitAll(&req, 1, job); }

  // Polls until the requests complete; an abort request or the deadline ends the job instead.
  void waitAll(MPI_Request* reqs, int n, const Job& job) {
    int polls = 0;
    for (;;) {
      int done = 0;
      check(MPI_Testall(n, reqs, &done, MPI_STATUSES_IGNORE), job, "MPI_Testall");
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
