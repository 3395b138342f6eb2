// The process-global buffer registry: id → 64-byte-aligned, zero-filled allocation.
//
// Process-global and thread-safe on purpose: data-parallel ranks are worker_threads of one process,
// each with its own backend instance, and native collectives reach any rank's buffer by id. An
// Allocation is reference-counted, so a kernel that looked a buffer up keeps its memory alive even
// if another thread frees the id meanwhile (the id is gone at once; the memory when the last user
// finishes).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "dtype.h"

namespace adabatch {

struct Allocation {
  uint64_t id = 0;
  void* ptr = nullptr;
  size_t elems = 0;  // capacity in elements of dtype
  size_t bytes = 0;  // elems · dtypeBytes (the accounted size)
  size_t mapped = 0; // bytes actually reserved (rounded up)
  DType dtype = DType::F32;
  uint64_t owner = 0;  // the backend instance (Context) that allocated it
  bool viaMmap = false;

  Allocation() = default;
  Allocation(const Allocation&) = delete;
  Allocation& operator=(const Allocation&) = delete;
  ~Allocation();
};

using AllocationPtr = std::shared_ptr<Allocation>;

namespace registry {

// Allocates and registers a zero-filled buffer; throws std::bad_alloc when memory is exhausted.
AllocationPtr create(size_t elems, DType dtype, uint64_t owner);
// The live allocation with this id, or null.
AllocationPtr find(uint64_t id);
// Unregisters the id and returns its allocation (null when absent).
AllocationPtr remove(uint64_t id);
// Unregisters every allocation of an owner (a backend instance being destroyed).
std::vector<AllocationPtr> removeOwnedBy(uint64_t owner);
// True when `id` was handed out at some point (so an absent id was freed, not invented).
bool wasIssued(uint64_t id);
size_t liveCount();
// A fresh owner id for a backend instance.
uint64_t newOwnerId();

}  // namespace registry

// Aligned, zero-filled scratch memory owned by C++ code (not registered).
void* alignedZeroAlloc(size_t bytes, size_t* reserved, bool* viaMmap);
void alignedFree(void* p, size_t reserved, bool viaMmap);

}  // namespace adabatch
