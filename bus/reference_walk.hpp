// detail::walk_references: the one walk over everything in a topic region that records a chunk
// reference (layout.hpp rule 2): ring slots, publishers' loan rows and subscribers' hold rows.
// Tools (stats, busy chunks), snapshots and the reference audit all read the region through it.
// The damage check (damage.cpp) reads rows raw instead: the out-of-range entries it looks for
// are exactly what this walk never reports.
//
// Every chunk index it reports has been bounds-checked (TopicMap::valid_chunk), and every loop
// is bounded by the validated configuration, never by a value read from shared memory: a
// scribbled row can make the walk report nonsense, never read outside the mapping.
#pragma once

#include <atomic>
#include <cstdint>
#include <type_traits>

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
// A walked client slot, reported before its rows (to visitors that accept it: statistics list
// every live client, whether it holds anything or not).
struct SlotReference {
  enum class Role { publisher, subscriber } role;
  std::uint32_t slot;
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
// e.g. a struct with three operator()s), and visit(const SlotReference&) on entering each walked
// client slot. Kinds the visitor does not accept are not walked at all (a snapshot reads only
// hold rows). Acquire loads throughout: the audit needs each entry ordered after the slot state
// it read (pairs with the owners' release stores of state and rows); tools pay nothing for it
// on x86.
template <typename Visitor>
void walk_references(const TopicMap& m, SlotsWalked slots, Visitor&& visit) {
  constexpr bool kRing = std::is_invocable_v<Visitor&, const RingReference&>;
  constexpr bool kLoans = std::is_invocable_v<Visitor&, const LoanReference&>;
  constexpr bool kHolds = std::is_invocable_v<Visitor&, const HoldReference&>;
  constexpr bool kSlots = std::is_invocable_v<Visitor&, const SlotReference&>;
  auto walked = [slots](std::uint32_t state) {
    return slots == SlotsWalked::active ? state == kSlotActive : state != kSlotFree;
  };
  const TopicConfig& c = m.config();
  if constexpr (kRing) {
    for (std::uint64_t i = 0; i < m.ring_capacity(); ++i) {
      const RingSlot& rs = m.ring_slot(i);
      const std::uint32_t chunk = rs.chunk.load(std::memory_order_acquire);
      if (m.valid_chunk(chunk)) visit(RingReference{i, rs.commit.load(std::memory_order_acquire), chunk});
    }
  }
  if constexpr (kLoans || kSlots) {
    for (std::uint32_t p = 0; p < c.max_publishers; ++p) {
      const PublisherSlot& s = m.publisher(p);
      if (!walked(s.state.load(std::memory_order_acquire))) continue;
      if constexpr (kSlots) visit(SlotReference{SlotReference::Role::publisher, p});
      if constexpr (kLoans) {
        const std::uint32_t kept = s.kept_chunk.load(std::memory_order_acquire);
        const std::atomic<std::uint32_t>* row = m.loans_of(p);
        for (std::uint32_t l = 0; l < c.max_loans_per_publisher; ++l) {
          const std::uint32_t chunk = row[l].load(std::memory_order_acquire);
          if (m.valid_chunk(chunk)) visit(LoanReference{p, l, chunk, chunk == kept});
        }
      }
    }
  }
  if constexpr (kHolds || kSlots) {
    for (std::uint32_t sub = 0; sub < c.max_subscribers; ++sub) {
      if (!walked(m.subscriber(sub).state.load(std::memory_order_acquire))) continue;
      if constexpr (kSlots) visit(SlotReference{SlotReference::Role::subscriber, sub});
      if constexpr (kHolds) {
        const std::atomic<std::uint32_t>* row = m.holds_of(sub);
        for (std::uint32_t h = 0; h < c.max_held_per_subscriber; ++h) {
          const std::uint32_t entry = row[h].load(std::memory_order_acquire);
          const std::uint32_t chunk = m.held_chunk(entry);
          if (chunk != kNoChunk) visit(HoldReference{sub, h, chunk, (entry & kHoldPinned) != 0});
        }
      }
    }
  }
}

}  // namespace shmbus::detail
