// A small fork-join pool owned by one backend instance: `threads - 1` workers plus the calling
// thread. Workers spin briefly after a parallel region (kernels come back-to-back within a training
// step), then yield, then sleep on a condition variable, so an idle backend costs no CPU.
//
// Tasks are handed out dynamically and a worker only counts once it has joined a region: if a
// worker is descheduled (another process on its core), the caller runs the remaining tasks itself
// and never waits for a worker that has not started. oneDNN runs single-threaded inside tasks
// (see gemm.h), so the pool is the only source of parallelism and GEMM threads never compete with it.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace adabatch {

class ThreadPool {
 public:
  // fn(task, worker): worker ∈ [0, threads) identifies per-thread scratch.
  using Task = std::function<void(int task, int worker)>;

  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const { return static_cast<int>(workers_.size()) + 1; }
  // Runs fn for every task in [0, count) and returns when all are done. A call from inside a task
  // runs serially (no nested parallelism).
  void run(int count, const Task& fn);
  // How long idle workers wait actively (spinning, then yielding) before sleeping, in microseconds.
  void setSpinMicros(int us) { spinMicros_.store(us); }

 private:
  // state_: generation (high 32 bits) | closed flag (bit 31) | workers inside the region (bits 0–30).
  static constexpr uint64_t kClosed = uint64_t(1) << 31;
  static constexpr uint64_t kCountMask = kClosed - 1;

  void workerLoop(int index);
  void drain(int worker);

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::atomic<uint64_t> state_{kClosed};
  std::atomic<int> sleepers_{0};
  std::atomic<int> next_{0};
  std::atomic<int> spinMicros_{300};
  std::atomic<bool> stop_{false};
  int count_ = 0;
  const Task* fn_ = nullptr;
};

}  // namespace adabatch
