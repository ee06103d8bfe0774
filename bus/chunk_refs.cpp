// TopicMap's chunk reference protocol (layout.hpp, protocol summary, rule 2): choosing a size
// class, allocating from and freeing to the lock-free free lists, and moving a chunk's counted
// references between loans, the ring and subscribers' holds (pins counted on demand).
#include "topic_map.hpp"

#include <atomic>

#include "metrics/counters.hpp"
#include <cstdint>

namespace shmbus::detail {

int TopicMap::class_for(std::uint64_t bytes) const noexcept {
  for (std::size_t i = 0; i < classes_.size(); ++i) {
    if (classes_[i].chunk_size >= bytes) return static_cast<int>(i);
  }
  return -1;
}

std::uint32_t TopicMap::allocate(std::uint32_t pool, int cls, std::uint32_t generation) noexcept {
  const LocalClass& lc = classes_[static_cast<std::size_t>(cls)];
  const std::uint32_t first = pool * chunks_per_pool_ + lc.first_chunk;
  std::atomic<std::uint64_t>& head = free_list(pool, static_cast<std::size_t>(cls)).head;
  // Acquire: pairs with the release CAS in push_free, so the popped chunk's next_free link
  // (written before it was pushed) is visible.
  std::uint64_t h = head.load(std::memory_order_acquire);
  std::uint32_t idx;
  for (;;) {
    idx = static_cast<std::uint32_t>(h);
    if (idx == kNoChunk) return kNoChunk;
    if (idx - first >= lc.chunk_count) return kNoChunk;  // corrupt list: refuse, never stray
    // Relaxed: if another process popped idx meanwhile this value may be stale, but then the
    // tag in `head` has changed and the CAS below fails.
    std::uint32_t next = chunks_[idx].next_free.load(std::memory_order_relaxed);
    std::uint64_t desired = (((h >> 32) + 1) << 32) | next;
    if (head.compare_exchange_weak(h, desired, std::memory_order_acquire, std::memory_order_acquire)) {
      // Only an external pool has one popper (its owner) to keep the pop count.
      if (external_pools_) count_pop(free_list(pool, static_cast<std::size_t>(cls)), desired, lc.chunk_count);
      break;
    }
  }
  ChunkHeader& c = chunks_[idx];
  c.sequence.store(kNoSequence, std::memory_order_relaxed);
  c.next_segment.store(kNoChunk, std::memory_order_relaxed);
  c.segment_count.store(1, std::memory_order_relaxed);
  c.used_bytes.store(0, std::memory_order_relaxed);
  // Relaxed: published with the message by the commit word's release.
  c.pool_generation.store(generation, std::memory_order_relaxed);
  // Release: a stale subscriber whose try_acquire CAS reads this 1 must also see
  // sequence == kNoSequence, so it cannot mistake this loan for the message it wanted.
  c.refs.store(1, std::memory_order_release);
  return idx;
}

bool TopicMap::try_acquire(std::uint32_t chunk) noexcept {
  if (!valid_chunk(chunk)) return false;  // from a shared word: never index past the headers
  std::atomic<std::uint32_t>& refs = chunks_[chunk].refs;
  std::uint32_t r = refs.load(std::memory_order_relaxed);
  while (r != 0) {
    // Acquire: pairs with allocate's release store of 1, see there. Release: a reference
    // auditor that sees our increment also sees our slot's open unrecorded window.
    if (refs.compare_exchange_weak(r, r + 1, std::memory_order_acq_rel, std::memory_order_relaxed)) return true;
  }
  return false;
}

bool TopicMap::count_pin(std::atomic<std::uint32_t>& entry, std::uint32_t chunk) noexcept {
  if (!try_acquire(chunk)) return false;
  // The count first, then the entry: in between, the entry may change under us (the
  // subscriber released the pin, or a publisher counted it first); the CAS then fails and our
  // count goes back (the ring's reference, or the other count, keeps it above 0). Acq_rel:
  // whoever later finds the entry counted (acquire) finds the count too; acquire on failure
  // for the count another party added.
  std::uint32_t pinned = chunk | kHoldPinned;
  if (!entry.compare_exchange_strong(pinned, chunk, std::memory_order_acq_rel, std::memory_order_acquire)) {
    release(chunk);
  }
  return true;
}

void TopicMap::count_pins(std::uint32_t sub, std::uint32_t chunk) noexcept {
  if (sub >= config_.max_subscribers || !valid_chunk(chunk)) return;
  std::atomic<std::uint32_t>* row = holds_of(sub);
  for (std::uint32_t h = 0; h < config_.max_held_per_subscriber; ++h) {
    // Acquire: pairs with the subscriber's release stores and exchanges of its entries, so
    // that a pin released before we looked was read completely before we free the chunk.
    // No unrecorded window around count_pin(): a publisher is inside its claim here and
    // recoverers hold the recovery lock, so no audit runs meanwhile.
    if (row[h].load(std::memory_order_acquire) == (chunk | kHoldPinned)) count_pin(row[h], chunk);
  }
}

void TopicMap::count_pins_everywhere(std::uint32_t chunk) noexcept {
  for (std::uint32_t i = 0; i < config_.max_subscribers; ++i) count_pins(i, chunk);
}

namespace {
void push_free(FreeList& list, ChunkHeader& c, std::uint32_t idx) noexcept {
  std::atomic<std::uint64_t>& head = list.head;
  std::uint64_t h = head.load(std::memory_order_relaxed);
  std::uint64_t desired;
  do {
    c.next_free.store(static_cast<std::uint32_t>(h), std::memory_order_relaxed);
    desired = (((h >> 32) + 1) << 32) | idx;
    // Release: the next allocate (acquire) must see next_free written above.
  } while (!head.compare_exchange_weak(h, desired, std::memory_order_release, std::memory_order_relaxed));
}
}  // namespace

void TopicMap::release(std::uint32_t chunk) noexcept {
  if (!valid_chunk(chunk)) return;  // a forged row entry or chain link: nothing of ours there
  // Acq_rel: the releaser that drops the last reference must see every other holder's reads
  // finished (their release) before the chunk is handed out again.
  std::uint32_t prev = chunks_[chunk].refs.fetch_sub(1, std::memory_order_acq_rel);
  if (prev != 1) {
    if ((prev & ~kRingRef) == 0) chunks_[chunk].refs.fetch_add(1, std::memory_order_relaxed);  // no count: undo
    return;
  }
  free_chain(chunk);
}

void TopicMap::loan_to_ring(std::uint32_t chunk) noexcept {
  if (!valid_chunk(chunk)) return;
  // Release: whoever later drops the ring reference (acquire) sees the message complete.
  chunks_[chunk].refs.fetch_add(kRingRef - 1, std::memory_order_acq_rel);
}

bool TopicMap::drop_ring_ref(std::uint32_t chunk) noexcept {
  if (!valid_chunk(chunk)) return false;
  // Acq_rel as in release(). Clearing a bit twice clears it once: safe against a racing
  // recoverer, and only the caller that saw exactly kRingRef frees the chunk.
  std::uint32_t prev = chunks_[chunk].refs.fetch_and(~kRingRef, std::memory_order_acq_rel);
  if (prev != kRingRef) return false;
  free_chain(chunk);
  return true;
}

bool TopicMap::ring_ref_to_loan(std::uint32_t chunk, std::uint32_t generation) noexcept {
  if (!valid_chunk(chunk)) return false;
  ChunkHeader& c = chunks_[chunk];
  if (c.refs.load(std::memory_order_relaxed) != kRingRef || c.next_segment.load(std::memory_order_relaxed) != kNoChunk) {
    return false;
  }
  // As in allocate(): a stale subscriber whose try_acquire succeeds on the loan must find
  // kNoSequence, never the old message's number, so this store comes before the CAS below.
  // The message is being overwritten anyway: a subscriber still reading it was lapped.
  const std::uint64_t sequence = c.sequence.load(std::memory_order_relaxed);
  c.sequence.store(kNoSequence, std::memory_order_relaxed);
  std::uint32_t expected = kRingRef;
  // Release: publishes kNoSequence to whoever acquires the new count (allocate's release
  // store of 1). Acquire: as drop_ring_ref's, every earlier holder's reads are done.
  if (!c.refs.compare_exchange_strong(expected, 1, std::memory_order_acq_rel, std::memory_order_relaxed)) {
    c.sequence.store(sequence, std::memory_order_relaxed);  // somebody took a reference: leave it be
    return false;
  }
  c.segment_count.store(1, std::memory_order_relaxed);
  c.used_bytes.store(0, std::memory_order_relaxed);
  c.pool_generation.store(generation, std::memory_order_relaxed);  // relaxed: as in allocate()
  return true;
}

void TopicMap::free_chain(std::uint32_t chunk) noexcept {
  // Free the message's chain: head, then its further segments. Read each link before the
  // chunk is pushed, because a pushed chunk may be reallocated at once.
  std::uint32_t idx = chunk;
  for (std::uint32_t n = 0; n < config_.max_segments && valid_chunk(idx); ++n) {
    ChunkHeader& c = chunks_[idx];
    std::uint32_t next = c.next_segment.load(std::memory_order_relaxed);
    c.refs.store(0, std::memory_order_relaxed);  // segments carried refs = 1 for their head
    const LocalClass& lc = class_of(idx);
    push_free(free_list(pool_of(idx), static_cast<std::size_t>(&lc - classes_.data())), c, idx);
    idx = next;
  }
}

}  // namespace shmbus::detail
