#include "registry.h"

#include <sys/mman.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <shared_mutex>
#include <unordered_map>

namespace adabatch {

namespace {

constexpr size_t kAlign = 64;
// Large buffers come straight from mmap: page-aligned, already zero, returned to the system on
// free, and resident only once touched. AddressSanitizer builds use the heap so every buffer gets
// redzones.
#if defined(__SANITIZE_ADDRESS__)
constexpr size_t kMmapThreshold = SIZE_MAX;
#else
constexpr size_t kMmapThreshold = size_t(1) << 20;
#endif

struct State {
  std::shared_mutex mu;
  std::unordered_map<uint64_t, AllocationPtr> byId;
  std::atomic<uint64_t> nextId{1};
  std::atomic<uint64_t> nextOwner{1};
};

// Leaked on purpose: worker threads may still free buffers while the process exits.
State& state() {
  static State* s = new State();
  return *s;
}

}  // namespace

void* alignedZeroAlloc(size_t bytes, size_t* reserved, bool* viaMmap) {
  size_t size = (bytes + kAlign - 1) / kAlign * kAlign;
  if (size == 0) size = kAlign;
  if (size >= kMmapThreshold) {
    // 2 MiB-aligned and advised as transparent huge pages: GEMM operand packing walks rows of
    // large matrices, and 4 KiB pages cost a TLB miss per row.
    const size_t huge = size_t(2) << 20;
    size = (size + huge - 1) / huge * huge;
    const size_t over = size + huge;
    void* raw = mmap(nullptr, over, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) throw std::bad_alloc();
    const uintptr_t start = reinterpret_cast<uintptr_t>(raw);
    const uintptr_t aligned = (start + huge - 1) / huge * huge;
    if (aligned > start) munmap(raw, aligned - start);
    const uintptr_t end = aligned + size;
    if (start + over > end) munmap(reinterpret_cast<void*>(end), start + over - end);
    void* p = reinterpret_cast<void*>(aligned);
    madvise(p, size, MADV_HUGEPAGE);
    *reserved = size;
    *viaMmap = true;
    return p;
  }
  void* p = nullptr;
  if (posix_memalign(&p, kAlign, size) != 0 || p == nullptr) throw std::bad_alloc();
  std::memset(p, 0, size);
  *reserved = size;
  *viaMmap = false;
  return p;
}

void alignedFree(void* p, size_t reserved, bool viaMmap) {
  if (!p) return;
  if (viaMmap) munmap(p, reserved);
  else std::free(p);
}

Allocation::~Allocation() { alignedFree(ptr, mapped, viaMmap); }

namespace registry {

AllocationPtr create(size_t elems, DType dtype, uint64_t owner) {
  auto a = std::make_shared<Allocation>();
  a->elems = elems;
  a->bytes = elems * dtypeBytes(dtype);
  a->dtype = dtype;
  a->owner = owner;
  a->ptr = alignedZeroAlloc(a->bytes, &a->mapped, &a->viaMmap);
  State& s = state();
  a->id = s.nextId.fetch_add(1);
  std::unique_lock<std::shared_mutex> lock(s.mu);
  s.byId.emplace(a->id, a);
  return a;
}

AllocationPtr find(uint64_t id) {
  State& s = state();
  std::shared_lock<std::shared_mutex> lock(s.mu);
  auto it = s.byId.find(id);
  return it == s.byId.end() ? nullptr : it->second;
}

AllocationPtr remove(uint64_t id) {
  State& s = state();
  std::unique_lock<std::shared_mutex> lock(s.mu);
  auto it = s.byId.find(id);
  if (it == s.byId.end()) return nullptr;
  AllocationPtr a = std::move(it->second);
  s.byId.erase(it);
  return a;
}

std::vector<AllocationPtr> removeOwnedBy(uint64_t owner) {
  State& s = state();
  std::vector<AllocationPtr> out;
  std::unique_lock<std::shared_mutex> lock(s.mu);
  for (auto it = s.byId.begin(); it != s.byId.end();) {
    if (it->second->owner == owner) {
      out.push_back(std::move(it->second));
      it = s.byId.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

bool wasIssued(uint64_t id) { return id >= 1 && id < state().nextId.load(); }

size_t liveCount() {
  State& s = state();
  std::shared_lock<std::shared_mutex> lock(s.mu);
  return s.byId.size();
}

uint64_t newOwnerId() { return state().nextOwner.fetch_add(1); }

}  // namespace registry
}  // namespace adabatch
