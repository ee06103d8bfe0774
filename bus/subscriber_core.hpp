// detail::SubscriberCore: a registered subscriber slot, the take protocol and waiting.
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "shmbus/raw.hpp"
#include "topic_map.hpp"

namespace shmbus::detail {

// What take_chunk() found.
struct Taken {
  std::uint32_t chunk = kNoChunk;
  std::uint32_t hold_index = 0;  // index into SubscriberCore::held_samples_
  std::uint64_t sequence = 0;
  std::uint64_t lost_before = 0;
  std::uint64_t used_bytes = 0;          // as the publisher declared it (clamp before use)
  const std::byte* pool_base = nullptr;  // this process's mapping of the message's pool
  TopicMap::PayloadSpan payload{};       // the head chunk's payload in that mapping
};

class SubscriberCore {
 public:
  SubscriberCore(const Topic& topic, SubscriberOptions options);
  ~SubscriberCore();

  // Takes the next message's head chunk: pinned by our cursor when the policy allows it,
  // otherwise by a counted reference recorded in the hold row (layout.hpp, protocol summary).
  Errc take_chunk(Taken& out) noexcept;
  // Releases the sample take_chunk() recorded in held_samples_[hold_index].
  void release_hold(std::uint32_t hold_index) noexcept;
  bool has_data() const noexcept;
  Status wait(std::chrono::nanoseconds timeout) noexcept;
  int event_fd();
  void stop_event_thread() noexcept;

  // `self` is the subscriber's own owner (RawSubscriber::core_): the sample copies it, one
  // atomic increment, where shared_from_this() would lock a weak pointer in a CAS loop.
  static RawSample make_sample(const std::shared_ptr<SubscriberCore>& self, const Taken& t) noexcept;
  // The base of the pool mapping a sample's payload was read through (its further segments
  // are in the same pool).
  static const std::byte* pool_base_of(const RawSample& s) noexcept { return s.pool_base_; }
  // The subscriber that took a sample (null for an empty sample).
  static SubscriberCore* taker_of(const RawSample& s) noexcept { return s.core_.get(); }
  const Topic& topic() const noexcept { return topic_; }
  TopicMap& map() const noexcept { return map_; }
  std::uint32_t slot() const noexcept { return slot_; }
  std::uint64_t lost() const noexcept { return lost_; }

 private:
  Status sleep_until_data(std::uint64_t deadline_ns) noexcept;
  void resync(std::uint64_t seen_commit) noexcept;
  void skip_lost() noexcept;  // the message at the cursor cannot be read: count it lost
  // Stores into our slot the cursor publishers must respect: the oldest pinned sequence we
  // hold, or cursor_. Wakes block-policy publishers when it moved.
  void publish_cursor() noexcept;
  // One attempt at the message at cursor_: taken (out set), next (it was skipped or counted
  // lost: look at cursor_ again), or failed (region lost, or our hold row is broken).
  enum class TakeStep { taken, next, failed };
  TakeStep take_pinned(const RingSlot& rs, std::uint32_t chunk, Taken& out) noexcept;
  TakeStep take_counted(std::uint32_t chunk, Taken& out) noexcept;
  // Turns pinned samples into counted references, so that our cursor no longer holds
  // publishers back: all of them (before we wait), or those more than half a lap old.
  void unpin(bool all) noexcept;
  std::uint32_t record_hold(std::uint32_t chunk) noexcept;  // its hold-row entry, or max_held_
  // Clears the hold-row entry of a pinned (or unreferenced) sample of `chunk`, giving back the
  // count a drop-oldest publisher may have turned the pin into.
  void clear_pin(std::uint32_t row, std::uint32_t chunk) noexcept;

  // A sample the user holds, recorded in hold-row entry `row`. Its state:
  //   pinned        kept alive by the ring's reference (layout.hpp); its row entry carries
  //                 kHoldPinned. Under drop-oldest the publisher that displaces it may turn
  //                 the entry into a counted reference meanwhile (clear_pin() gives it back).
  //   counted       holds a reference (a converted pin, history before pin_safe_from_, a
  //                 one-slot ring)
  //   unreferenced  a pin that could not be converted because the region was lost
  // The taking thread moves free -> pinned|counted (take), pinned -> converting ->
  // counted|unreferenced (unpin), and back to free when a release is finished. A sample
  // released on another thread moves pinned -> released_pinned (the taking thread then clears
  // the row and moves the cursor), or gives a counted reference back itself and moves to
  // released_counted; the taking thread finishes both (collect_foreign_releases()).
  enum class State : std::uint8_t { free, pinned, converting, counted, unreferenced, released_pinned, released_counted };
  struct HeldSample {
    std::uint64_t sequence = 0;
    std::uint32_t chunk = kNoChunk;
    std::uint32_t row = 0;
    std::atomic<State> state{State::free};
  };
  // Records the sample at cursor_ in a free held_samples_ entry; returns its index.
  std::uint32_t new_entry(std::uint32_t chunk, std::uint32_t row, State state) noexcept;
  void release_on_taking_thread(HeldSample& h) noexcept;
  void release_elsewhere(HeldSample& h) noexcept;
  // Finishes the releases other threads left: at a take, a wait, and before sleeping.
  void collect_foreign_releases() noexcept;
  bool is_pin(std::uint64_t sequence, std::uint32_t entry) const noexcept {
    const HeldSample& h = held_samples_[entry];
    // Acquire: a pin released elsewhere was read completely before it left `pinned`.
    return h.sequence == sequence && h.state.load(std::memory_order_acquire) == State::pinned;
  }

  Topic topic_;
  TopicMap& map_;
  TopicControl& ctl_;
  SubscriberOptions options_;
  std::uint32_t slot_ = 0;
  std::atomic<std::uint32_t>* holds_ = nullptr;
  std::uint32_t max_held_ = 0;
  std::uint32_t held_ = 0;
  std::unique_ptr<HeldSample[]> held_samples_;  // max_held_ entries; allocated once
  // The thread that takes (set at each take): only it touches the bookkeeping below. A sample
  // released on another thread is only marked there (foreign_releases_ counts the marks).
  std::atomic<pthread_t> taking_thread_{};
  std::atomic<std::uint32_t> foreign_releases_{0};
  // Pinned samples in take order (sequence, entry); the front may be stale (released or
  // converted since): pop such fronts. Circular, never larger than the pin lag limit + 1.
  std::vector<std::pair<std::uint64_t, std::uint32_t>> pins_;
  std::uint64_t pins_front_ = 0, pins_back_ = 0;
  std::pair<std::uint64_t, std::uint32_t>& pin_at(std::uint64_t pos) noexcept { return pins_[pos & (pins_.size() - 1)]; }
  std::uint32_t pinned_ = 0;
  bool pinning_ = false;             // takes pin (a ring of two slots or more)
  std::uint64_t pin_safe_from_ = 0;  // older messages may be overwritten under us: count them
  std::uint64_t pin_lag_limit_ = 0;  // unpin samples older than this many messages
  std::uint64_t cursor_ = 0;     // local copy of the slot's cursor (we are its only writer)
  std::uint64_t shared_cursor_ = 0;  // what we last stored in the slot's cursor
  std::uint64_t lost_ = 0;
  std::uint64_t pending_lost_ = 0;  // lost since the last successful take
  bool block_policy_ = false;
  bool file_backed_ = false;
  // event_fd() support
  int event_fd_ = -1;
  std::thread event_thread_;
  std::atomic<bool> stop_{false};
};

}  // namespace shmbus::detail
