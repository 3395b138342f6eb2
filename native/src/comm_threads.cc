// The `threads` transport: ranks are worker_threads of one process, so every rank's buffers are
// reachable through the process-global registry and a collective is plain memory traffic between
// two rendezvous:
//   1. every rank posts its call; the last to arrive snapshots all calls (keeping each rank's
//      buffers alive) and every rank checks that the calls match (same collective, sizes, dtype);
//   2. each rank does its share: all-reduce — its 1/size slice of the buffer, summed over ranks in
//      rank order and written to every rank's buffer; reduce-scatter — its own shard; all-gather —
//      its own output; broadcast — its own copy;
//   3. a second rendezvous, so no rank reuses a buffer another rank may still read or write.
// Every element is summed exactly once, in rank order, so all ranks hold the same bits.
// Waits are timed: a rendezvous that outlives the deadline, an abort from any rank (or from the
// launcher), or a rank that left the group fails the collective on every rank.
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <sstream>
#include <unordered_map>

#include "comm.h"

namespace adabatch {
namespace comm {

namespace {

struct Group {
  explicit Group(int n) : size(n), posted(n, nullptr), inside(n, 0), joined(n, 0), left(n, 0) {}
  const int size;
  std::mutex mu;
  std::condition_variable cv;
  // Written under mu; also read without it by ranks spinning before they sleep.
  std::atomic<uint64_t> generation{0};
  int arrived = 0;
  std::vector<const Job*> posted;
  std::vector<char> inside;
  std::vector<char> joined;
  std::vector<char> left;
  // The calls of the last completed first rendezvous (copies: they hold the buffers alive).
  std::vector<Job> snapshot;
  bool aborted = false;
  std::string reason;
  const char* code = kAborted;
};

struct Registry {
  std::mutex mu;
  std::unordered_map<int, std::shared_ptr<Group>> groups;
  int next = 1;
};

// Ranks usually reach a rendezvous within microseconds of each other: a waiting rank spins this
// long before it sleeps on the condition variable (a wake-up costs tens of microseconds).
constexpr int kSpinMicros = 50;

// Leaked on purpose, like the buffer registry: worker threads may outlive static destruction.
Registry& registryOfGroups() {
  static Registry* r = new Registry();
  return *r;
}

std::shared_ptr<Group> findGroup(int id) {
  Registry& r = registryOfGroups();
  std::lock_guard<std::mutex> lock(r.mu);
  auto it = r.groups.find(id);
  return it == r.groups.end() ? nullptr : it->second;
}

void abortLocked(Group& g, const std::string& reason, const char* code) {
  if (g.aborted) return;
  g.aborted = true;
  g.reason = reason;
  g.code = code;
  g.cv.notify_all();
}

std::string rankList(const std::vector<int>& ranks) {
  std::ostringstream s;
  for (size_t i = 0; i < ranks.size(); i++) s << (i ? ", " : "") << ranks[i];
  return s.str();
}

std::string seconds(double s) {
  std::ostringstream o;
  o << s;
  return o.str();
}

// acc = Σ_k src[k][i] (rank order), optionally × 1/size, copied to every dst; blocked so the sum
// stays in L1 and each source and destination is streamed once.
template <class T>
void reduceBlocked(const std::vector<const T*>& src, const std::vector<T*>& dst, size_t n, bool avg) {
  constexpr size_t kBlock = 2048;
  alignas(64) T acc[kBlock];
  const T inv = T(1) / static_cast<T>(src.size());
  for (size_t i = 0; i < n; i += kBlock) {
    const size_t len = std::min(kBlock, n - i);
    const T* s0 = src[0] + i;
    for (size_t j = 0; j < len; j++) acc[j] = s0[j];
    for (size_t k = 1; k < src.size(); k++) {
      const T* sk = src[k] + i;
      for (size_t j = 0; j < len; j++) acc[j] += sk[j];
    }
    if (avg) {
      for (size_t j = 0; j < len; j++) acc[j] *= inv;
    }
    for (T* d : dst) std::memcpy(d + i, acc, len * sizeof(T));
  }
}

template <class T>
void allReduceSlice(const std::vector<Job>& calls, int rank, bool avg) {
  const size_t n = calls[0].a.count;
  const size_t size = calls.size();
  // 64-byte aligned slices, so ranks never write the same cache line.
  constexpr size_t kAlignElems = 64 / sizeof(T);
  const size_t chunk = (n / size + (n % size != 0) + kAlignElems - 1) / kAlignElems * kAlignElems;
  const size_t begin = std::min(n, static_cast<size_t>(rank) * chunk);
  const size_t end = std::min(n, begin + chunk);
  if (begin == end) return;
  std::vector<const T*> src;
  std::vector<T*> dst;
  for (const Job& c : calls) {
    T* p = reinterpret_cast<T*>(c.a.ptr) + begin;
    src.push_back(p);
    if (std::find(dst.begin(), dst.end(), p) == dst.end()) dst.push_back(p);
  }
  reduceBlocked<T>(src, dst, end - begin, avg);
}

template <class T>
void reduceScatterShard(const std::vector<Job>& calls, int rank, const Job& mine, bool avg) {
  const size_t shard = mine.a.count;
  std::vector<const T*> src;
  for (const Job& c : calls) src.push_back(reinterpret_cast<const T*>(c.b.ptr) + static_cast<size_t>(rank) * shard);
  reduceBlocked<T>(src, {reinterpret_cast<T*>(mine.a.ptr)}, shard, avg);
}

class ThreadTransport : public Transport {
 public:
  ThreadTransport(std::shared_ptr<Group> g, int rank) : g_(std::move(g)), rank_(rank) {}
  ~ThreadTransport() override { leave(); }

  int rank() const override { return rank_; }
  int size() const override { return g_->size; }
  int localSize() const override { return g_->size; }

  void run(Job& job) override {
    std::vector<Job> calls = arrive(job, true);
    checkMatch(calls);
    if (job.kind == Kind::Barrier) return;
    compute(calls, job);
    arrive(job, false);
  }

  void abort(const std::string& reason) override {
    std::lock_guard<std::mutex> lock(g_->mu);
    abortLocked(*g_, reason, kAborted);
  }

  void abortNow(const std::string&) override {}

  void close() override { leave(); }

 private:
  void leave() {
    if (left_) return;
    left_ = true;
    std::lock_guard<std::mutex> lock(g_->mu);
    g_->left[rank_] = 1;
    g_->cv.notify_all();
  }

  [[noreturn]] void throwAborted() const { throw CommError(g_->code, g_->reason); }

  // One rendezvous. With `post`, this rank's call joins the snapshot, and the snapshot is returned.
  std::vector<Job> arrive(const Job& job, bool post) {
    Group& g = *g_;
    std::unique_lock<std::mutex> lock(g.mu);
    if (g.aborted) throwAborted();
    const uint64_t gen = g.generation.load();
    if (post) g.posted[rank_] = &job;
    g.inside[rank_] = 1;
    if (++g.arrived == g.size) {
      if (post) {
        g.snapshot.clear();
        for (const Job* p : g.posted) g.snapshot.push_back(*p);
        std::fill(g.posted.begin(), g.posted.end(), nullptr);
      }
      g.arrived = 0;
      std::fill(g.inside.begin(), g.inside.end(), 0);
      g.generation.fetch_add(1);
      g.cv.notify_all();
      return post ? g.snapshot : std::vector<Job>();
    }
    lock.unlock();
    const auto spinUntil = Clock::now() + std::chrono::microseconds(kSpinMicros);
    for (int n = 1; g.generation.load(std::memory_order_acquire) == gen; n++) {
      _mm_pause();
      if ((n & 63) == 0 && Clock::now() > spinUntil) break;
    }
    lock.lock();
    for (;;) {
      if (g.generation.load() != gen) return post ? g.snapshot : std::vector<Job>();
      if (g.aborted) throwAborted();
      for (int k = 0; k < g.size; k++) {
        if (g.left[k] && !g.inside[k]) {
          abortLocked(g, "rank " + std::to_string(k) + " left the group while rank " + std::to_string(rank_) + " waits in " + job.describe(), kAborted);
          throwAborted();
        }
      }
      if (g.cv.wait_until(lock, job.deadline) == std::cv_status::timeout && g.generation.load() == gen && !g.aborted) {
        std::vector<int> missing;
        for (int k = 0; k < g.size; k++) {
          if (!g.inside[k]) missing.push_back(k);
        }
        abortLocked(g, "rank " + std::to_string(rank_) + ": " + job.describe() + " timed out after " + seconds(job.timeoutSeconds) + " s waiting for rank(s) " + rankList(missing) + " (the dist timeout)", kTimeout);
        throwAborted();
      }
    }
  }

  void checkMatch(const std::vector<Job>& calls) {
    const Job& ref = calls[0];
    for (int k = 1; k < g_->size; k++) {
      const Job& c = calls[k];
      const bool same = c.kind == ref.kind && c.op == ref.op && c.root == ref.root && c.a.count == ref.a.count && c.b.count == ref.b.count &&
                        (c.a.count == 0 || c.a.dtype == ref.a.dtype) && c.scalars.size() == ref.scalars.size();
      if (!same) {
        std::lock_guard<std::mutex> lock(g_->mu);
        abortLocked(*g_, "collective mismatch: rank 0 called " + ref.describe() + " but rank " + std::to_string(k) + " called " + c.describe(), kFailed);
        throwAborted();
      }
    }
  }

  void compute(const std::vector<Job>& calls, Job& mine) {
    const bool avg = mine.op == Op::Avg;
    const bool f64 = mine.a.dtype == DType::F64;
    switch (mine.kind) {
      case Kind::AllReduce:
        if (f64) allReduceSlice<double>(calls, rank_, avg);
        else allReduceSlice<float>(calls, rank_, avg);
        break;
      case Kind::ReduceScatter:
        if (f64) reduceScatterShard<double>(calls, rank_, mine, avg);
        else reduceScatterShard<float>(calls, rank_, mine, avg);
        break;
      case Kind::AllGather: {
        const size_t shardBytes = mine.b.bytes();
        for (int k = 0; k < g_->size; k++) {
          char* dst = mine.a.ptr + static_cast<size_t>(k) * shardBytes;
          if (dst != calls[k].b.ptr) std::memcpy(dst, calls[k].b.ptr, shardBytes);
        }
        break;
      }
      case Kind::Broadcast:
        if (rank_ != mine.root && mine.a.ptr != calls[mine.root].a.ptr) std::memcpy(mine.a.ptr, calls[mine.root].a.ptr, mine.a.bytes());
        break;
      case Kind::Scalars: {
        mine.result.assign(mine.scalars.size(), 0.0);
        for (size_t i = 0; i < mine.result.size(); i++) {
          double s = calls[0].scalars[i];
          for (int k = 1; k < g_->size; k++) s += calls[k].scalars[i];
          mine.result[i] = avg ? s / g_->size : s;
        }
        break;
      }
      default:
        break;
    }
  }

  std::shared_ptr<Group> g_;
  int rank_;
  bool left_ = false;
};

}  // namespace

namespace threadgroup {

int create(int size) {
  Registry& r = registryOfGroups();
  std::lock_guard<std::mutex> lock(r.mu);
  const int id = r.next++;
  r.groups.emplace(id, std::make_shared<Group>(size));
  return id;
}

bool abort(int id, const std::string& reason) {
  std::shared_ptr<Group> g = findGroup(id);
  if (!g) return false;
  std::lock_guard<std::mutex> lock(g->mu);
  abortLocked(*g, reason, kAborted);
  return true;
}

void release(int id) {
  Registry& r = registryOfGroups();
  std::lock_guard<std::mutex> lock(r.mu);
  r.groups.erase(id);
}

std::unique_ptr<Transport> join(int id, int rank) {
  std::shared_ptr<Group> g = findGroup(id);
  if (!g) throw CommError(kFailed, "thread group " + std::to_string(id) + " does not exist (released, or created in another process)");
  std::lock_guard<std::mutex> lock(g->mu);
  if (rank < 0 || rank >= g->size) throw CommError(kFailed, "rank " + std::to_string(rank) + " is outside thread group " + std::to_string(id) + " of size " + std::to_string(g->size));
  if (g->joined[rank]) throw CommError(kFailed, "rank " + std::to_string(rank) + " already joined thread group " + std::to_string(id));
  g->joined[rank] = 1;
  return std::make_unique<ThreadTransport>(g, rank);
}

}  // namespace threadgroup
}  // namespace comm
}  // namespace adabatch
