// detail::PublisherCore: a registered publisher slot and the publish protocol.
#pragma once

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "shmbus/raw.hpp"
#include "topic_map.hpp"

namespace shmbus::detail {

class PublisherCore {
 public:
  // `with_pool`: loans new chunks, so needs a payload pool of its own (a snapshot's holder,
  // which only holds published chunks, does not).
  explicit PublisherCore(const Topic& topic, bool with_pool = true);
  ~PublisherCore();

  // Loans one chunk able to hold `bytes`; records it in this publisher's loan row.
  // Returns kNoChunk and sets `err` on failure.
  std::uint32_t loan_chunk(std::uint64_t bytes, Errc& err) noexcept;
  // Takes a further reference to a published chunk and records it in this slot's loan row,
  // so a recoverer frees it if we die holding it (snapshots use this). False when the chunk is
  // free or the row is full.
  bool hold_existing(std::uint32_t chunk) noexcept;
  // Gives back an unpublished loan, or a chunk held with hold_existing(). On another thread
  // than the publishing one it is only marked, for the publishing thread's next loan.
  void return_chunk(std::uint32_t chunk) noexcept;
  // Publishes the message whose head is `head` (segments already linked and sized).
  Status commit(std::uint32_t head) noexcept;
  // A human-readable explanation of a loan failure: which pool, who holds it.
  std::string explain(Errc err, std::uint64_t bytes) const;

  RawLoan make_loan(std::uint32_t chunk, std::size_t size) noexcept;

  // The chunk header of a chunk this publisher loaned is its own until commit() (layout.hpp,
  // ChunkHeader): these are the only writes of it outside the core. Relaxed stores: commit()'s
  // release publishes them with the message. Inline: raw publish runs them on the hot path.
  // A raw message of `used` bytes in a loan of `loan_size`, all of which the writer may have
  // touched (a typed loan of the chunk must zero that much first).
  void describe_raw_message(std::uint32_t chunk, std::uint64_t used, std::uint64_t loan_size) noexcept {
    ChunkHeader& h = map_.chunk(chunk);
    h.used_bytes.store(used, std::memory_order_relaxed);
    h.flags.store(0, std::memory_order_relaxed);
    std::uint64_t dirty = std::max<std::uint64_t>(h.dirty_bytes.load(std::memory_order_relaxed), loan_size);
    h.dirty_bytes.store(dirty, std::memory_order_relaxed);
  }
  // Zeroes what an earlier message wrote in a freshly loaned chunk: Cap'n Proto requires
  // zeroed segments.
  void zero_dirty_bytes(std::uint32_t chunk) noexcept {
    ChunkHeader& h = map_.chunk(chunk);
    std::uint64_t dirty = std::min(h.dirty_bytes.load(std::memory_order_relaxed), map_.capacity(chunk));
    if (dirty != 0) std::memset(payload(chunk), 0, dirty);
    h.dirty_bytes.store(0, std::memory_order_relaxed);
  }
  // A segment of a typed message: `used` bytes, followed by segment `next` (kNoChunk: last).
  void describe_typed_segment(std::uint32_t chunk, std::uint64_t used, std::uint32_t next) noexcept {
    ChunkHeader& h = map_.chunk(chunk);
    h.used_bytes.store(used, std::memory_order_relaxed);
    h.dirty_bytes.store(used, std::memory_order_relaxed);
    h.flags.store(kChunkFlagTyped, std::memory_order_relaxed);
    h.next_segment.store(next, std::memory_order_relaxed);
  }
  void set_segment_count(std::uint32_t head, std::uint32_t count) noexcept {
    map_.chunk(head).segment_count.store(count, std::memory_order_relaxed);
  }
  // An unpublished segment given back on its own: linked to nothing.
  void unlink_segment(std::uint32_t chunk) noexcept {
    map_.chunk(chunk).next_segment.store(kNoChunk, std::memory_order_relaxed);
  }
  // Where a chunk this publisher loaned can be written.
  std::byte* payload(std::uint32_t chunk) const noexcept { return map_.payload_at(pool_->base, chunk); }
  const Topic& topic() const noexcept { return topic_; }
  TopicMap& map() const noexcept { return map_; }
  std::uint32_t slot() const noexcept { return slot_; }

 private:
  void forget_loan(std::uint32_t chunk) noexcept;
  void return_on_publishing_thread(std::uint32_t chunk) noexcept;
  void collect_foreign_returns() noexcept;
  // Stores `chunk` in a free loan-row entry; the caller has checked loans_in_use_ < max_loans_.
  void record_loan(std::uint32_t chunk) noexcept;
  // commit()'s reuse of the chunk the ring slot gave up: keeps it as a loan (kept_), so the
  // next loan of its size class takes it without touching the shared free list.
  bool keep_for_next_loan(std::uint32_t old) noexcept;
  // Claims the next sequence under the topic's policy. Leaves claimed_plus1 at ~0 on success
  // (the caller records the sequence), at 0 on failure.
  Status claim(std::uint64_t& seq) noexcept;
  // commit()'s slow path when the message a lap before `seq` is not committed in `rs` yet:
  // returns ok once it is, or once no live publisher holds a claim that could still write the
  // slot (from then on we are the slot's only writer, layout.hpp), with the commit word it saw
  // in `commit`. Reclaims dead publishers if that takes long. Bounded: Errc::timeout after the
  // topic's block timeout (bounded_wait_ns()), region_lost when the region goes.
  Status wait_for_previous_lap(const RingSlot& rs, std::uint64_t seq, std::uint64_t& commit) noexcept;
  // True when a live publisher slot other than ours is taking a sequence, or holds a claim
  // below `seq` on the same ring slot (which it may still write).
  bool previous_lap_claimed(std::uint64_t seq) const noexcept;
  // The commit word `commit` of seq's ring slot says the lap before `seq` is committed (or a
  // later one: written without overflow, since a forged word may be near 2^64).
  bool lap_committed(std::uint64_t commit, std::uint64_t seq) const noexcept {
    const std::uint64_t capacity = map_.ring_capacity();
    return seq < capacity || commit >= seq + 1 - capacity;
  }
  std::uint64_t slowest_cursor() const noexcept;
  // slowest_cursor(), rescanned only when the cached value says "full" or the set of
  // subscribers changed: cursors only grow, so a cached minimum is a safe lower bound.
  std::uint64_t slowest_cursor_cached(std::uint64_t tail) noexcept;
  // Drop-oldest, after the commit that displaced `chunk` (sequence `displaced`) from its ring
  // slot: turns the subscribers' pins of it into counted references (TopicMap::count_pins).
  void count_displaced_pins(std::uint32_t chunk, std::uint64_t displaced) noexcept;

  Topic topic_;
  TopicMap& map_;
  TopicControl& ctl_;
  std::uint32_t slot_;
  std::shared_ptr<PoolMapping> pool_;  // the payload pool we loan from (writable)
  std::atomic<std::uint32_t>* loans_;
  std::uint32_t max_loans_;
  std::uint32_t loans_in_use_ = 0;  // loan-row entries in use, kept_ included
  // A chunk the ring gave up at our last publish, kept for our next loan (bench/NOTES.md: the
  // free list's pop and push cost 7 % of 64 B throughput). It is an ordinary recorded loan
  // (refs = 1, in our loan row), so a recoverer frees it; PublisherSlot::kept_chunk names it,
  // so tools count it as free.
  std::uint32_t kept_ = kNoChunk;
  bool keep_chunks_ = false;  // our pool is ours alone (not the region's shared one)
  // The thread that loans and publishes (set at each loan and commit): only it touches the
  // loan bookkeeping (loans_in_use_, our slot's op_seq window). A loan given back on another
  // thread is only marked in returned_ (one flag per loan-row entry) and counted in
  // foreign_returns_; the publishing thread gives it back at its next loan.
  std::atomic<pthread_t> publishing_thread_{};
  std::unique_ptr<std::atomic<bool>[]> returned_;
  std::atomic<std::uint32_t> foreign_returns_{0};
  bool stamp_time_;
  bool drop_oldest_;
  // Block and fail-publish: the slowest cursor, and the subscriber epoch it was read at.
  std::uint64_t cached_slowest_ = ~0ULL;
  std::uint32_t cached_epoch_ = ~0u;
  // Drop-oldest (count_displaced_pins()): each subscriber slot's cursor as last read (~0 for a
  // free slot; lower bounds, since cursors only grow), their minimum, and the epoch of the
  // last full read. Allocated once, at registration.
  std::vector<std::uint64_t> known_cursors_;
  std::uint64_t slowest_known_cursor_ = 0;
  std::uint32_t pins_epoch_ = ~0u;
};

}  // namespace shmbus::detail
