// Raw-bytes publishing and subscribing: loan -> write -> publish; take -> read in place -> release.
//
// Hot-path calls are noexcept, take no lock, allocate nothing and make no system call, except
// publish() making one futex wake when a subscriber is asleep and a blocked publisher or a
// subscriber sleeping in wait().
//
// Roles and threads: a RawPublisher or RawSubscriber belongs to one thread at a time (move it
// between threads freely). Loans and samples may be released from any thread.
//
// Revocation: when the topic's region is lost (Errc::region_lost: its file truncated, or the
// bus daemon revoked it), one made or registered through a shmbus::Client (with
// ClientOptions::reconnect) follows the topic to the fresh region the daemon serves, by
// itself; one made without a Client stops for good. See docs/usage.md, "Revocation and
// resumption", and resumable() below.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <thread>
#include <utility>
#include <vector>

#include "shmbus/error.hpp"
#include "shmbus/topic.hpp"

namespace shmbus {

class Client;

namespace detail {
class PublisherCore;
class SubscriberCore;
class Reopener;  // bus/reopener.hpp
struct TopicAccess;  // bus/topic_admin.hpp
struct Taken;

// A publisher's or subscriber's way back to its topic after region_lost: the Client that made
// or registered it, and when to ask it next. Touched only after the core reported region_lost.
struct Resumption {
  std::shared_ptr<Reopener> reopener;  // null: made without a Client; region_lost is final
  std::chrono::steady_clock::time_point retry_at{};
  std::chrono::milliseconds backoff{0};  // 0 after a success; then 100 ms doubling to 1 s
  std::uint64_t count = 0;               // regions followed so far
};
}  // namespace detail

// A chunk loaned from the topic's pool. Write the payload through data(), then hand it to
// RawPublisher::publish(). Destroying an unpublished loan returns the chunk to the pool.
// A loan must not outlive the publisher that made it.
class RawLoan {
 public:
  RawLoan() noexcept = default;
  // Moves, and destroying a moved-from or published loan, are inline and cost nothing more
  // than the copy and a test: a loan changes hands several times on its way to publish().
  RawLoan(RawLoan&& other) noexcept
      : core_(std::exchange(other.core_, nullptr)), data_(other.data_), size_(other.size_), chunk_(other.chunk_) {}
  RawLoan& operator=(RawLoan&& other) noexcept {
    if (this != &other) {
      if (core_ != nullptr) give_back();
      core_ = std::exchange(other.core_, nullptr);
      data_ = other.data_;
      size_ = other.size_;
      chunk_ = other.chunk_;
    }
    return *this;
  }
  ~RawLoan() {
    if (core_ != nullptr) give_back();
  }

  std::span<std::byte> data() const noexcept { return {data_, size_}; }
  std::uint32_t chunk() const noexcept { return chunk_; }
  bool valid() const noexcept { return core_ != nullptr; }

 private:
  friend class detail::PublisherCore;
  friend class RawPublisher;
  void give_back() noexcept;  // returns the chunk of an unpublished loan to the pool; empties it
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
  // Moves, and destroying a moved-from sample, are inline (as RawLoan's): a sample passes
  // through several wrappers (Result, ServiceRequest, ServiceResponse) on its way to the user.
  RawSample(RawSample&& other) noexcept
      : core_(std::move(other.core_)), data_(other.data_), pool_base_(other.pool_base_), size_(other.size_),
        sequence_(other.sequence_), lost_before_(other.lost_before_), chunk_(other.chunk_),
        hold_index_(other.hold_index_) {}
  RawSample& operator=(RawSample&& other) noexcept {
    if (this != &other) {
      if (core_) release();
      core_ = std::move(other.core_);
      data_ = other.data_;
      pool_base_ = other.pool_base_;
      size_ = other.size_;
      sequence_ = other.sequence_;
      lost_before_ = other.lost_before_;
      chunk_ = other.chunk_;
      hold_index_ = other.hold_index_;
    }
    return *this;
  }
  ~RawSample() {
    if (core_) release();
  }

  std::span<const std::byte> data() const noexcept { return {data_, size_}; }
  std::uint64_t sequence() const noexcept { return sequence_; }
  // Messages this subscriber lost between its previous take and this one: overwritten under the
  // drop-oldest policy, or left behind in a revoked region (RawSubscriber::lost_revoked()).
  std::uint64_t lost_before() const noexcept { return lost_before_; }
  // CLOCK_MONOTONIC at publish, or 0 unless the topic has TopicConfig::stamp_publish_time.
  std::uint64_t publish_time_ns() const noexcept;
  std::uint32_t chunk() const noexcept { return chunk_; }
  bool valid() const noexcept { return core_ != nullptr; }
  // The topic the sample came from (valid while valid()).
  const Topic& topic() const noexcept;

 private:
  friend class detail::SubscriberCore;
  friend class RawSubscriber;  // adds what a region change lost to the first sample after it
  void release() noexcept;  // releases the held chunk and drops core_ (empties the sample)
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
  // Errors: message_too_large, pool_exhausted, too_many_loans, region_lost (see resumable()).
  // Never blocks, except once after a region is lost: a resumable publisher then asks its
  // Client for the fresh region (one control request) and loans from there.
  Result<RawLoan> loan(std::size_t size) noexcept;
  // Publishes the first `used` bytes of the loan (all of it by default). On error the loan is
  // returned to the pool. Errors: subscriber_queue_full (fail policy), timeout (block policy;
  // or, under any policy, its ring slot's previous lap stayed uncommitted by a live claimant
  // for max(1 s, block_timeout)), region_lost (the loan's region is lost: a resumable
  // publisher loans from the fresh region next time; a loan of the old region stays a valid
  // object, but publishing it fails so). Never waits longer than that, and never more than
  // 60 s, whatever the shared region says (docs/usage.md, "Bounded waits").
  Status publish(RawLoan&& loan) noexcept;
  Status publish(RawLoan&& loan, std::size_t used) noexcept;
  // Copies `bytes` into a new loan and publishes it: a convenience, not the zero-copy path.
  Status publish_copy(std::span<const std::byte> bytes) noexcept;

  // Explains a failed loan in one paragraph: the topic, the sizes, and for pool_exhausted who
  // holds the chunks (per size class, and per publisher/subscriber pid). Allocates; call it
  // off the hot path, e.g. when logging the failure.
  std::string explain(Errc error, std::size_t requested_bytes) const;

  // The topic of the region it publishes into now (the fresh one after a resumption).
  const Topic& topic() const noexcept;
  std::uint32_t slot() const noexcept;
  // True when region_lost is not final: made or registered through a Client that still exists
  // and reconnects. Such a publisher follows a revoked topic to its fresh region by itself.
  bool resumable() const noexcept;
  // Fresh regions this publisher moved to after region_lost.
  std::uint64_t resumptions() const noexcept { return resume_.count; }

 private:
  friend class Client;
  friend struct detail::TopicAccess;  // core(), for the library's typed layer and tools
  // The current core; for a resumable publisher whose region is lost, first moves to the
  // fresh region (typed loans come through here).
  detail::PublisherCore& core() noexcept {
    if (resume_.reopener) [[unlikely]] return core_following_topic();
    return *core_;
  }
  detail::PublisherCore& core_following_topic() noexcept;
  // After region_lost: moves to the topic's fresh region. False when there is none (yet).
  bool resume() noexcept;
  std::unique_ptr<detail::PublisherCore> core_;
  // Cores of regions left behind: loans made on them stay valid objects until we are gone.
  std::vector<std::unique_ptr<detail::PublisherCore>> retired_;
  mutable detail::Resumption resume_;  // set by Client::register_publisher (on a const&)
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
  // messages published after joining. (On a fresh region after a revocation a subscriber
  // always starts with the retained history: it already belongs to the topic.)
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
  // A resumable subscriber meets region_lost only while no fresh region can be had (the
  // daemon is unreachable, or serves no fresh region yet): it asks its Client again at most
  // every 100 ms..1 s (backing off), and takes from the fresh region once there is one.
  // Skips at most two laps of lost or unreadable messages per call, then says no_data.
  Result<RawSample> take() noexcept;
  // Waits for a message, then takes it. Errors: timeout, plus those of take(). A resumable
  // subscriber whose region is lost sleeps between attempts to reopen (no spinning) and
  // returns region_lost when the timeout passes without a fresh region; a negative timeout
  // waits for good. One that is not resumable returns region_lost at once: stop then.
  Result<RawSample> take_wait(std::chrono::nanoseconds timeout) noexcept;
  // Waits until take() would return a message, or the timeout passes (Errc::timeout).
  // region_lost as for take_wait().
  Status wait(std::chrono::nanoseconds timeout) noexcept;
  // True when take() would return a message now.
  bool has_data() const noexcept;

  // A file descriptor that is readable while data is available, for epoll/poll loops. A
  // helper thread is started on first call; read the fd (8 bytes) after waking, then take()
  // until no_data. The fd is owned by the subscriber. After a resumption (resumptions() grew)
  // it is a new descriptor: the old one is closed once the old region's samples are gone.
  int event_fd();

  // Total lost: overwritten under drop-oldest, plus lost_revoked().
  std::uint64_t lost() const noexcept;
  // Of lost(), those lost to revocations: messages of a revoked region this subscriber had not
  // taken yet (when its control words could still be read; a truncated region's cannot), and
  // messages of the fresh region published before it joined there, beyond the retained history.
  std::uint64_t lost_revoked() const noexcept { return lost_revoked_; }
  // The topic of the region it reads now (the fresh one after a resumption).
  const Topic& topic() const noexcept;
  std::uint32_t slot() const noexcept;
  // True when region_lost is not final: made or registered through a Client that still exists
  // and reconnects. Such a subscriber follows a revoked topic to its fresh region by itself.
  bool resumable() const noexcept;
  // Fresh regions this subscriber moved to after region_lost.
  std::uint64_t resumptions() const noexcept { return resume_.count; }

 private:
  friend class Client;
  friend struct detail::TopicAccess;  // core(), for the library's typed layer and tools
  detail::SubscriberCore& core() noexcept { return *core_; }
  // After region_lost: counts what the old region still owed us, moves to the topic's fresh
  // region. False when there is none (yet).
  bool resume() noexcept;
  // take_wait()/wait() on a lost region: resumes, or sleeps until the next attempt is due or
  // `deadline` passes (then region_lost). Unbounded when `bounded` is false.
  Errc resume_or_sleep(bool bounded, std::chrono::steady_clock::time_point deadline) noexcept;
  // take()'s first sample after a resumption: carries what the region change lost.
  Result<RawSample> sample_after_resumption(const detail::Taken& t) noexcept;
  std::shared_ptr<detail::SubscriberCore> core_;
  SubscriberOptions options_;
  std::uint64_t joined_at_ = 0;           // the sequence core_ started at
  std::uint64_t lost_earlier_ = 0;        // lost() of the cores of regions left behind
  std::uint64_t lost_revoked_ = 0;
  std::uint64_t lost_revoked_unreported_ = 0;  // not yet in a sample's lost_before()
  mutable detail::Resumption resume_;     // set by Client::register_subscriber (on a const&)
};

}  // namespace shmbus
