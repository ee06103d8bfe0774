// The metrics counters' writers (docs/metrics.md). Every counter here has exactly one writer,
// so it is bumped with a relaxed load and a relaxed store, never a locked read-modify-write:
// readers (tools, the daemon) only want a recent value, and no other memory access is ordered
// by it. Only failure paths and free-list pops call these; the steady-state hot path (loan of a
// kept chunk, publish, take, release) gains no instruction on a shared line.
#pragma once

#include <atomic>
#include <cstdint>

#include "../layout.hpp"
#include "shmbus/error.hpp"

// SHMBUS_NO_HOTPATH_COUNTERS (CMake: -DSHMBUS_METRICS_HOTPATH_COUNTERS=OFF, or the bench
// build's shmbus_nocounters library) compiles out every counter update below and the
// published-bytes sum in PublisherCore::publish: a library for measuring what the counters
// cost (docs/metrics.md, "What they cost, measured"), never for use.
#ifndef SHMBUS_NO_HOTPATH_COUNTERS
#define SHMBUS_NO_HOTPATH_COUNTERS 0
#endif

namespace shmbus::detail {

inline constexpr bool kHotPathCounters = SHMBUS_NO_HOTPATH_COUNTERS == 0;

inline void bump(std::atomic<std::uint64_t>& counter) noexcept {
  if constexpr (!kHotPathCounters) return;
  counter.store(counter.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

// A publish that failed with `err` (claim or lap wait): counted as refused (fail_publish) or
// timed out (block); other failures (region lost, misuse) are not losses of the policy.
inline void count_publish_failure(PublisherSlot& me, Errc err) noexcept {
  if (err == Errc::subscriber_queue_full) bump(me.refused);
  else if (err == Errc::timeout) bump(me.timed_out);
}

inline void count_loan_failure(PublisherSlot& me, Errc err) noexcept {
  if (err == Errc::pool_exhausted) bump(me.loan_pool_exhausted);
  else if (err == Errc::too_many_loans) bump(me.loan_too_many_loans);
  else if (err == Errc::message_too_large) bump(me.loan_too_large);
}

// After the pool owner's pop that installed head word `new_head` (layout.hpp, FreeList): counts
// the pop and raises the class's high-water mark. A count that disagrees with the tag (an owner
// killed between its CAS and this store) gives a value above the class size: ignored.
inline void count_pop(FreeList& list, std::uint64_t new_head, std::uint32_t chunk_count) noexcept {
  if constexpr (!kHotPathCounters) return;
  const std::uint32_t pops = list.pops.load(std::memory_order_relaxed) + 1;
  list.pops.store(pops, std::memory_order_relaxed);
  const std::uint32_t out = 2 * pops - static_cast<std::uint32_t>(new_head >> 32);  // mod 2^32
  if (out <= chunk_count && out > list.high_water.load(std::memory_order_relaxed)) {
    list.high_water.store(out, std::memory_order_relaxed);
  }
}

// After a publish of `bytes` payload bytes: the publisher's own published_bytes (its slot's
// line 1, which no other party reads on the data path).
inline void count_published_bytes(PublisherSlot& me, std::uint64_t bytes) noexcept {
  if constexpr (!kHotPathCounters) return;
  me.published_bytes.store(me.published_bytes.load(std::memory_order_relaxed) + bytes, std::memory_order_relaxed);
}

}  // namespace shmbus::detail
