// shmbus::Topic's clean-up after dead processes (its public reclaims, and the daemon's in
// bus/topic_admin.hpp): filling ring holes a dead publisher left, the reference audit, the
// recovery lock, and reclaiming dead owners' slots (layout.hpp protocol summary;
// docs/internals.md).
#include "shmbus/topic.hpp"

#include <algorithm>
#include <set>
#include <thread>
#include <vector>

#include "futex.hpp"
#include "process_identity.hpp"
#include "reference_walk.hpp"
#include "region.hpp"
#include "topic_admin.hpp"
#include "topic_map.hpp"

namespace shmbus {

using namespace detail;

namespace {

// Every chunk of the message chain starting at `head`.
std::set<std::uint32_t> chain_of(TopicMap& m, std::uint32_t head) {
  std::set<std::uint32_t> chain;
  for (std::uint32_t n = 0; n < m.config().max_segments && m.valid_chunk(head); ++n) {
    chain.insert(head);
    head = m.chunk(head).next_segment.load(std::memory_order_relaxed);
  }
  return chain;
}

// Drops the ring's reference to `old`, which a recoverer just replaced in a ring slot and
// committed over. Under drop-oldest, subscribers may pin it: as a publisher does after its
// commit, count their pins first, after a seq_cst fence (layout.hpp, protocol summary).
void drop_displaced(TopicMap& m, std::uint32_t old) {
  if (!m.valid_chunk(old)) return;
  if (m.policy_wire() == SlowSubscriberPolicyWire::kDropOldest) {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    m.count_pins_everywhere(old);
  }
  m.drop_ring_ref(old);
}

// A publisher that died between taking a sequence from `tail` and recording it leaves a ring
// slot that nobody will ever commit, and subscribers would wait at it forever (and publishers,
// a lap later). Fill every such hole below `tail` with a tombstone. A live publisher
// may be taking a sequence right now (claimed_plus1 == ~0): wait until it has recorded which,
// so that every uncommitted sequence we then find and no live publisher recorded is the dead
// one's. That matters because the claimant writes its slot with plain stores (layout.hpp):
// we must never write a slot a live publisher is about to write. False when a live publisher
// stayed in the middle of taking a sequence for a whole second, or past `deadline` (then try
// again later), or when the ring does not look like anything honest publishers leave (more
// laps of holes on one slot than max_laps below): then it waits for the daemon's damage
// check (detail::find_damage()).
bool fill_holes(TopicMap& m, std::uint32_t dead_slot, std::uint64_t deadline) {
  // Acquire: pairs with the release RMWs on tail, so every claimant of a sequence below
  // `tail` has its ~0 marker (or something later) visible to the loads below.
  const std::uint64_t tail = m.control().tail.load(std::memory_order_acquire);
  std::set<std::uint64_t> claimed_by_live;
  const std::uint64_t give_up = std::min(deadline, monotonic_ns() + 1'000'000'000);
  for (std::uint32_t p = 0; p < m.config().max_publishers; ++p) {
    if (p == dead_slot) continue;
    PublisherSlot& s = m.publisher(p);
    std::uint64_t c = s.claimed_plus1.load(std::memory_order_acquire);
    bool dead = false;
    for (; c == ~0ULL && s.state.load(std::memory_order_acquire) == kSlotActive;
         c = s.claimed_plus1.load(std::memory_order_acquire)) {
      // Another dead publisher, not reclaimed yet: its claim is a hole like dead_slot's.
      if ((dead = owner_liveness(s.pid.load(std::memory_order_relaxed), s.owner) == Liveness::dead)) break;
      if (monotonic_ns() >= give_up) return false;
      std::this_thread::yield();  // it is between two stores; it only needs the CPU
    }
    if (dead || s.state.load(std::memory_order_acquire) != kSlotActive) continue;
    if (c != 0 && c != ~0ULL) claimed_by_live.insert(c - 1);
  }
  // Slot by slot: a hole holds up the slot's later laps (their claimants wait for it), so one
  // slot can hold a chain of uncommitted sequences, one lap apart, as far as `tail`: one per
  // publisher slot at most (each holds one claim), plus the laps publishers gave up on
  // (PublisherCore::wait_for_previous_lap). `tail` and the commit words are shared memory,
  // so the walk is bounded by that, never by `tail` alone (a forged tail near 2^64).
  const std::uint64_t capacity = m.ring_capacity();
  const std::uint64_t max_laps = 2 * std::uint64_t{m.config().max_publishers} + 2;
  for (std::uint64_t slot = 0; slot < capacity; ++slot) {
    RingSlot& rs = m.ring_slot(slot);
    for (std::uint64_t lap = 0;; ++lap) {
      if (lap == max_laps) return false;  // no honest ring looks like this: left to find_damage()
      // Acquire: after the claims, so a live publisher that cleared its claim has its commit seen.
      const std::uint64_t commit = rs.commit.load(std::memory_order_acquire);
      const std::uint64_t next = commit == 0 ? slot : commit - 1 + capacity;  // the slot's next sequence
      if (next >= tail || claimed_by_live.count(next)) break;  // not claimed yet, or a live claim
      // `next` was claimed by a dead publisher. The slot's chunk belongs to the previous lap,
      // whose ring reference we now own. Chunk first, commit last: the publisher a lap ahead
      // waits for this commit before it writes.
      std::uint32_t old = rs.chunk.exchange(kNoChunk, std::memory_order_acq_rel);
      // Release: the lap-ahead publisher (acquire) sees the tombstone before it takes the slot.
      rs.commit.store(next + 1, std::memory_order_release);
      drop_displaced(m, old);
    }
  }
  return true;
}

// A process killed while it held a counted reference it had not recorded (a chunk just
// popped from the free list, a sample reference just taken, a loan just forgotten) leaves a
// count no row explains; a publisher killed inside commit, after its message replaced the
// previous one in a ring slot but before it dropped (or kept) that chunk's ring reference,
// leaves a ring bit no slot explains. Compare every chunk's count with what the rows record
// and release the excess, and drop every ring bit no slot holds, but only from a quiet,
// consistent view: no live slot may be inside such a window, or enter one, while we look
// (each slot's op_seq is odd inside one and changes with every one; a publisher is inside
// commit while its claim is set, and `published` changes with every commit). Returns false
// when the view was not quiet; the leak then waits for a later audit (the daemon's sweep
// retries every 500 ms).
bool audit_references_locked(TopicMap& m) {
  const TopicConfig& c = m.config();
  std::vector<std::uint64_t> before, after;
  // Quiet when no slot is inside a window: op_seq even, no foreign window open.
  auto read_ops = [&](std::vector<std::uint64_t>& out) {
    out.clear();
    bool quiet = true;
    for (std::uint32_t p = 0; p < c.max_publishers; ++p) {
      PublisherSlot& s = m.publisher(p);
      bool active = s.state.load(std::memory_order_acquire) != kSlotFree;
      // A claim in flight moves references between the loan row and the ring.
      std::uint64_t claim = active ? s.claimed_plus1.load(std::memory_order_acquire) : 0;
      out.push_back(active ? s.op_seq.load(std::memory_order_acquire) | (claim != 0 ? 1 : 0) : 0);
      quiet &= (out.back() & 1) == 0;
      // A whole commit between two reads leaves op_seq and the claim as they were. The count
      // is stored relaxed, so it only detects a change; acquire merely matches the loads above,
      // which carry the ordering.
      out.push_back(active ? s.published.load(std::memory_order_acquire) : 0);
    }
    for (std::uint32_t i = 0; i < c.max_subscribers; ++i) {
      SubscriberSlot& s = m.subscriber(i);
      bool active = s.state.load(std::memory_order_acquire) != kSlotFree;
      out.push_back(active ? s.op_seq.load(std::memory_order_acquire) : 0);
      quiet &= (out.back() & 1) == 0;
      out.push_back(active ? s.foreign_windows.load(std::memory_order_acquire) : 0);
      quiet &= (out.back() & 0xFFFF'FFFFu) == 0;
    }
    return quiet;
  };
  if (!read_ops(before)) return false;
  std::vector<std::uint32_t> count(m.total_chunks());
  std::vector<bool> ring_bit(m.total_chunks());
  for (std::uint32_t i = 0; i < m.total_chunks(); ++i) {
    const std::uint32_t refs = m.chunk(i).refs.load(std::memory_order_acquire);
    count[i] = refs & ~kRingRef;
    ring_bit[i] = (refs & kRingRef) != 0;
  }
  // In a quiet view no publisher is between its slot store and the drop of the chunk it
  // displaced, so a ring bit belongs to a chunk some slot holds. Rows of slots being claimed
  // or reclaimed count too; a pinned hold entry records no counted reference (layout.hpp).
  // The walk's acquire loads, as for every slot read in recovery; in a quiet view no slot
  // changes while we look, and what was stored before is ordered by the acquire loads of
  // op_seq and claims.
  std::vector<std::uint32_t> recorded(m.total_chunks(), 0);
  struct Recorded {
    std::vector<bool>& ring_bit;
    std::vector<std::uint32_t>& recorded;
    void operator()(const RingReference& r) const { ring_bit[r.chunk] = false; }
    void operator()(const LoanReference& r) const { ++recorded[r.chunk]; }
    void operator()(const HoldReference& r) const {
      if (!r.pinned) ++recorded[r.chunk];
    }
  };
  walk_references(m, SlotsWalked::not_free, Recorded{ring_bit, recorded});
  // Further segments of a live message carry one reference, owned by their head.
  for (std::uint32_t i = 0; i < m.total_chunks(); ++i) {
    if (count[i] == 0 && (m.chunk(i).refs.load(std::memory_order_relaxed) & kRingRef) == 0) continue;
    std::uint32_t seg = m.chunk(i).next_segment.load(std::memory_order_relaxed);
    for (std::uint32_t n = 1; n < c.max_segments && m.valid_chunk(seg); ++n) {
      ++recorded[seg];
      seg = m.chunk(seg).next_segment.load(std::memory_order_relaxed);
    }
  }
  if (!read_ops(after) || before != after) return false;
  for (std::uint32_t i = 0; i < m.total_chunks(); ++i) {
    for (std::uint32_t n = recorded[i]; n < count[i]; ++n) m.release(i);
    if (ring_bit[i]) drop_displaced(m, i);  // orphaned: no slot holds it
  }
  return true;
}

// How long a recoverer waits for the recovery lock when asked to wait.
constexpr std::uint64_t kRecoveryLockWaitNs = 2'000'000'000ULL;

// Mutual exclusion of recoverers (see TopicControl::recovery_lock).
class RecoveryLock {
 public:
  // Tries until `give_up` (CLOCK_MONOTONIC ns; now or earlier: once).
  RecoveryLock(TopicMap& m, std::uint64_t give_up) : word_(m.control().recovery_lock) {
    for (;;) {
      std::uint64_t now = monotonic_ns();
      std::uint64_t held = word_.load(std::memory_order_relaxed);
      // Held for over a second, or "taken" in the future (CLOCK_MONOTONIC is the same in every
      // process, so that is a forged word): taken over.
      bool stale = held != 0 && (now - std::min(held, now) > 1'000'000'000ULL || held > now + 1'000'000'000ULL);
      // Acquire: see everything the previous recoverer did before it let go.
      if ((held == 0 || stale) && word_.compare_exchange_strong(held, now, std::memory_order_acquire)) {
        mine_ = now;
        return;
      }
      if (now >= give_up) return;
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  }
  ~RecoveryLock() {
    std::uint64_t mine = mine_;
    // Release: our releases happen before the next recoverer's audit.
    if (mine != 0) word_.compare_exchange_strong(mine, 0, std::memory_order_release);
  }
  bool held() const noexcept { return mine_ != 0; }

 private:
  std::atomic<std::uint64_t>& word_;
  std::uint64_t mine_ = 0;
};

// Drops whichever reference the head of an unpublished message carries: still the loan, or
// already the ring bit (killed between converting it and writing the slot).
void drop_unpublished(TopicMap& m, std::uint32_t head) {
  if (m.chunk(head).refs.load(std::memory_order_acquire) & kRingRef) m.drop_ring_ref(head);
  else m.release(head);
}

// Reclaims publisher slot p (state kSlotReclaiming). False, with the slot active again for a
// later attempt, when it cannot be done yet: the hole it may have left cannot be found (see
// fill_holes()), or it died waiting for its slot's previous lap, whose claimant must be
// committed or reclaimed first: our tombstone would jump over that lap, which then nobody
// would tombstone, and its message's chunk would be left to the reference audit.
bool reclaim_publisher(TopicMap& m, std::uint32_t p, std::uint64_t deadline) {
  PublisherSlot& s = m.publisher(p);
  std::set<std::uint32_t> handled;
  std::uint64_t claim = s.claimed_plus1.load(std::memory_order_acquire);
  const bool recorded = claim != 0 && claim != ~0ULL;
  if ((claim == ~0ULL && !fill_holes(m, p, deadline)) ||
      (recorded && m.ring_slot(claim - 1).commit.load(std::memory_order_acquire) + m.ring_capacity() < claim)) {
    // Release: nothing of the slot changed; the next recoverer's acquire CAS takes it as it was.
    s.state.store(kSlotActive, std::memory_order_release);
    return false;
  }
  if (recorded) {
    std::uint64_t seq = claim - 1;
    std::uint32_t head = s.claim_chunk.load(std::memory_order_relaxed);
    handled = chain_of(m, head);
    RingSlot& rs = m.ring_slot(seq);
    std::uint64_t commit = rs.commit.load(std::memory_order_acquire);
    if (commit < seq + 1) {
      std::uint32_t old = kNoChunk;
      if (rs.chunk.load(std::memory_order_acquire) != head) {
        // Died before writing the slot: leave a tombstone so subscribers skip this sequence,
        // and free the message it never published.
        old = rs.chunk.exchange(kNoChunk, std::memory_order_acq_rel);
        if (m.valid_chunk(head)) drop_unpublished(m, head);
      }
      // Either way the slot now holds what it should for seq: make it visible.
      while (commit < seq + 1 &&
             !rs.commit.compare_exchange_weak(commit, seq + 1, std::memory_order_release, std::memory_order_acquire)) {
      }
      drop_displaced(m, old);
    }
  }
  for (std::uint32_t l = 0; l < m.config().max_loans_per_publisher; ++l) {
    std::uint32_t ch = m.loans_of(p)[l].exchange(kNoChunk, std::memory_order_relaxed);
    if (m.valid_chunk(ch) && !handled.count(ch)) m.release(ch);
  }
  s.claimed_plus1.store(0, std::memory_order_relaxed);
  // Release: the next owner of the slot sees the cleared rows.
  s.state.store(kSlotFree, std::memory_order_release);
  audit_references_locked(m);
  // Publishers may be asleep waiting for a slot we just committed a tombstone into, and
  // subscribers asleep waiting for that very sequence: nobody else will wake them (the
  // publishers behind the hole are blocked by it, or have already published and woken them
  // while it was still a hole). Seq_cst, like commit()'s Dekker pairing with sleepers.
  m.control().lap_futex.fetch_add(1, std::memory_order_seq_cst);
  futex_wake_all(&m.control().lap_futex);
  m.control().data_futex.fetch_add(1, std::memory_order_seq_cst);
  futex_wake_all(&m.control().data_futex);
  return true;
}

void reclaim_subscriber(TopicMap& m, std::uint32_t i) {
  SubscriberSlot& s = m.subscriber(i);
  for (std::uint32_t h = 0; h < m.config().max_held_per_subscriber; ++h) {
    std::uint32_t ch = m.holds_of(i)[h].exchange(kNoChunk, std::memory_order_relaxed);
    if (m.valid_chunk(ch)) m.release(ch);
  }
  s.state.store(kSlotFree, std::memory_order_release);
  audit_references_locked(m);
  TopicControl& ctl = m.control();
  ctl.subscriber_epoch.fetch_add(1, std::memory_order_release);  // publishers rescan
  ctl.space_futex.fetch_add(1, std::memory_order_seq_cst);
  futex_wake_all(&ctl.space_futex);  // a block-policy publisher may have waited for it
}

using Role = ClientSlotInfo::Role;

// The words every client slot has, whichever its role.
struct ClientSlotWords {
  std::atomic<std::uint32_t>& state;
  std::atomic<std::int32_t>& pid;
  std::atomic<std::uint64_t>& generation;
  const OwnerIdentity& owner;
};

ClientSlotWords words_of(TopicMap& m, Role role, std::uint32_t slot) {
  if (role == Role::publisher) {
    PublisherSlot& s = m.publisher(slot);
    return {s.state, s.pid, s.generation, s.owner};
  }
  SubscriberSlot& s = m.subscriber(slot);
  return {s.state, s.pid, s.generation, s.owner};
}

std::uint32_t slot_count(const TopicMap& m, Role role) {
  return role == Role::publisher ? m.config().max_publishers : m.config().max_subscribers;
}

// Calls visit(role, slot, words) for every client slot, publishers first, until it returns
// false.
template <typename Visit>
void for_each_client_slot(TopicMap& m, Visit&& visit) {
  for (Role role : {Role::publisher, Role::subscriber}) {
    for (std::uint32_t slot = 0; slot < slot_count(m, role); ++slot) {
      if (!visit(role, slot, words_of(m, role, slot))) return;
    }
  }
}

// Reclaims a slot this recoverer moved to kSlotReclaiming (recovery lock held).
bool reclaim_claimed(TopicMap& m, Role role, std::uint32_t slot, std::uint64_t deadline) {
  if (role == Role::publisher) return reclaim_publisher(m, slot, deadline);
  reclaim_subscriber(m, slot);
  return true;
}

// Topic::reclaim_slot(), waiting for the recovery lock (and live claims) only until `deadline`
// (CLOCK_MONOTONIC ns).
bool reclaim_slot_until(TopicMap& m, Role role, std::uint32_t slot, std::uint64_t generation, std::uint64_t deadline) {
  if (slot >= slot_count(m, role)) return false;
  RecoveryLock lock(m, deadline);
  if (!lock.held()) return false;
  ClientSlotWords s = words_of(m, role, slot);
  std::uint32_t active = kSlotActive;
  if (s.generation.load(std::memory_order_relaxed) != generation) return false;
  if (!s.state.compare_exchange_strong(active, kSlotReclaiming, std::memory_order_acquire)) return false;
  return reclaim_claimed(m, role, slot, deadline);
}

}  // namespace

namespace detail {

bool audit_references(const Topic& topic) {
  TopicMap& m = TopicAccess::map(topic);
  RecoveryLock lock(m, /*give_up=*/0);
  return lock.held() && audit_references_locked(m);
}

bool reclaim_slot(const Topic& topic, ClientSlotInfo::Role role, std::uint32_t slot, std::uint64_t generation) {
  return reclaim_slot_until(TopicAccess::map(topic), role, slot, generation, monotonic_ns() + kRecoveryLockWaitNs);
}

std::uint64_t publisher_generation(const Topic& topic, std::uint32_t slot) {
  const TopicMap& m = TopicAccess::map(topic);
  if (slot >= m.config().max_publishers) throw Error(Errc::misuse, "no publisher slot " + std::to_string(slot));
  return m.publisher(slot).generation.load(std::memory_order_relaxed);
}

std::uint64_t subscriber_generation(const Topic& topic, std::uint32_t slot) {
  const TopicMap& m = TopicAccess::map(topic);
  if (slot >= m.config().max_subscribers) throw Error(Errc::misuse, "no subscriber slot " + std::to_string(slot));
  return m.subscriber(slot).generation.load(std::memory_order_relaxed);
}

}  // namespace detail

std::size_t Topic::reclaim_dead_owners(std::chrono::nanoseconds budget) {
  TopicMap& m = *map_;
  const std::uint64_t deadline = monotonic_ns() + bounded_wait_ns(budget);
  std::size_t n = 0;
  for_each_client_slot(m, [&](Role role, std::uint32_t slot, const ClientSlotWords& s) {
    if (monotonic_ns() >= deadline) return false;
    // Generation first: if the slot is re-registered after this read, the reclaim below
    // finds another generation and leaves the new owner alone.
    std::uint64_t generation = s.generation.load(std::memory_order_acquire);
    if (s.state.load(std::memory_order_acquire) != kSlotActive) return true;
    if (owner_liveness(s.pid.load(std::memory_order_relaxed), s.owner) != Liveness::dead) return true;
    n += reclaim_slot_until(m, role, slot, generation, deadline) ? 1 : 0;
    return true;
  });
  return n;
}

std::size_t Topic::reclaim_process(pid_t pid) {
  TopicMap& m = *map_;
  const std::uint64_t deadline = monotonic_ns() + kRecoveryLockWaitNs;
  RecoveryLock lock(m, deadline);
  if (!lock.held()) return 0;
  std::size_t n = 0;
  for_each_client_slot(m, [&](Role role, std::uint32_t slot, const ClientSlotWords& s) {
    std::uint32_t active = kSlotActive;
    if (s.pid.load(std::memory_order_relaxed) != pid) return true;
    if (!s.state.compare_exchange_strong(active, kSlotReclaiming, std::memory_order_acquire)) return true;
    n += reclaim_claimed(m, role, slot, deadline) ? 1 : 0;
    return true;
  });
  return n;
}

}  // namespace shmbus
