// detail::SubscriberCore: a registered subscriber slot, the take protocol and waiting.
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>

#include "shmbus/raw.hpp"
#include "topic_map.hpp"

namespace shmbus::detail {

// What take_chunk() found.
struct Taken {
  std::uint32_t chunk = kNoChunk;
  std::uint32_t hold_index = 0;
  std::uint64_t sequence = 0;
  std::uint64_t lost_before = 0;
  const std::byte* pool_base = nullptr;  // this process's mapping of the message's pool
};

class SubscriberCore : public std::enable_shared_from_this<SubscriberCore> {
 public:
  SubscriberCore(const Topic& topic, SubscriberOptions options);
  ~SubscriberCore();

  // Takes a reference to the next message's head chunk and records it in the hold row.
  Errc take_chunk(Taken& out) noexcept;
  // Releases a chunk taken by take_chunk().
  void release_hold(std::uint32_t chunk, std::uint32_t hold_index) noexcept;
  bool has_data() const noexcept;
  Status wait(std::chrono::nanoseconds timeout) noexcept;
  int event_fd();
  void stop_event_thread() noexcept;

  RawSample make_sample(const Taken& t) noexcept;
  // The base of the pool mapping a sample's payload was read through (its further segments
  // are in the same pool).
  static const std::byte* pool_base_of(const RawSample& s) noexcept { return s.pool_base_; }
  const Topic& topic() const noexcept { return topic_; }
  TopicMap& map() const noexcept { return map_; }
  std::uint32_t slot() const noexcept { return slot_; }
  std::uint64_t lost() const noexcept { return lost_; }

 private:
  Status sleep_until_data(std::uint64_t deadline_ns) noexcept;
  void resync(std::uint64_t seen_commit) noexcept;
  void skip_lost() noexcept;  // the message at the cursor cannot be read: count it lost
  void publish_cursor() noexcept;  // stores cursor_ into our slot, for block-policy publishers

  Topic topic_;
  TopicMap& map_;
  TopicControl& ctl_;
  SubscriberOptions options_;
  std::uint32_t slot_ = 0;
  std::atomic<std::uint32_t>* holds_ = nullptr;
  std::uint32_t max_held_ = 0;
  std::uint32_t held_ = 0;
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
