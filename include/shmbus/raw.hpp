// Raw-bytes publishing and subscribing: loan -> write -> publish; take -> read in place -> release.
//
// Hot-path calls are noexcept, take no lock, allocate nothing and make no system call, except
// publish() making one futex wake when a subscriber is asleep and a blocked publisher or a
// subscriber sleeping in wait().
//
// Roles and threads: a RawPublisher or RawSubscriber belongs to one thread at a time (move it
// between threads freely). Loans and samples may be released from any thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <thread>

#include "shmbus/error.hpp"
#include "shmbus/topic.hpp"

namespace shmbus {

namespace detail {
class PublisherCore;
class SubscriberCore;
}  // namespace detail

// A chunk loaned from the topic's pool. Write the payload through data(), then hand it to
// RawPublisher::publish(). Destroying an unpublished loan returns the chunk to the pool.
// A loan must not outlive the publisher that made it.
class RawLoan {
 public:
  RawLoan() noexcept = default;
  RawLoan(RawLoan&& other) noexcept;
  RawLoan& operator=(RawLoan&& other) noexcept;
  ~RawLoan();

  std::span<std::byte> data() const noexcept { return {data_, size_}; }
  std::uint32_t chunk() const noexcept { return chunk_; }
  bool valid() const noexcept { return core_ != nullptr; }

 private:
  friend class detail::PublisherCore;
  friend class RawPublisher;
  detail::PublisherCore* core_ = nullptr;
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
  std::uint32_t chunk_ = 0;
};

// A message taken by a subscriber, read in place in shared memory. Its bytes stay valid and
// unchanged until the sample is destroyed; then the chunk may be reused.
class RawSample {
 public:
  RawSample() noexcept = default;
  RawSample(RawSample&& other) noexcept;
  RawSample& operator=(RawSample&& other) noexcept;
  ~RawSample();

  std::span<const std::byte> data() const noexcept { return {data_, size_}; }
  std::uint64_t sequence() const noexcept { return sequence_; }
  // Messages this subscriber lost (drop-oldest policy) between its previous take and this one.
  std::uint64_t lost_before() const noexcept { return lost_before_; }
  // CLOCK_MONOTONIC at publish, or 0 unless the topic has TopicConfig::stamp_publish_time.
  std::uint64_t publish_time_ns() const noexcept;
  std::uint32_t chunk() const noexcept { return chunk_; }
  bool valid() const noexcept { return core_ != nullptr; }
  // The topic the sample came from (valid while valid()).
  const Topic& topic() const noexcept;

 private:
  friend class detail::SubscriberCore;
  std::shared_ptr<detail::SubscriberCore> core_;
  const std::byte* data_ = nullptr;
  const std::byte* pool_base_ = nullptr;
  std::size_t size_ = 0;
  std::uint64_t sequence_ = 0;
  std::uint64_t lost_before_ = 0;
  std::uint32_t chunk_ = 0;
  std::uint32_t hold_index_ = 0;
};

class RawPublisher {
 public:
  // Registers a publisher slot in the topic. Throws Error(too_many_publishers).
  explicit RawPublisher(const Topic& topic);
  ~RawPublisher();
  RawPublisher(RawPublisher&&) noexcept;
  RawPublisher& operator=(RawPublisher&&) noexcept;

  // Loans a chunk of at least `size` bytes (the smallest size class that fits).
  // Errors: message_too_large, pool_exhausted, too_many_loans. Never blocks.
  Result<RawLoan> loan(std::size_t size) noexcept;
  // Publishes the first `used` bytes of the loan (all of it by default). On error the loan is
  // returned to the pool. Errors: subscriber_queue_full (fail policy), timeout (block policy;
  // or, under any policy, its ring slot's previous lap stayed uncommitted by a live claimant
  // for max(1 s, block_timeout)), region_lost. Never waits longer than that, and never more
  // than 60 s, whatever the shared region says (docs/usage.md, "Bounded waits").
  Status publish(RawLoan&& loan) noexcept;
  Status publish(RawLoan&& loan, std::size_t used) noexcept;
  // Copies `bytes` into a new loan and publishes it: a convenience, not the zero-copy path.
  Status publish_copy(std::span<const std::byte> bytes) noexcept;

  // Explains a failed loan in one paragraph: the topic, the sizes, and for pool_exhausted who
  // holds the chunks (per size class, and per publisher/subscriber pid). Allocates; call it
  // off the hot path, e.g. when logging the failure.
  std::string explain(Errc error, std::size_t requested_bytes) const;

  const Topic& topic() const noexcept;
  std::uint32_t slot() const noexcept;
  detail::PublisherCore& core() noexcept { return *core_; }

 private:
  std::unique_ptr<detail::PublisherCore> core_;
};

// How a subscriber waits for data in wait()/take_wait().
enum class WaitMode {
  busy_poll,  // spin; lowest latency, burns a core
  block,      // sleep on a futex at once
  adaptive,   // spin for spin_time, then sleep
};

struct SubscriberOptions {
  WaitMode wait_mode = WaitMode::adaptive;
  std::chrono::nanoseconds spin_time = std::chrono::microseconds(50);
  // Start with the topic's retained history (up to history_depth messages) instead of only
  // messages published after joining.
  bool with_history = true;
};

class RawSubscriber {
 public:
  // Registers a subscriber slot. Throws Error(too_many_subscribers).
  explicit RawSubscriber(const Topic& topic, SubscriberOptions options = {});
  ~RawSubscriber();
  RawSubscriber(RawSubscriber&&) noexcept;
  RawSubscriber& operator=(RawSubscriber&&) noexcept;

  // Takes the next message in order, or Errc::no_data. Errors: too_many_held, region_lost.
  // Skips at most two laps of lost or unreadable messages per call, then says no_data.
  Result<RawSample> take() noexcept;
  // Waits for a message, then takes it. Errors: timeout, plus those of take().
  Result<RawSample> take_wait(std::chrono::nanoseconds timeout) noexcept;
  // Waits until take() would return a message, or the timeout passes (Errc::timeout).
  Status wait(std::chrono::nanoseconds timeout) noexcept;
  // True when take() would return a message now.
  bool has_data() const noexcept;

  // A file descriptor that is readable while data is available, for epoll/poll loops. A
  // helper thread is started on first call; read the fd (8 bytes) after waking, then take()
  // until no_data. The fd is owned by the subscriber.
  int event_fd();

  std::uint64_t lost() const noexcept;  // total lost to drop-oldest
  const Topic& topic() const noexcept;
  std::uint32_t slot() const noexcept;
  detail::SubscriberCore& core() noexcept { return *core_; }

 private:
  std::shared_ptr<detail::SubscriberCore> core_;
};

}  // namespace shmbus
