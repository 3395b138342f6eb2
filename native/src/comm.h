// Collectives for data parallelism. One Communicator per rank (class `Communicator` of the addon)
// owns a dedicated native thread that runs the rank's collectives in submission order; JavaScript
// gets a Promise per collective, settled on the rank's own JavaScript thread through a thread-safe
// function, so the event loop stays alive (signals, worker messages) while a collective runs.
//
// Two transports do the work:
//   threads  ranks are worker_threads of one process (comm_threads.cc): every rank's buffers are
//            reachable through the process-global registry, so a collective is two rendezvous and
//            plain memory traffic, each rank reducing its own slice of every rank's buffer in a
//            fixed rank order (bit-identical results on every rank).
//   mpi      the system MPI (comm_mpi.cc, compiled only when mpi.h was found at build time):
//            non-blocking calls polled on the communicator thread; all-reduce is a reduce-scatter
//            followed by an all-gather, so every element is summed exactly once and every rank gets
//            the same bits.
// A collective that runs past its deadline, or an abort from any rank, fails every waiting
// collective of the group (threads) or ends the whole job with MPI_Abort (mpi): no rank hangs.
#pragma once
#include <napi.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "dtype.h"
#include "registry.h"

namespace adabatch {
namespace comm {

enum class Kind : int { AllReduce = 0, ReduceScatter, AllGather, Broadcast, Barrier, Scalars, Close };
constexpr int kKindCount = 7;
enum class Op : int { Sum = 0, Avg = 1 };

const char* kindName(Kind k);

// Error codes carried to JavaScript as `error.code`.
constexpr const char* kAborted = "ADABATCH_COMM_ABORTED";
constexpr const char* kTimeout = "ADABATCH_COMM_TIMEOUT";
constexpr const char* kFailed = "ADABATCH_COMM_ERROR";

struct CommError : std::runtime_error {
  std::string code;
  CommError(const char* c, const std::string& message) : std::runtime_error(message), code(c) {}
};

using Clock = std::chrono::steady_clock;

// A validated window of one registry allocation; holding it keeps the memory alive.
struct Buffer {
  AllocationPtr alloc;
  char* ptr = nullptr;
  size_t count = 0;
  DType dtype = DType::F32;
  size_t bytes() const { return count * dtypeBytes(dtype); }
};

// One collective call of one rank.
struct Job {
  Kind kind = Kind::Barrier;
  Op op = Op::Sum;
  int root = 0;
  uint64_t seq = 0;             // this rank's collective counter (the same on every rank when matched)
  Buffer a;                     // allReduce / broadcast: the buffer; reduceScatter / allGather: out
  Buffer b;                     // reduceScatter: input; allGather: this rank's shard
  std::vector<double> scalars;  // Scalars: this rank's values
  std::vector<double> result;   // Scalars: the reduced values
  Clock::time_point deadline;
  double timeoutSeconds = 0;
  // Outcome, written on the communicator thread.
  std::string error;
  std::string code;
  double seconds = 0;
  // JavaScript side (touched on the JavaScript thread only).
  napi_deferred deferred = nullptr;

  std::string describe() const;
};

// The rank's view of a group, driven from the communicator thread (except abort()).
class Transport {
 public:
  virtual ~Transport() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Ranks sharing this machine (for the default kernel thread count).
  virtual int localSize() const = 0;
  // Runs one collective to completion; throws CommError.
  virtual void run(Job& job) = 0;
  // Any thread, returns at once: makes the group's pending and future collectives fail.
  virtual void abort(const std::string& reason) = 0;
  // Communicator thread, when an abort was requested and no collective is running (MPI ends the job).
  virtual void abortNow(const std::string& reason) = 0;
  // Communicator thread, after the last collective: leave the group, finalize.
  virtual void close() = 0;
};

// The threads transport: a group created by the launching thread, joined by each rank.
namespace threadgroup {
// A new group of `size` ranks; returns its id.
int create(int size);
// Fails every pending and future collective of the group with `reason` (false when no such group).
bool abort(int id, const std::string& reason);
// Forgets the id (ranks that joined keep the group alive until they close).
void release(int id);
std::unique_ptr<Transport> join(int id, int rank);
}  // namespace threadgroup

// The MPI transport (comm_mpi.cc or the stub when MPI is not compiled in).
namespace mpi {
bool compiled();
// Initialises MPI on the calling thread (the communicator thread) and returns the world transport.
std::unique_ptr<Transport> open();
// Library version string (empty without MPI).
std::string version();
}  // namespace mpi

Napi::Function DefineCommunicator(Napi::Env env);
// Module-level functions: threadGroupCreate(size), threadGroupAbort(id, reason), threadGroupRelease(id).
void DefineFunctions(Napi::Env env, Napi::Object exports);

}  // namespace comm
}  // namespace adabatch
