#include "thread_pool.h"

#include <immintrin.h>

#include <chrono>

namespace adabatch {

namespace {
thread_local bool tInsideTask = false;

struct InsideTask {
  bool saved;
  InsideTask() : saved(tInsideTask) { tInsideTask = true; }
  ~InsideTask() { tInsideTask = saved; }
};
}  // namespace

ThreadPool::ThreadPool(int threads) {
  for (int i = 1; i < threads; i++) workers_.emplace_back([this, i] { workerLoop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::drain(int worker) {
  InsideTask inside;
  for (;;) {
    int t = next_.fetch_add(1, std::memory_order_relaxed);
    if (t >= count_) break;
    (*fn_)(t, worker);
  }
}

void ThreadPool::run(int count, const Task& fn) {
  if (count <= 0) return;
  if (workers_.empty() || count == 1 || tInsideTask) {
    InsideTask inside;
    for (int t = 0; t < count; t++) fn(t, 0);
    return;
  }
  fn_ = &fn;
  count_ = count;
  next_.store(0, std::memory_order_relaxed);
  busy_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
  generation_.fetch_add(1);  // seq_cst: publishes fn_/count_ and orders against sleepers_
  if (sleepers_.load() > 0) {
    std::lock_guard<std::mutex> lock(mu_);
    wake_.notify_all();
  }
  drain(0);
  while (busy_.load(std::memory_order_acquire) != 0) _mm_pause();
  fn_ = nullptr;
}

void ThreadPool::workerLoop(int index) {
  uint64_t seen = 0;
  for (;;) {
    // Spin for a while: the next kernel usually follows within microseconds.
    auto start = std::chrono::steady_clock::now();
    int spins = 0;
    while (generation_.load(std::memory_order_acquire) == seen) {
      _mm_pause();
      if (++spins == 256) {
        spins = 0;
        auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start).count();
        if (us > spinMicros_.load(std::memory_order_relaxed)) break;
      }
    }
    if (generation_.load() == seen) {
      std::unique_lock<std::mutex> lock(mu_);
      sleepers_.fetch_add(1);
      wake_.wait(lock, [&] { return generation_.load() != seen; });
      sleepers_.fetch_sub(1);
    }
    seen = generation_.load();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
    }
    drain(index);
    busy_.fetch_sub(1, std::memory_order_release);
  }
}

}  // namespace adabatch
