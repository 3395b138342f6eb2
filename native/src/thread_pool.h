// A small fork-join pool owned by one backend instance: `threads - 1` workers plus the calling
// thread. Workers spin briefly after a parallel region (kernels come back-to-back within a training
// step) and then sleep on a condition variable, so an idle backend costs no CPU.
//
// OpenBLAS runs single-threaded inside pool tasks (see gemm.h): the pool is the only source of
// parallelism, so BLAS threads and kernel threads never compete for the cores.
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
  // Runs fn for every task in [0, count) and returns when all are done. Tasks are handed out
  // dynamically; a call from inside a task runs serially (no nested parallelism).
  void run(int count, const Task& fn);
  // How long idle workers spin before sleeping, in microseconds.
  void setSpinMicros(int us) { spinMicros_.store(us); }

 private:
  void workerLoop(int index);
  void drain(int worker);

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<int> busy_{0};
  std::atomic<int> next_{0};
  std::atomic<int> spinMicros_{300};
  int count_ = 0;
  const Task* fn_ = nullptr;
  bool stop_ = false;
};

}  // namespace adabatch
