#include "publisher_core.hpp"

#include <unistd.h>

#include <utility>

#include "futex.hpp"
#include "metrics/counters.hpp"
#include "prefetch.hpp"
#include "process_identity.hpp"
#include "topic_admin.hpp"
#include "unrecorded_window.hpp"

namespace shmbus::detail {

PublisherCore::PublisherCore(const Topic& topic, bool with_pool)
    : topic_(topic), map_(TopicAccess::map(topic)), ctl_(map_.control()),
      max_loans_(map_.config().max_loans_per_publisher), stamp_time_(map_.config().stamp_publish_time),
      drop_oldest_(map_.policy_wire() == SlowSubscriberPolicyWire::kDropOldest) {
  if (!map_.writable()) throw Error(Errc::misuse, map_.describe() + ": opened read-only for inspection");
  for (std::uint32_t i = 0; i < map_.config().max_publishers; ++i) {
    PublisherSlot& s = map_.publisher(i);
    std::uint32_t expected = kSlotFree;
    // Acquire: a freed slot's rows were cleared by its previous owner or recoverer (release).
    if (!s.state.compare_exchange_strong(expected, kSlotClaiming, std::memory_order_acquire)) continue;
    slot_ = i;
    loans_ = map_.loans_of(i);
    returned_ = std::make_unique<std::atomic<bool>[]>(max_loans_);
    for (std::uint32_t l = 0; l < max_loans_; ++l) loans_[l].store(kNoChunk, std::memory_order_relaxed);
    s.pid.store(getpid(), std::memory_order_relaxed);
    record_owner(s.owner);
    s.claimed_plus1.store(0, std::memory_order_relaxed);
    s.kept_chunk.store(kNoChunk, std::memory_order_relaxed);
    s.published.store(0, std::memory_order_relaxed);
    for (auto* c : {&s.published_bytes, &s.refused, &s.timed_out, &s.loan_pool_exhausted, &s.loan_too_many_loans, &s.loan_too_large}) {
      c->store(0, std::memory_order_relaxed);  // relaxed: as published
    }
    s.generation.fetch_add(1, std::memory_order_relaxed);  // relaxed: published by the state release below
    keep_chunks_ = with_pool && (map_.flags() & kTopicFlagPayloadInRegion) == 0;
    known_cursors_.assign(map_.config().max_subscribers, 0);
    if (with_pool) {
      try {
        pool_ = map_.own_pool(i);
      } catch (...) {
        s.state.store(kSlotFree, std::memory_order_release);  // release: as in the destructor
        throw;
      }
    }
    // Release: tools and recoverers that see kSlotActive (acquire) see the fields above.
    s.state.store(kSlotActive, std::memory_order_release);
    return;
  }
  throw Error(Errc::too_many_publishers, map_.describe() + ": all " +
                                             std::to_string(map_.config().max_publishers) +
                                             " publisher slots are taken");
}

PublisherCore::~PublisherCore() {
  for (std::uint32_t l = 0; l < max_loans_; ++l) {
    std::uint32_t c = loans_[l].load(std::memory_order_relaxed);
    if (c != kNoChunk) {
      UnrecordedWindow window(map_.publisher(slot_).op_seq);
      loans_[l].store(kNoChunk, std::memory_order_relaxed);
      // The row is shared memory: anybody may have written it. release() ignores an index
      // outside the chunk table; checked here too, so the intent is plain.
      if (map_.valid_chunk(c)) map_.release(c);
    }
  }
  // Release: the next owner of this slot (acquire CAS) sees the cleared loan row.
  map_.publisher(slot_).state.store(kSlotFree, std::memory_order_release);
}

std::uint32_t PublisherCore::loan_chunk(std::uint64_t bytes, Errc& err) noexcept {
  // Relaxed: read by other threads only to compare with their own id (see return_chunk()).
  publishing_thread_.store(pthread_self(), std::memory_order_relaxed);
  collect_foreign_returns();
  if (map_.unusable()) {
    err = Errc::region_lost;
    return kNoChunk;
  }
  int cls = map_.class_for(bytes);
  if (!pool_) {  // a snapshot's holder
    err = Errc::misuse;
    return kNoChunk;
  }
  if (cls < 0 || bytes > map_.config().max_message_size) {
    err = Errc::message_too_large;
    count_loan_failure(map_.publisher(slot_), err);
    return kNoChunk;
  }
  if (kept_ != kNoChunk) {
    const std::uint32_t kept = std::exchange(kept_, kNoChunk);
    map_.publisher(slot_).kept_chunk.store(kNoChunk, std::memory_order_relaxed);  // relaxed: for tools
    // Its class must be the best fit: a larger chunk is for larger loans.
    if (&map_.class_of(kept) == &map_.classes()[static_cast<std::size_t>(cls)]) {
      map_.chunk(kept).publisher.store(slot_, std::memory_order_relaxed);  // as below
      err = Errc::ok;
      return kept;  // recorded in our loan row since commit() kept it
    }
    return_on_publishing_thread(kept);
  }
  if (loans_in_use_ >= max_loans_) {
    err = Errc::too_many_loans;
    count_loan_failure(map_.publisher(slot_), err);
    return kNoChunk;
  }
  // From the pop to the loan-row store we hold a reference no row records.
  UnrecordedWindow window(map_.publisher(slot_).op_seq);
  // Any larger class will do when the best fit is exhausted.
  std::uint32_t chunk = kNoChunk;
  for (int c = cls; c < static_cast<int>(map_.classes().size()) && chunk == kNoChunk; ++c) {
    chunk = map_.allocate(pool_->pool, c, pool_->generation);
  }
  if (chunk == kNoChunk) {
    err = Errc::pool_exhausted;
    count_loan_failure(map_.publisher(slot_), err);
    return kNoChunk;
  }
  record_loan(chunk);
  map_.chunk(chunk).publisher.store(slot_, std::memory_order_relaxed);
  if (map_.unusable()) {  // lost while we allocated: what we got is a zero page, not a chunk
    return_on_publishing_thread(chunk);
    err = Errc::region_lost;
    return kNoChunk;
  }
  err = Errc::ok;
  return chunk;
}

bool PublisherCore::hold_existing(std::uint32_t chunk) noexcept {
  publishing_thread_.store(pthread_self(), std::memory_order_relaxed);  // as in loan_chunk()
  collect_foreign_returns();
  if (loans_in_use_ >= max_loans_ || !map_.valid_chunk(chunk)) return false;
  UnrecordedWindow window(map_.publisher(slot_).op_seq);
  if (!map_.try_acquire(chunk)) return false;
  record_loan(chunk);
  return true;
}

void PublisherCore::record_loan(std::uint32_t chunk) noexcept {
  for (std::uint32_t l = 0; l < max_loans_; ++l) {
    if (loans_[l].load(std::memory_order_relaxed) == kNoChunk) {
      // Relaxed: the loan row is read only by a recoverer after this process died, and the
      // kernel's process teardown orders everything before that.
      loans_[l].store(chunk, std::memory_order_relaxed);
      ++loans_in_use_;
      return;
    }
  }
}

bool PublisherCore::keep_for_next_loan(std::uint32_t old) noexcept {
  if (!keep_chunks_ || kept_ != kNoChunk || loans_in_use_ >= max_loans_ || map_.pool_of(old) != pool_->pool) {
    return false;
  }
  // From the conversion to the loan-row store we hold a reference no row records.
  UnrecordedWindow window(map_.publisher(slot_).op_seq);
  if (!map_.ring_ref_to_loan(old, pool_->generation)) return false;
  record_loan(old);
  kept_ = old;
  map_.publisher(slot_).kept_chunk.store(old, std::memory_order_relaxed);  // relaxed: for tools
  return true;
}

void PublisherCore::forget_loan(std::uint32_t chunk) noexcept {
  for (std::uint32_t l = 0; l < max_loans_; ++l) {
    if (loans_[l].load(std::memory_order_relaxed) == chunk) {
      loans_[l].store(kNoChunk, std::memory_order_relaxed);
      --loans_in_use_;
      return;
    }
  }
}

void PublisherCore::return_chunk(std::uint32_t chunk) noexcept {
  if (pthread_equal(pthread_self(), publishing_thread_.load(std::memory_order_relaxed))) {
    return_on_publishing_thread(chunk);
    return;
  }
  // Another thread: mark the loan's row entry (the publishing thread never changes an entry
  // in use, so the scan is stable) and leave the rest to the publishing thread's next loan.
  for (std::uint32_t l = 0; l < max_loans_; ++l) {
    if (loans_[l].load(std::memory_order_relaxed) == chunk) {
      // Release: the publishing thread, which frees the chunk after its acquire below, must
      // see our writes to the loan done.
      returned_[l].store(true, std::memory_order_release);
      foreign_returns_.fetch_add(1, std::memory_order_release);
      return;
    }
  }
}

void PublisherCore::return_on_publishing_thread(std::uint32_t chunk) noexcept {
  UnrecordedWindow window(map_.publisher(slot_).op_seq);
  forget_loan(chunk);
  map_.release(chunk);
}

void PublisherCore::collect_foreign_returns() noexcept {
  // Acquire: pairs with the marking threads' increments.
  if (foreign_returns_.load(std::memory_order_relaxed) == 0 ||
      foreign_returns_.exchange(0, std::memory_order_acquire) == 0) {
    return;
  }
  for (std::uint32_t l = 0; l < max_loans_; ++l) {
    // Acquire: pairs with the marking thread's release store.
    if (!returned_[l].load(std::memory_order_acquire)) continue;
    returned_[l].store(false, std::memory_order_relaxed);  // relaxed: only this thread reads it after
    return_on_publishing_thread(loans_[l].load(std::memory_order_relaxed));
  }
}

std::uint64_t PublisherCore::slowest_cursor() const noexcept {
  std::uint64_t slowest = ~0ULL;
  // Acquire: pairs with the release in the subscriber's registration, so a slot below the
  // high-water mark that we must consider is visible.
  const std::uint32_t scan = std::min(ctl_.subscriber_high_water.load(std::memory_order_acquire),
                                      map_.config().max_subscribers);
  for (std::uint32_t i = 0; i < scan; ++i) {
    SubscriberSlot& s = map_.subscriber(i);
    // Acquire: pairs with the subscriber's release of kSlotActive after it set its cursor.
    if (s.state.load(std::memory_order_acquire) != kSlotActive) continue;
    slowest = std::min(slowest, s.cursor.load(std::memory_order_acquire));
  }
  return slowest;
}

std::uint64_t PublisherCore::slowest_cursor_cached(std::uint64_t tail) noexcept {
  // Seq_cst, with the seq_cst tail CAS in claim(): a subscriber registering bumps the epoch and
  // then reads tail (both seq_cst); every claim after the tail it read sees the new epoch, so
  // it may pin the messages a lap before that (SubscriberCore::pin_safe_from_). Acquire alone
  // would also pair with the release bump, which makes its cursor visible.
  std::uint32_t epoch = ctl_.subscriber_epoch.load(std::memory_order_seq_cst);
  const bool full = cached_slowest_ != ~0ULL && tail - std::min(cached_slowest_, tail) >= map_.ring_capacity();
  if (epoch != cached_epoch_ || full || cached_slowest_ == ~0ULL) {
    cached_epoch_ = epoch;
    cached_slowest_ = slowest_cursor();
  }
  return cached_slowest_;
}

void PublisherCore::count_displaced_pins(std::uint32_t chunk, std::uint64_t displaced) noexcept {
  // Only a subscriber whose cursor is at or below `displaced` can pin it (its stored cursor
  // stays at its oldest pin). Cursors only grow, so a cursor we read once stays a lower bound:
  // we re-read a subscriber's only when its known value is at or below `displaced`, about
  // once a lap for one that keeps up. A subscriber that registered since we looked bumped the
  // epoch first; seq_cst, with our claim's seq_cst RMW on tail: as in slowest_cursor_cached().
  const std::uint32_t epoch = ctl_.subscriber_epoch.load(std::memory_order_seq_cst);
  if (epoch == pins_epoch_ && slowest_known_cursor_ > displaced) return;
  // Seq_cst fence: Dekker pairing with a pinning subscriber (pin store; fence; re-read the
  // slot), after our commit store: either it sees our commit, or we see its pin below. (The
  // return above needs none: it rests on cursors read earlier, which only grow.)
  std::atomic_thread_fence(std::memory_order_seq_cst);
  // Acquire: pairs with the release in the subscriber's registration, as in slowest_cursor().
  const std::uint32_t scan = std::min(ctl_.subscriber_high_water.load(std::memory_order_acquire),
                                      map_.config().max_subscribers);
  const bool rescan_all = epoch != pins_epoch_;
  pins_epoch_ = epoch;
  std::uint64_t slowest = ~0ULL;
  for (std::uint32_t i = 0; i < scan; ++i) {
    std::uint64_t& known = known_cursors_[i];
    if (rescan_all || known <= displaced) {
      SubscriberSlot& s = map_.subscriber(i);
      // Acquire: pairs with the subscriber's release of its state and cursor stores, so that
      // the pins it stored before are visible to count_pins().
      known = s.state.load(std::memory_order_acquire) == kSlotFree ? ~0ULL : s.cursor.load(std::memory_order_acquire);
      if (known <= displaced) map_.count_pins(i, chunk);
    }
    slowest = std::min(slowest, known);
  }
  slowest_known_cursor_ = slowest;
}

Status PublisherCore::claim(std::uint64_t& seq) noexcept {
  PublisherSlot& me = map_.publisher(slot_);
  if (map_.policy_wire() == SlowSubscriberPolicyWire::kDropOldest) {
    // "Taking a sequence", for recoverers: see PublisherSlot::claimed_plus1. Relaxed, published
    // by the release below.
    me.claimed_plus1.store(~0ULL, std::memory_order_relaxed);
    // Release: a recoverer whose acquire load of tail sees our increment also sees the marker.
    // (tail only hands out numbers; the ring slot's commit word publishes the data.) Seq_cst
    // for pinning subscribers, as the CAS below (count_displaced_pins()); on x86 both are the
    // same lock xadd.
    seq = ctl_.tail.fetch_add(1, std::memory_order_seq_cst);
    return Errc::ok;
  }
  const std::uint64_t capacity = map_.ring_capacity();
  std::uint64_t deadline = 0;
  // Every load of tail in this loop is seq_cst, like the CAS: see slowest_cursor_cached().
  std::uint64_t t = ctl_.tail.load(std::memory_order_seq_cst);
  for (;;) {
    std::uint64_t slowest = slowest_cursor_cached(t);
    if (slowest == ~0ULL || t - std::min(slowest, t) < capacity) {
      me.claimed_plus1.store(~0ULL, std::memory_order_relaxed);  // as above
      // Release, as fetch_add above; seq_cst for pinning subscribers (slowest_cursor_cached).
      // On x86 both are the same lock cmpxchg.
      if (ctl_.tail.compare_exchange_weak(t, t + 1, std::memory_order_seq_cst, std::memory_order_seq_cst)) {
        seq = t;
        return Errc::ok;
      }
      continue;  // another publisher claimed t; t now holds the new tail
    }
    // Not taking a sequence while we wait, so recoverers need not wait for us.
    me.claimed_plus1.store(0, std::memory_order_relaxed);
    if (map_.policy_wire() == SlowSubscriberPolicyWire::kFailPublish) return Errc::subscriber_queue_full;
    // Block policy: sleep on space_futex until a subscriber takes, or the timeout passes.
    std::uint64_t now = monotonic_ns();
    if (deadline == 0) deadline = now + bounded_wait_ns(map_.config().block_timeout);
    if (now >= deadline) return Errc::timeout;
    if (map_.unusable()) return Errc::region_lost;
    // Seq_cst: Dekker pairing with the subscriber's (cursor store; fence; load
    // blocked_publishers) so that one of us sees the other.
    ctl_.blocked_publishers.fetch_add(1, std::memory_order_seq_cst);
    std::uint32_t v = ctl_.space_futex.load(std::memory_order_seq_cst);
    std::uint64_t again = cached_slowest_ = slowest_cursor();
    t = ctl_.tail.load(std::memory_order_seq_cst);
    if (!(again != ~0ULL && t - std::min(again, t) >= capacity)) {
      ctl_.blocked_publishers.fetch_sub(1, std::memory_order_relaxed);
      continue;
    }
    futex_wait(&ctl_.space_futex, v, std::chrono::nanoseconds(std::min<std::uint64_t>(deadline - now, 10'000'000)));
    // Relaxed: seeing us as blocked a little longer costs a subscriber one needless wake.
    ctl_.blocked_publishers.fetch_sub(1, std::memory_order_relaxed);
    t = ctl_.tail.load(std::memory_order_seq_cst);
  }
}

bool PublisherCore::previous_lap_claimed(std::uint64_t seq) const noexcept {
  const std::uint64_t mask = map_.ring_capacity() - 1;
  for (std::uint32_t p = 0; p < map_.config().max_publishers; ++p) {
    if (p == slot_) continue;
    const PublisherSlot& s = map_.publisher(p);
    // Acquire, both: a claimant that cleared its claim (release, after its commit store) has
    // its commit seen by our next load of the commit word. Its ~0 marker is visible to us:
    // it took its sequence from `tail` before we took ours (release sequence on tail).
    if (s.state.load(std::memory_order_acquire) == kSlotFree) continue;
    const std::uint64_t c = s.claimed_plus1.load(std::memory_order_acquire);
    if (c == ~0ULL) return true;  // taking a sequence now: it may be the one we wait for
    if (c != 0 && c - 1 < seq && ((c - 1) & mask) == (seq & mask)) return true;
  }
  return false;
}

Status PublisherCore::wait_for_previous_lap(const RingSlot& rs, std::uint64_t seq, std::uint64_t& commit) noexcept {
  // The claimant of seq - capacity has not committed yet: it was descheduled (or killed)
  // between its claim and its commit while the others went round the whole ring. Wait for it;
  // if it died, reclaim it ourselves (its hole would otherwise hold every publisher here).
  // The commit word is shared memory: a lowered word or a raised `tail` may name a lap that
  // nobody will ever commit. So the wait ends (a) when no live publisher holds a claim that
  // could still write this slot, checked twice with a reclaim in between: then we are the
  // slot's only possible writer, as after a commit; (b) after the topic's block timeout
  // (bounded_wait_ns(), at least kMinLapWaitNs) with Errc::timeout: a live claimant that
  // makes no progress.
  const std::uint64_t start = monotonic_ns();
  const std::uint64_t deadline = start + std::max(kMinLapWaitNs, bounded_wait_ns(map_.config().block_timeout));
  std::uint64_t next_check = start + 1'000'000;
  std::uint32_t unclaimed_checks = 0;
  // Acquire: as in commit().
  for (std::uint32_t i = 0; !lap_committed(commit = rs.commit.load(std::memory_order_acquire), seq); ++i) {
    if (i < 1024) {
      cpu_relax();
      continue;
    }
    // It is most likely waiting for a CPU: sleep until a commit wakes us, so that it gets one.
    // (Polling sleeps are worse than useless on a busy machine: each wake-up can preempt the
    // very claimant we wait for, bench/NOTES.md.) Seq_cst: Dekker pairing with commit()'s
    // (commit store; fence; load lap_waiters).
    ctl_.lap_waiters.fetch_add(1, std::memory_order_seq_cst);
    const std::uint32_t v = ctl_.lap_futex.load(std::memory_order_seq_cst);
    if (!lap_committed(rs.commit.load(std::memory_order_acquire), seq)) {
      // 1 ms slices: the dead-owner check below, and a lost region, need us awake now and then.
      futex_wait(&ctl_.lap_futex, v, std::chrono::milliseconds(1));
    }
    // Relaxed: a committer that still sees us as a waiter only makes one needless wake.
    ctl_.lap_waiters.fetch_sub(1, std::memory_order_relaxed);
    if (map_.unusable()) return Errc::region_lost;
    const std::uint64_t now = monotonic_ns();
    if (now >= next_check) {
      try {
        topic_.reclaim_dead_owners(std::chrono::nanoseconds(deadline - std::min(deadline, now)));
      } catch (...) {  // out of memory in the reclaim: keep waiting, try again later
      }
      next_check = monotonic_ns() + 10'000'000;
      // Nobody can still write the slot for the previous lap: it lied, or its claimant gave up.
      unclaimed_checks = previous_lap_claimed(seq) ? 0 : unclaimed_checks + 1;
      if (unclaimed_checks >= 2 && !lap_committed(commit = rs.commit.load(std::memory_order_acquire), seq)) {
        return Errc::ok;
      }
    }
    if (now >= deadline) return Errc::timeout;
  }
  return Errc::ok;
}

Status PublisherCore::commit(std::uint32_t head) noexcept {
  publishing_thread_.store(pthread_self(), std::memory_order_relaxed);  // as in loan_chunk()
  if (map_.unusable()) return Errc::region_lost;
  PublisherSlot& me = map_.publisher(slot_);
  std::uint64_t seq = 0;
  if (Status st = claim(seq); !st.ok()) {
    count_publish_failure(me, st.code());
    return st;
  }
  me.claim_chunk.store(head, std::memory_order_relaxed);
  me.claimed_plus1.store(seq + 1, std::memory_order_relaxed);
  ChunkHeader& h = map_.chunk(head);
  h.publish_ns.store(stamp_time_ ? monotonic_ns() : 0, std::memory_order_relaxed);
  h.sequence.store(seq, std::memory_order_relaxed);
  // The ring takes over our reference: forget the loans of the whole chain.
  std::uint32_t idx = head;
  std::uint64_t bytes = 0;  // for published_bytes: the headers are ours and in cache already
  for (std::uint32_t n = 0; n < map_.config().max_segments && map_.valid_chunk(idx); ++n) {
    forget_loan(idx);
    if constexpr (kHotPathCounters) bytes += map_.chunk(idx).used_bytes.load(std::memory_order_relaxed);
    idx = map_.chunk(idx).next_segment.load(std::memory_order_relaxed);
  }
  RingSlot& rs = map_.ring_slot(seq);
  // Acquire: pairs with the release store of the previous lap's commit, so that its chunk
  // index (which we take over below) is visible.
  std::uint64_t current = rs.commit.load(std::memory_order_acquire);
  if (!lap_committed(current, seq)) [[unlikely]] {
    if (Status st = wait_for_previous_lap(rs, seq, current); !st.ok()) {
      // The ring never took our message: give back the loan (claim_chunk covered it), and the
      // claim. The sequence stays a hole for the recoverers (fill_holes) or the next lap.
      map_.release(head);
      me.claimed_plus1.store(0, std::memory_order_release);  // release: as at the end below
      count_publish_failure(me, st.code());
      return st;
    }
  }
  if (current >= seq + 1) {
    // A recoverer already filled our sequence with a tombstone (it took us for dead, or the
    // region is lost): the message cannot be delivered any more.
    map_.release(head);
  } else {
    // From here to our commit store we are the slot's only writer (layout.hpp): plain loads
    // and stores, no locked instruction on the line subscribers poll.
    const std::uint32_t old = rs.chunk.load(std::memory_order_relaxed);  // the previous lap's, acquired above
    map_.loan_to_ring(head);  // our loan becomes the ring's reference (claim_chunk covers it)
    // Drop-oldest: a subscriber may be reading this slot to pin the previous lap's message.
    // Say whose fields these are first (RingSlot::writing), so that it cannot take our
    // half-written ones for that message; the release fence keeps this store ahead of the
    // stores below.
    if (drop_oldest_) {
      rs.writing.store(seq + 1, std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_release);
    }
    rs.chunk.store(head, std::memory_order_relaxed);  // these three: published by the commit store
    rs.pool_generation.store(h.pool_generation.load(std::memory_order_relaxed), std::memory_order_relaxed);
    rs.used_bytes.store(h.used_bytes.load(std::memory_order_relaxed), std::memory_order_relaxed);
    // Release: a subscriber that reads commit == seq+1 (acquire) sees the chunk index, the
    // chunk header and the payload written before.
    rs.commit.store(seq + 1, std::memory_order_release);
    // We took over the previous message's ring reference with the slot: count the pins on it
    // (drop-oldest), then keep the chunk for our next loan, or drop the reference.
    if (old != kNoChunk && map_.valid_chunk(old)) {
      if (drop_oldest_) count_displaced_pins(old, seq - std::min<std::uint64_t>(seq, map_.ring_capacity()));
      if (keep_for_next_loan(old) || (map_.drop_ring_ref(old) && pool_ && map_.pool_of(old) == pool_->pool)) {
        // Our next loan gets it (kept, or popped first from the LIFO free list): ask for its
        // payload line now, so the next write does not wait for it to leave a subscriber's cache.
        prefetch_for_write(map_.payload_at(pool_->base, old));
      }
    }
  }
  // Likewise the next ring slot, for reading only: subscribers poll that line, and taking it
  // from them early (prefetchw) made the 64 B ping-pong 10 % slower (bench/NOTES.md).
  __builtin_prefetch(&map_.ring_slot(seq + 1), 0);
  // Release: a recoverer that reads "no claim" (acquire) then finds our chunk in the slot.
  me.claimed_plus1.store(0, std::memory_order_release);
  // We are our publisher slot's only writer: a plain increment, no locked instruction.
  me.published.store(me.published.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  count_published_bytes(me, bytes);
  // Seq_cst fence: Dekker pairing with a sleeping subscriber (sleepers++; fence; check data),
  // so either it sees our commit or we see it sleeping. No syscall when nobody sleeps. The
  // fence comes after every path that wrote a commit word (or, for a tombstoned sequence,
  // wrote none: then nobody waits on us), and after the locked instructions that dropped or
  // kept the displaced chunk, which already drained our stores (here it costs least: 5 % of
  // 64 B throughput against right after the commit store, bench/NOTES.md).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (ctl_.sleepers.load(std::memory_order_relaxed) != 0) {
    // Relaxed: the futex word only has to change; sleepers re-check the ring after waking.
    ctl_.data_futex.fetch_add(1, std::memory_order_relaxed);
    futex_wake_all(&ctl_.data_futex);
  }
  // The same pairing with publishers waiting for a previous lap (wait_for_previous_lap()).
  if (ctl_.lap_waiters.load(std::memory_order_relaxed) != 0) [[unlikely]] {
    ctl_.lap_futex.fetch_add(1, std::memory_order_relaxed);  // relaxed: as data_futex above
    futex_wake_all(&ctl_.lap_futex);
  }
  return map_.unusable() ? Errc::region_lost : Errc::ok;
}

RawLoan PublisherCore::make_loan(std::uint32_t chunk, std::size_t size) noexcept {
  RawLoan loan;
  loan.core_ = this;
  loan.chunk_ = chunk;
  loan.data_ = payload(chunk);
  loan.size_ = size;
  return loan;
}

std::string PublisherCore::explain(Errc err, std::uint64_t bytes) const {
  // Appended piece by piece: GCC 12 warns (-Wrestrict, a false positive) on long chains of +.
  std::string s = map_.describe();
  s += ": cannot loan ";
  s += std::to_string(bytes);
  s += " bytes: ";
  s += errc_name(err);
  if (err == Errc::pool_exhausted) {
    s += "\n";
    s += topic_.describe_pool();
  }
  if (err == Errc::message_too_large) {
    s += " (largest chunk ";
    s += std::to_string(map_.classes().back().chunk_size);
    s += " bytes, max message ";
    s += std::to_string(map_.config().max_message_size);
    s += " bytes)";
  }
  return s;
}

}  // namespace shmbus::detail
