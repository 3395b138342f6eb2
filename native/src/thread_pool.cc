#include "thread_pool.h"

#include <immintrin.h>
#include <sched.h>

#include <chrono>

namespace adabatch {

namespace {
thread_local bool tInsideTask = false;

struct InsideTask {
  bool saved;
  InsideTask() : saved(tInsideTask) { tInsideTask = true; }
  ~InsideTask() { tInsideTask = saved; }
};

inline uint32_t generationOf(uint64_t s) { return static_cast<uint32_t>(s >> 32); }
}  // namespace

ThreadPool::ThreadPool(int threads) {
  for (int i = 1; i < threads; i++) workers_.emplace_back([this, i] { workerLoop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
    state_.fetch_add(uint64_t(1) << 32);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::drain(int worker) {
  InsideTask inside;
  for (;;) {
    const int t = next_.fetch_add(1, std::memory_order_relaxed);
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
  // Open the region: next generation, not closed, nobody inside (seq_cst publishes fn_/count_).
  const uint64_t open = (static_cast<uint64_t>(generationOf(state_.load()) + 1)) << 32;
  state_.store(open);
  if (sleepers_.load() > 0) {
    std::lock_guard<std::mutex> lock(mu_);
    wake_.notify_all();
  }
  drain(0);
  // Close the region (late workers will not join) and wait for the workers that did join.
  uint64_t s = state_.fetch_or(kClosed);
  int spins = 0;
  while ((s & kCountMask) != 0) {
    if (++spins > 2000) sched_yield();
    else _mm_pause();
    s = state_.load(std::memory_order_acquire);
  }
  fn_ = nullptr;
}

void ThreadPool::workerLoop(int index) {
  uint32_t seen = generationOf(state_.load());
  for (;;) {
    // Wait for a new generation: spin, then yield, then sleep.
    auto start = std::chrono::steady_clock::now();
    int spins = 0;
    bool yielding = false;
    while (generationOf(state_.load(std::memory_order_acquire)) == seen) {
      if (yielding) sched_yield();
      else _mm_pause();
      if (++spins == 128) {
        spins = 0;
        const auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start).count();
        const int limit = spinMicros_.load(std::memory_order_relaxed);
        if (us > limit) break;
        yielding = us > limit / 4;
      }
    }
    if (generationOf(state_.load()) == seen) {
      std::unique_lock<std::mutex> lock(mu_);
      sleepers_.fetch_add(1);
      wake_.wait(lock, [&] { return generationOf(state_.load()) != seen; });
      sleepers_.fetch_sub(1);
    }
    if (stop_.load()) return;
    // Join the region if it is still open.
    uint64_t s = state_.load();
    seen = generationOf(s);
    bool joined = false;
    while (generationOf(s) == seen && !(s & kClosed)) {
      if (state_.compare_exchange_weak(s, s + 1)) {
        joined = true;
        break;
      }
    }
    if (!joined) continue;
    drain(index);
    state_.fetch_sub(1, std::memory_order_release);
  }
}

}  // namespace adabatch
