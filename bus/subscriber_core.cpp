#include "subscriber_core.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <bit>
#include <utility>

#include "futex.hpp"
#include "process_identity.hpp"
#include "unrecorded_window.hpp"
#include "region.hpp"
#include "topic_admin.hpp"

namespace shmbus::detail {

SubscriberCore::SubscriberCore(const Topic& topic, SubscriberOptions options)
    : topic_(topic), map_(TopicAccess::map(topic)), ctl_(map_.control()), options_(options),
      max_held_(map_.config().max_held_per_subscriber),
      block_policy_(map_.policy_wire() != SlowSubscriberPolicyWire::kDropOldest),
      file_backed_(map_.kind() == RegionKind::kFile) {
  if (!map_.writable()) throw Error(Errc::misuse, map_.describe() + ": opened read-only for inspection");
  for (std::uint32_t i = 0; i < map_.config().max_subscribers; ++i) {
    SubscriberSlot& s = map_.subscriber(i);
    std::uint32_t expected = kSlotFree;
    // Acquire: see the previous owner's or recoverer's cleared hold row.
    if (!s.state.compare_exchange_strong(expected, kSlotClaiming, std::memory_order_acquire)) continue;
    slot_ = i;
    holds_ = map_.holds_of(i);
    held_samples_ = std::make_unique<HeldSample[]>(max_held_);
    // A one-slot ring would stop a block-policy publisher at the first sample held (pins are
    // converted only when the subscriber takes or waits, not when it polls has_data()).
    pinning_ = map_.ring_capacity() >= 2;
    pin_lag_limit_ = std::max<std::uint64_t>(1, map_.ring_capacity() / 2);
    pins_.resize(std::bit_ceil(pin_lag_limit_ + 2));  // a power of two: pin_at() masks
    for (std::uint32_t h = 0; h < max_held_; ++h) holds_[h].store(kNoChunk, std::memory_order_relaxed);
    s.pid.store(getpid(), std::memory_order_relaxed);
    record_owner(s.owner);
    s.lost.store(0, std::memory_order_relaxed);
    s.taken.store(0, std::memory_order_relaxed);
    s.malformed.store(0, std::memory_order_relaxed);
    s.generation.fetch_add(1, std::memory_order_relaxed);  // relaxed: published by the state release below
    // Acquire: with the commit words we then read, we start from a consistent tail.
    std::uint64_t tail = ctl_.tail.load(std::memory_order_acquire);
    std::uint64_t history = options.with_history ? map_.config().history_depth : 0;
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
    // Seq_cst, with the tail load after it: every claim after the tail we read sees this epoch
    // (PublisherCore::slowest_cursor_cached), so it respects our cursor. Claims before it may
    // not have: a message a whole lap older than that tail may be overwritten while we read
    // it, so we take such messages with a counted reference instead of pinning them.
    ctl_.subscriber_epoch.fetch_add(1, std::memory_order_seq_cst);
    const std::uint64_t seen = ctl_.tail.load(std::memory_order_seq_cst);
    pin_safe_from_ = seen + 1 > map_.ring_capacity() ? seen + 1 - map_.ring_capacity() : 0;
    return;
  }
  throw Error(Errc::too_many_subscribers, map_.describe() + ": all " +
                                              std::to_string(map_.config().max_subscribers) +
                                              " subscriber slots are taken");
}

SubscriberCore::~SubscriberCore() {
  stop_event_thread();
  // Every sample is gone (each holds a reference to us); rows still set are counted
  // references to give back, or pins (kHoldPinned), which hold nothing. A sample released on
  // another thread gave its reference back itself. Exchanges: under drop-oldest a publisher
  // may be counting a pin for us right now (layout.hpp).
  for (std::uint32_t h = 0; h < max_held_; ++h) {
    if (holds_[h].load(std::memory_order_relaxed) == kNoChunk) continue;
    UnrecordedWindow window(map_.subscriber(slot_).op_seq);
    // Acq_rel: acquire for a count a publisher added (see TopicMap::count_pins()).
    const std::uint32_t c = holds_[h].exchange(kNoChunk, std::memory_order_acq_rel);
    if (map_.valid_chunk(c)) map_.release(c);
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

// Always inlined into its caller (RawSubscriber::take(), its only one) when LTO sees both:
// otherwise inlining take() into a second caller (as ClientState::pump once did) left two
// calls of take_chunk(), GCC inlined it into neither, and every subscriber's take() in the
// program lost ~30 ns of busy-poll latency. Without LTO it is an ordinary function (the
// attribute is then unused; the pragma silences GCC's note that it might not be inlinable).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wattributes"
__attribute__((always_inline)) Errc SubscriberCore::take_chunk(Taken& out) noexcept {
  // Relaxed: read by releasing threads only to compare with their own id; a thread that took
  // before the user handed us over (which synchronises) cannot read itself here any more.
  taking_thread_.store(pthread_self(), std::memory_order_relaxed);
  collect_foreign_releases();
  if (held_ >= max_held_) return Errc::too_many_held;
  bool pinned = false;
  // Every pass moves the cursor on. Commit words are shared memory: forged ones could make
  // every slot look newer than the cursor for 2^64 passes. Honest ones let us skip at most a
  // lap of lost or tombstoned messages after a resync, so after two laps we stop and say
  // no_data (the cursor has moved; the next take goes on from there).
  const std::uint64_t max_passes = 2 * map_.ring_capacity() + 2;
  for (std::uint64_t pass = 0;; ++pass) {
    if (pass == max_passes) [[unlikely]] {
      if (pinned_ != 0) unpin(true);
      publish_cursor();
      return map_.unusable() ? Errc::region_lost : Errc::no_data;
    }
    RingSlot& rs = map_.ring_slot(cursor_);
    // Acquire: pairs with the publisher's release store of commit; the chunk index, chunk
    // header and payload it wrote before are visible after this load.
    std::uint64_t commit = rs.commit.load(std::memory_order_acquire);
    if (commit <= cursor_) {
      // Nothing to take, so the caller may now wait: no sample we hold may hold publishers
      // back meanwhile. (Also lets block-policy publishers reuse slots of lost messages.)
      if (pinned_ != 0) unpin(true);
      publish_cursor();
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
    if (!map_.valid_chunk(chunk)) {  // a hostile or broken writer: nothing to read there
      skip_lost();
      continue;
    }
    pinned = pinning_ && cursor_ >= pin_safe_from_;
    const TakeStep step = pinned ? take_pinned(rs, chunk, out) : take_counted(chunk, out);
    if (step == TakeStep::taken) break;
    if (step == TakeStep::failed) return map_.unusable() ? Errc::region_lost : Errc::too_many_held;
  }
  out.sequence = cursor_;
  out.lost_before = pending_lost_;
  pending_lost_ = 0;
  ++held_;
  if (pinned) {
    ++pinned_;
    pin_at(pins_back_++) = {cursor_, out.hold_index};
  }
  ++cursor_;
  // A sample held for half a lap would soon stop every publisher: count it instead.
  if (pinned_ != 0 && cursor_ - pin_at(pins_front_).first > pin_lag_limit_) unpin(false);
  publish_cursor();
  SubscriberSlot& me = map_.subscriber(slot_);
  me.taken.store(me.taken.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  if (out.lost_before != 0) me.lost.store(lost_, std::memory_order_relaxed);
  return Errc::ok;
}
#pragma GCC diagnostic pop

std::uint32_t SubscriberCore::new_entry(std::uint32_t chunk, std::uint32_t row, State state) noexcept {
  // Relaxed: only the taking thread makes entries free. One is free: held_ < max_held_.
  std::uint32_t e = 0;
  while (held_samples_[e].state.load(std::memory_order_relaxed) != State::free) ++e;
  HeldSample& h = held_samples_[e];
  h.sequence = cursor_;
  h.chunk = chunk;
  h.row = row;
  // Relaxed: a releasing thread gets the sample (and this entry) through the user's handoff.
  h.state.store(state, std::memory_order_relaxed);
  return e;
}

SubscriberCore::TakeStep SubscriberCore::take_pinned(const RingSlot& rs, std::uint32_t chunk, Taken& out) noexcept {
  // Under block and fail-publish nobody rewrites this slot while our cursor is at or below
  // its sequence; under drop-oldest the checks after our pin tell whether what we read is
  // one message's. Relaxed: published by the commit word's release, read after its acquire
  // load.
  const std::uint32_t generation = rs.pool_generation.load(std::memory_order_relaxed);
  const std::uint64_t used_bytes = rs.used_bytes.load(std::memory_order_relaxed);
  const std::byte* base = map_.pool_base(map_.pool_of(chunk), generation);
  if (base == nullptr) {  // its pool is gone for us (publisher dead, or not ours to open)
    skip_lost();
    return TakeStep::next;
  }
  // Start pulling the payload's first line across cores now: the reader almost always
  // touches it next.
  out.payload = map_.payload_span(base, chunk);
  __builtin_prefetch(out.payload.data);
  if (map_.unusable()) return TakeStep::failed;  // the region went away while we looked
  // Recoverers and auditors skip marked entries; drop-oldest publishers count them (below).
  // A store to our own line.
  const std::uint32_t row = record_hold(chunk | kHoldPinned);
  if (row == max_held_) return TakeStep::failed;
  if (!block_policy_) {
    // Seq_cst fence: Dekker pairing with the publisher that overwrites this slot (commit
    // store; fence; look for pins of the chunk it displaced): either it sees our pin and
    // counts it for us before it drops the ring's reference, or we see its rewrite here. The
    // fence also orders our reads of the slot's fields before the loads below: a rewrite
    // that began before them shows in `writing`.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (rs.commit.load(std::memory_order_relaxed) != cursor_ + 1 ||
        rs.writing.load(std::memory_order_relaxed) > cursor_ + 1) {
      clear_pin(row, chunk);  // overwritten under us: the message at our cursor is lost
      resync(cursor_ + 1);
      return TakeStep::next;
    }
  }
  const std::uint32_t entry = new_entry(chunk, row, State::pinned);
  out.chunk = chunk;
  out.hold_index = entry;
  out.used_bytes = used_bytes;
  out.pool_base = base;
  return TakeStep::taken;
}

SubscriberCore::TakeStep SubscriberCore::take_counted(std::uint32_t chunk, Taken& out) noexcept {
  // Start pulling the payload's first line across cores now, through this process's current
  // view of the pool (its generation is checked below), in parallel with the reference CAS on
  // the chunk header: the reader almost always touches it next.
  const PoolMapping* view = map_.current_view(map_.pool_of(chunk));
  if (view != nullptr) __builtin_prefetch(map_.payload_at(view->base, chunk));
  // From the reference CAS to the hold-row store (or the release) the reference is ours
  // but unrecorded.
  UnrecordedWindow window(map_.subscriber(slot_).op_seq);
  if (!map_.try_acquire(chunk)) {
    resync(cursor_ + 1);  // freed: the slot moved on under us
    return TakeStep::next;
  }
  ChunkHeader& h = map_.chunk(chunk);
  // Acquire: pairs with the release that made this sequence visible (commit / allocate).
  if (h.sequence.load(std::memory_order_acquire) != cursor_) {
    map_.release(chunk);  // we raced a reuse of this chunk
    resync(cursor_ + 1);
    return TakeStep::next;
  }
  if (map_.unusable()) {  // the region went away while we looked: nothing here is real
    map_.release(chunk);
    return TakeStep::failed;
  }
  // Relaxed: published with the message (the commit word's acquire, then our sequence check).
  const std::uint32_t generation = h.pool_generation.load(std::memory_order_relaxed);
  const std::byte* base = map_.pool_base(map_.pool_of(chunk), generation);
  if (base == nullptr) {  // its pool is gone for us (publisher dead, or not ours to open)
    map_.release(chunk);
    skip_lost();
    return TakeStep::next;
  }
  const std::uint32_t row = record_hold(chunk);
  if (row == max_held_) {
    map_.release(chunk);
    return TakeStep::failed;
  }
  const std::uint32_t entry = new_entry(chunk, row, State::counted);
  out.chunk = chunk;
  out.hold_index = entry;
  out.used_bytes = h.used_bytes.load(std::memory_order_relaxed);
  out.pool_base = base;
  out.payload = map_.payload_span(base, chunk);
  return TakeStep::taken;
}

std::uint32_t SubscriberCore::record_hold(std::uint32_t chunk) noexcept {
  // A free entry exists (every counted hold has a held_samples_ entry, and there are
  // max_held_ of those) unless the row changed under us: the region was lost (its pages now
  // read as zeros) or another process wrote it. Never scan past the row.
  std::uint32_t row = 0;
  while (row < max_held_ && holds_[row].load(std::memory_order_relaxed) != kNoChunk) ++row;
  // Release: a drop-oldest publisher that reads this entry (acquire, TopicMap::count_pins())
  // sees our reads of the samples we released before. (Recoverers read the row after we died:
  // process teardown orders it.)
  if (row < max_held_) holds_[row].store(chunk, std::memory_order_release);
  return row;
}

void SubscriberCore::clear_pin(std::uint32_t row, std::uint32_t chunk) noexcept {
  if (block_policy_) {
    holds_[row].store(kNoChunk, std::memory_order_release);  // release: as in record_hold()
    return;
  }
  // Under drop-oldest a publisher may have counted the pin for us (TopicMap::count_pins()):
  // then the entry holds the bare chunk, and that count is ours to give back.
  UnrecordedWindow window(map_.subscriber(slot_).op_seq);
  // Acq_rel: release as in record_hold(), acquire for the count the publisher added.
  if (holds_[row].exchange(kNoChunk, std::memory_order_acq_rel) == chunk) map_.release(chunk);
}

void SubscriberCore::unpin(bool all) noexcept {
  std::uint64_t pos = pins_front_;
  for (; pos != pins_back_; ++pos) {
    const auto [sequence, entry] = pin_at(pos);
    if (!all && cursor_ - sequence <= pin_lag_limit_) break;
    HeldSample& h = held_samples_[entry];
    State expected = State::pinned;
    // Relaxed: the entry's fields are this thread's own; the CAS only keeps a release on
    // another thread from running into the middle of the conversion (if that release won,
    // collect_foreign_releases() finishes it).
    if (h.sequence != sequence ||
        !h.state.compare_exchange_strong(expected, State::converting, std::memory_order_relaxed)) {
      continue;  // released since (here, or elsewhere: collect_foreign_releases() finishes it)
    }
    --pinned_;
    UnrecordedWindow window(map_.subscriber(slot_).op_seq);
    // The ring still holds its reference (our cursor kept its slot), or under drop-oldest the
    // publisher that displaced it counted our pin (then that count is the sample's), so a
    // count can be taken unless the region is lost; then the sample keeps no reference at all.
    const bool counted = map_.count_pin(holds_[h.row], h.chunk);
    // Release: a thread releasing the sample elsewhere (acquire) sees the row and count.
    h.state.store(counted ? State::counted : State::unreferenced, std::memory_order_release);
  }
  pins_front_ = pos;
  publish_cursor();
}

void SubscriberCore::publish_cursor() noexcept {
  // Drop the front pins that were released or counted since (all of them if none is left).
  if (pinned_ == 0) pins_front_ = pins_back_;
  for (; pins_front_ != pins_back_; ++pins_front_) {
    const auto [sequence, entry] = pin_at(pins_front_);
    if (is_pin(sequence, entry)) break;
  }
  const std::uint64_t cursor = pins_front_ != pins_back_ ? pin_at(pins_front_).first : cursor_;
  if (cursor == shared_cursor_) return;
  // Release: a block-policy publisher reading our cursor (acquire) may reuse the slots before
  // it, so our reads of them (and of their chunks) must be done.
  map_.subscriber(slot_).cursor.store(cursor, std::memory_order_release);
  shared_cursor_ = cursor;
  if (block_policy_) {
    // Seq_cst fence: Dekker pairing with a publisher going to sleep in claim().
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (ctl_.blocked_publishers.load(std::memory_order_relaxed) != 0) {
      // Relaxed: the futex word only has to change; publishers re-check cursors after waking.
      ctl_.space_futex.fetch_add(1, std::memory_order_relaxed);
      futex_wake_all(&ctl_.space_futex);
    }
  }
}

void SubscriberCore::skip_lost() noexcept {
  ++pending_lost_;
  ++lost_;
  ++cursor_;
}

void SubscriberCore::release_hold(std::uint32_t hold_index) noexcept {
  HeldSample& h = held_samples_[hold_index];
  if (pthread_equal(pthread_self(), taking_thread_.load(std::memory_order_relaxed))) {
    release_on_taking_thread(h);
  } else {
    release_elsewhere(h);
  }
}

void SubscriberCore::release_on_taking_thread(HeldSample& h) noexcept {
  // Relaxed: this thread is the only one that changes a held sample's state (the sample is
  // being released here, so no other thread releases it).
  const State state = h.state.load(std::memory_order_relaxed);
  --held_;
  if (state == State::counted) {
    UnrecordedWindow window(map_.subscriber(slot_).op_seq);
    holds_[h.row].store(kNoChunk, std::memory_order_release);  // release: as in record_hold()
    map_.release(h.chunk);
  } else {
    clear_pin(h.row, h.chunk);
  }
  h.state.store(State::free, std::memory_order_relaxed);  // relaxed: only this thread frees
  if (state == State::pinned) {
    --pinned_;
    publish_cursor();  // moves on if this was the oldest pin
  }
}

void SubscriberCore::release_elsewhere(HeldSample& h) noexcept {
  // Our bookkeeping (held_, pins, cursor, op_seq) belongs to the taking thread: mark the
  // sample and leave the rest to it, except a reference count, given back at once so that a
  // taking thread asleep in wait() does not sit on the pool.
  for (;;) {
    State state = h.state.load(std::memory_order_acquire);  // acquire: see unpin()'s release
    if (state == State::converting) {  // the taking thread is counting it right now: nanoseconds
      cpu_relax();
      continue;
    }
    if (state == State::pinned) {
      // Release: the taking thread lets the publisher reuse the slot only after it sees this
      // (acquire), so our reads of the sample come first.
      if (!h.state.compare_exchange_weak(state, State::released_pinned, std::memory_order_release,
                                         std::memory_order_relaxed)) {
        continue;
      }
    } else {  // counted or unreferenced
      ForeignUnrecordedWindow window(map_.subscriber(slot_).foreign_windows);
      holds_[h.row].store(kNoChunk, std::memory_order_relaxed);  // relaxed: as in record_hold()
      if (state == State::counted) map_.release(h.chunk);
      h.state.store(State::released_counted, std::memory_order_release);  // release: as above
    }
    foreign_releases_.fetch_add(1, std::memory_order_release);
    return;
  }
}

void SubscriberCore::collect_foreign_releases() noexcept {
  // Acquire: pairs with the releasing threads' increments.
  if (foreign_releases_.load(std::memory_order_relaxed) == 0 ||
      foreign_releases_.exchange(0, std::memory_order_acquire) == 0) {
    return;
  }
  bool cursor_may_move = false;
  for (std::uint32_t e = 0; e < max_held_; ++e) {
    HeldSample& h = held_samples_[e];
    const State state = h.state.load(std::memory_order_acquire);  // acquire: their release
    if (state != State::released_pinned && state != State::released_counted) continue;
    if (state == State::released_pinned) {
      clear_pin(h.row, h.chunk);
      --pinned_;
      cursor_may_move = true;
    }
    --held_;
    h.state.store(State::free, std::memory_order_relaxed);  // relaxed: only this thread frees
  }
  if (cursor_may_move) publish_cursor();
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
  taking_thread_.store(pthread_self(), std::memory_order_relaxed);  // as in take_chunk()
  collect_foreign_releases();
  if (has_data()) return Errc::ok;
  if (pinned_ != 0) unpin(true);  // a sample we hold must not stop the message we wait for
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

RawSample SubscriberCore::make_sample(const std::shared_ptr<SubscriberCore>& self, const Taken& t) noexcept {
  RawSample s;
  s.core_ = self;
  s.chunk_ = t.chunk;
  s.hold_index_ = t.hold_index;
  s.sequence_ = t.sequence;
  s.lost_before_ = t.lost_before;
  s.data_ = t.payload.data;
  s.pool_base_ = t.pool_base;
  // A hostile publisher could claim more bytes than the chunk has: clamp to the chunk.
  s.size_ = std::min(t.used_bytes, t.payload.capacity);
  return s;
}

}  // namespace shmbus::detail
