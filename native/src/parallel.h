// Fixed-size partitions for the pool. Partitions depend only on the problem size, never on the
// thread count, and reductions combine per-partition partial results in partition order: results
// are bit-identical for any number of threads.
#pragma once
#include <algorithm>
#include <cstddef>

#include "thread_pool.h"

namespace adabatch {

// Elements per partition of flat elementwise loops (fits L2 comfortably).
constexpr size_t kElemChunk = size_t(1) << 15;

inline size_t ceilDiv(size_t a, size_t b) { return (a + b - 1) / b; }

// f(begin, end, part) over [0, n) in parts of `chunk`.
template <class F>
void parallelRanges(ThreadPool& pool, size_t n, size_t chunk, F&& f) {
  const size_t parts = ceilDiv(n, chunk);
  if (parts == 0) return;
  if (parts == 1) {
    f(size_t(0), n, size_t(0));
    return;
  }
  pool.run(static_cast<int>(parts), [&](int part, int) {
    const size_t b = static_cast<size_t>(part) * chunk;
    f(b, std::min(n, b + chunk), static_cast<size_t>(part));
  });
}

// Rows per partition so that one partition holds about kElemChunk elements (at least 1 row).
inline size_t rowsPerPart(size_t rowWidth) { return std::max<size_t>(1, kElemChunk / std::max<size_t>(1, rowWidth)); }

}  // namespace adabatch
