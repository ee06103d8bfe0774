#include "subscriber_core.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include "futex.hpp"
#include "process_identity.hpp"
#include "unrecorded_window.hpp"
#include "region.hpp"

namespace shmbus::detail {

SubscriberCore::SubscriberCore(const Topic& topic, SubscriberOptions options)
    : topic_(topic), map_(topic.map()), ctl_(map_.control()), options_(options),
      max_held_(map_.config().max_held_per_subscriber),
      block_policy_(ctl_.policy != SlowSubscriberPolicyWire::kDropOldest),
      file_backed_(map_.header().kind == RegionKind::kFile) {
  if (!map_.writable()) throw Error(Errc::invalid_config, map_.describe() + ": opened read-only for inspection");
  for (std::uint32_t i = 0; i < map_.config().max_subscribers; ++i) {
    SubscriberSlot& s = map_.subscriber(i);
    std::uint32_t expected = kSlotFree;
    // Acquire: see the previous owner's or recoverer's cleared hold row.
    if (!s.state.compare_exchange_strong(expected, kSlotClaiming, std::memory_order_acquire)) continue;
    slot_ = i;
    holds_ = map_.holds_of(i);
    for (std::uint32_t h = 0; h < max_held_; ++h) holds_[h].store(kNoChunk, std::memory_order_relaxed);
    s.pid.store(getpid(), std::memory_order_relaxed);
    record_owner(s.owner);
    s.lost.store(0, std::memory_order_relaxed);
    s.taken.store(0, std::memory_order_relaxed);
    s.generation.fetch_add(1, std::memory_order_relaxed);  // relaxed: published by the state release below
    // Acquire: with the commit words we then read, we start from a consistent tail.
    std::uint64_t tail = ctl_.tail.load(std::memory_order_acquire);
    std::uint64_t history = options.with_history ? ctl_.history_depth : 0;
    cursor_ = tail - std::min<std::uint64_t>(tail, history);
    shared_cursor_ = cursor_;
    s.cursor.store(cursor_, std::memory_order_relaxed);
    // Release: a block-policy publisher that sees kSlotActive (acquire) sees our cursor.
    s.state.store(kSlotActive, std::memory_order_release);
    std::uint32_t hw = ctl_.subscriber_high_water.load(std::memory_order_relaxed);
    while (hw < i + 1 && !ctl_.subscriber_high_water.compare_exchange_weak(hw, i + 1, std::memory_order_release,
                                                                            std::memory_order_relaxed)) {
    }
    // Release: a publisher that sees the new epoch (acquire) rescans and finds this slot.
    ctl_.subscriber_epoch.fetch_add(1, std::memory_order_release);
    return;
  }
  throw Error(Errc::too_many_subscribers, map_.describe() + ": all " +
                                              std::to_string(map_.config().max_subscribers) +
                                              " subscriber slots are taken");
}

SubscriberCore::~SubscriberCore() {
  stop_event_thread();
  for (std::uint32_t h = 0; h < max_held_; ++h) {
    std::uint32_t c = holds_[h].load(std::memory_order_relaxed);
    if (c != kNoChunk) {
      UnrecordedWindow window(map_.subscriber(slot_).op_seq);
      holds_[h].store(kNoChunk, std::memory_order_relaxed);
      map_.release(c);
    }
  }
  // Release: the next owner sees the cleared row; block-policy publishers stop waiting on us.
  map_.subscriber(slot_).state.store(kSlotFree, std::memory_order_release);
  ctl_.subscriber_epoch.fetch_add(1, std::memory_order_release);  // publishers rescan
  if (block_policy_) {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (ctl_.blocked_publishers.load(std::memory_order_relaxed) != 0) {
      // Relaxed: the futex word only has to change; publishers re-check cursors after waking.
      ctl_.space_futex.fetch_add(1, std::memory_order_relaxed);
      futex_wake_all(&ctl_.space_futex);
    }
  }
}

bool SubscriberCore::has_data() const noexcept {
  // Acquire: pairs with the publisher's release of the commit word.
  return map_.ring_slot(cursor_).commit.load(std::memory_order_acquire) > cursor_;
}

void SubscriberCore::resync(std::uint64_t seen_commit) noexcept {
  // We were overtaken: the oldest message possibly still in the ring is tail - capacity.
  const std::uint64_t capacity = map_.ring_capacity();
  std::uint64_t tail = ctl_.tail.load(std::memory_order_relaxed);
  tail = std::max(tail, seen_commit);
  std::uint64_t next = std::max(cursor_ + 1, tail > capacity ? tail - capacity : 0);
  pending_lost_ += next - cursor_;
  lost_ += next - cursor_;
  cursor_ = next;
}

Errc SubscriberCore::take_chunk(Taken& out) noexcept {
  if (held_ >= max_held_) return Errc::too_many_held;
  for (;;) {
    RingSlot& rs = map_.ring_slot(cursor_);
    // Acquire: pairs with the publisher's release store of commit; the chunk index, chunk
    // header and payload it wrote before are visible after this load.
    std::uint64_t commit = rs.commit.load(std::memory_order_acquire);
    if (commit <= cursor_) {
      // We may have skipped lost messages: let block-policy publishers reuse their slots.
      if (cursor_ != shared_cursor_) publish_cursor();
      return map_.unusable() ? Errc::region_lost : Errc::no_data;
    }
    if (commit != cursor_ + 1) {  // slot already reused by a newer message
      resync(commit);
      continue;
    }
    std::uint32_t chunk = rs.chunk.load(std::memory_order_acquire);
    if (chunk == kNoChunk) {  // tombstone left by a recoverer for a publisher that died
      skip_lost();
      continue;
    }
    const std::uint32_t pool = map_.pool_of(chunk);
    // This process's view of the chunk's pool, if it has one yet (checked against the chunk's
    // generation below). Start pulling the payload's first line across cores now, in parallel
    // with the reference CAS on the chunk header: the reader almost always touches it next.
    const PoolMapping* view = map_.valid_chunk(chunk) ? map_.current_view(pool) : nullptr;
    if (view != nullptr) __builtin_prefetch(map_.payload_at(view->base, chunk));
    // From the reference CAS to the hold-row store (or the release) the reference is ours
    // but unrecorded.
    UnrecordedWindow window(map_.subscriber(slot_).op_seq);
    if (!map_.valid_chunk(chunk) || !map_.try_acquire(chunk)) {
      resync(cursor_ + 1);  // freed or bogus: the slot moved on under us
      continue;
    }
    // Acquire: pairs with the release that made this sequence visible (commit / allocate).
    if (map_.chunk(chunk).sequence.load(std::memory_order_acquire) != cursor_) {
      map_.release(chunk);  // we raced a reuse of this chunk
      resync(cursor_ + 1);
      continue;
    }
    if (map_.unusable()) {  // the region went away while we looked: nothing here is real
      map_.release(chunk);
      return Errc::region_lost;
    }
    // Relaxed: published with the message (the commit word's acquire above).
    const std::uint32_t generation = map_.chunk(chunk).pool_generation.load(std::memory_order_relaxed);
    const std::byte* base = view != nullptr && view->generation == generation ? view->base
                                                                               : map_.pool_base(pool, generation);
    if (base == nullptr) {  // its pool is gone for us (publisher dead, or not ours to open)
      map_.release(chunk);
      skip_lost();
      continue;
    }
    // A free entry exists (held_ < max_held_) unless the row changed under us: the region was
    // lost (its pages now read as zeros) or another process wrote it. Never scan past the row.
    std::uint32_t hold = 0;
    while (hold < max_held_ && holds_[hold].load(std::memory_order_relaxed) != kNoChunk) ++hold;
    if (hold == max_held_) {
      map_.release(chunk);
      return map_.unusable() ? Errc::region_lost : Errc::too_many_held;
    }
    // Relaxed: read only by a recoverer after we died (process teardown orders it).
    holds_[hold].store(chunk, std::memory_order_relaxed);
    ++held_;
    out = {chunk, hold, cursor_, pending_lost_, base};
    pending_lost_ = 0;
    ++cursor_;
    publish_cursor();
    SubscriberSlot& me = map_.subscriber(slot_);
    me.taken.store(me.taken.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    if (out.lost_before != 0) me.lost.store(lost_, std::memory_order_relaxed);
    if (block_policy_) {
      // Seq_cst fence: Dekker pairing with a publisher going to sleep in claim().
      std::atomic_thread_fence(std::memory_order_seq_cst);
      if (ctl_.blocked_publishers.load(std::memory_order_relaxed) != 0) {
        ctl_.space_futex.fetch_add(1, std::memory_order_relaxed);
        futex_wake_all(&ctl_.space_futex);
      }
    }
    return Errc::ok;
  }
}

void SubscriberCore::publish_cursor() noexcept {
  // Release: a block-policy publisher reading our cursor (acquire) may reuse the slots before it.
  map_.subscriber(slot_).cursor.store(cursor_, std::memory_order_release);
  shared_cursor_ = cursor_;
}

void SubscriberCore::skip_lost() noexcept {
  ++pending_lost_;
  ++lost_;
  ++cursor_;
}

void SubscriberCore::release_hold(std::uint32_t chunk, std::uint32_t hold_index) noexcept {
  UnrecordedWindow window(map_.subscriber(slot_).op_seq);
  holds_[hold_index].store(kNoChunk, std::memory_order_relaxed);
  --held_;
  map_.release(chunk);
}

Status SubscriberCore::sleep_until_data(std::uint64_t deadline_ns) noexcept {
  for (;;) {
    // Seq_cst: Dekker pairing with the publisher's (commit; fence; load sleepers).
    ctl_.sleepers.fetch_add(1, std::memory_order_seq_cst);
    // The decrements below are relaxed: a publisher that still sees us as a sleeper only makes
    // one needless wake.
    std::uint32_t v = ctl_.data_futex.load(std::memory_order_seq_cst);
    if (has_data()) {
      ctl_.sleepers.fetch_sub(1, std::memory_order_relaxed);
      return Errc::ok;
    }
    std::uint64_t now = monotonic_ns();
    if (now >= deadline_ns) {
      ctl_.sleepers.fetch_sub(1, std::memory_order_relaxed);
      return Errc::timeout;
    }
    if (map_.unusable()) {
      ctl_.sleepers.fetch_sub(1, std::memory_order_relaxed);
      return Errc::region_lost;
    }
    // A file-backed region can be lost under us, and then its futex word is no longer shared
    // and nobody would wake us: sleep in 1 s slices there. A sealed memfd cannot be lost, so
    // an idle subscriber of one sleeps for good (no wake-ups, no CPU).
    std::chrono::nanoseconds sleep = deadline_ns == ~0ULL ? std::chrono::nanoseconds(-1)  // forever
                                                          : std::chrono::nanoseconds(deadline_ns - now);
    if (file_backed_ && (sleep.count() < 0 || sleep > std::chrono::seconds(1))) sleep = std::chrono::seconds(1);
    futex_wait(&ctl_.data_futex, v, sleep);
    ctl_.sleepers.fetch_sub(1, std::memory_order_relaxed);
    if (has_data()) return Errc::ok;
  }
}

Status SubscriberCore::wait(std::chrono::nanoseconds timeout) noexcept {
  if (has_data()) return Errc::ok;
  const std::uint64_t start = monotonic_ns();
  const std::uint64_t deadline =
      timeout.count() < 0 ? ~0ULL : start + static_cast<std::uint64_t>(timeout.count());
  if (options_.wait_mode != WaitMode::block) {
    std::uint64_t spin_end = options_.wait_mode == WaitMode::busy_poll
                                 ? deadline
                                 : std::min(deadline, start + static_cast<std::uint64_t>(options_.spin_time.count()));
    for (std::uint32_t i = 0;; ++i) {
      if (has_data()) return Errc::ok;
      cpu_relax();
      if ((i & 63) == 0) {
        if (map_.unusable()) return Errc::region_lost;
        if (monotonic_ns() >= spin_end) break;
      }
    }
    if (options_.wait_mode == WaitMode::busy_poll) return Errc::timeout;
  }
  return sleep_until_data(deadline);
}

int SubscriberCore::event_fd() {
  if (event_fd_ >= 0) return event_fd_;
  event_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (event_fd_ < 0) throw_errno("eventfd for " + map_.describe());
  // The helper thread sleeps on the topic's futex and turns "new data" into an eventfd
  // signal, edge-style: it signals again only after another publish.
  event_thread_ = std::thread([this] {
    std::uint64_t signalled_tail = ~0ULL;
    while (!stop_.load(std::memory_order_relaxed)) {
      ctl_.sleepers.fetch_add(1, std::memory_order_seq_cst);
      std::uint32_t v = ctl_.data_futex.load(std::memory_order_seq_cst);
      std::uint64_t tail = ctl_.tail.load(std::memory_order_relaxed);
      // The owner's thread moves cursor_; read the shared copy it publishes instead.
      std::uint64_t cursor = map_.subscriber(slot_).cursor.load(std::memory_order_acquire);
      bool data = map_.ring_slot(cursor).commit.load(std::memory_order_acquire) > cursor;
      if (data && tail != signalled_tail) {
        ctl_.sleepers.fetch_sub(1, std::memory_order_relaxed);
        std::uint64_t one = 1;
        (void)!write(event_fd_, &one, sizeof one);
        signalled_tail = tail;
        continue;
      }
      futex_wait(&ctl_.data_futex, v, std::chrono::milliseconds(100));
      ctl_.sleepers.fetch_sub(1, std::memory_order_relaxed);
    }
  });
  return event_fd_;
}

void SubscriberCore::stop_event_thread() noexcept {
  if (!event_thread_.joinable()) return;
  stop_.store(true, std::memory_order_relaxed);
  ctl_.data_futex.fetch_add(1, std::memory_order_relaxed);
  futex_wake_all(&ctl_.data_futex);
  event_thread_.join();
  close(event_fd_);
  event_fd_ = -1;
}

RawSample SubscriberCore::make_sample(const Taken& t) noexcept {
  RawSample s;
  s.core_ = shared_from_this();
  s.chunk_ = t.chunk;
  s.hold_index_ = t.hold_index;
  s.sequence_ = t.sequence;
  s.lost_before_ = t.lost_before;
  const TopicMap::PayloadSpan payload = map_.payload_span(t.pool_base, t.chunk);
  s.data_ = payload.data;
  s.pool_base_ = t.pool_base;
  // A hostile publisher could claim more bytes than the chunk has: clamp to the chunk.
  s.size_ = std::min(map_.chunk(t.chunk).used_bytes.load(std::memory_order_relaxed), payload.capacity);
  return s;
}

}  // namespace shmbus::detail
