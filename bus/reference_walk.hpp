// detail::walk_references: the one walk over everything in a topic region that records a chunk
// reference (layout.hpp rule 2): ring slots, publishers' loan rows and subscribers' hold rows.
// Tools (stats, busy chunks), snapshots and the reference audit all read the region through it.
//
// Every chunk index it reports has been bounds-checked (TopicMap::valid_chunk), and every loop
// is bounded by the validated configuration, never by a value read from shared memory: a
// scribbled row can make the walk report nonsense, never read outside the mapping.
#pragma once

#include <atomic>
#include <cstdint>

#include "layout.hpp"
#include "topic_map.hpp"

namespace shmbus::detail {

// Which client slots the walk visits.
enum class SlotsWalked {
  active,    // registered owners only: what live clients hold (tools)
  not_free,  // also slots being claimed or reclaimed, whose rows still count (the audit)
};

// A ring slot that names a chunk. `commit` is 0 when the slot was never committed.
struct RingReference {
  std::uint64_t index;
  std::uint64_t commit;
  std::uint32_t chunk;
};
// A loan-row entry; `kept` when it is the chunk the publisher only keeps for its next loan.
struct LoanReference {
  std::uint32_t publisher;
  std::uint32_t row;
  std::uint32_t chunk;
  bool kept;
};
// A hold-row entry; `pinned` when it holds no counted reference (kHoldPinned).
struct HoldReference {
  std::uint32_t subscriber;
  std::uint32_t row;
  std::uint32_t chunk;
  bool pinned;
};

// Calls visit(const RingReference&), visit(const LoanReference&) and visit(const HoldReference&)
// for each recorded reference, ring first, then publishers, then subscribers (an overload set,
// e.g. a struct with three operator()s). Acquire loads throughout: the audit needs each entry
// ordered after the slot state it read (pairs with the owners' release stores of state and
// rows); tools pay nothing for it on x86.
template <typename Visitor>
void walk_references(const TopicMap& m, SlotsWalked slots, Visitor&& visit) {
  auto walked = [slots](std::uint32_t state) {
    return slots == SlotsWalked::active ? state == kSlotActive : state != kSlotFree;
  };
  const TopicConfig& c = m.config();
  for (std::uint64_t i = 0; i < m.ring_capacity(); ++i) {
    const RingSlot& rs = m.ring_slot(i);
    const std::uint32_t chunk = rs.chunk.load(std::memory_order_acquire);
    if (m.valid_chunk(chunk)) visit(RingReference{i, rs.commit.load(std::memory_order_acquire), chunk});
  }
  for (std::uint32_t p = 0; p < c.max_publishers; ++p) {
    const PublisherSlot& s = m.publisher(p);
    if (!walked(s.state.load(std::memory_order_acquire))) continue;
    const std::uint32_t kept = s.kept_chunk.load(std::memory_order_acquire);
    const std::atomic<std::uint32_t>* row = m.loans_of(p);
    for (std::uint32_t l = 0; l < c.max_loans_per_publisher; ++l) {
      const std::uint32_t chunk = row[l].load(std::memory_order_acquire);
      if (m.valid_chunk(chunk)) visit(LoanReference{p, l, chunk, chunk == kept});
    }
  }
  for (std::uint32_t sub = 0; sub < c.max_subscribers; ++sub) {
    if (!walked(m.subscriber(sub).state.load(std::memory_order_acquire))) continue;
    const std::atomic<std::uint32_t>* row = m.holds_of(sub);
    for (std::uint32_t h = 0; h < c.max_held_per_subscriber; ++h) {
      const std::uint32_t entry = row[h].load(std::memory_order_acquire);
      const std::uint32_t chunk = m.held_chunk(entry);
      if (chunk != kNoChunk) visit(HoldReference{sub, h, chunk, (entry & kHoldPinned) != 0});
    }
  }
}

}  // namespace shmbus::detail
