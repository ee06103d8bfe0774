// The public raw-bytes API: thin, allocation-free wrappers over PublisherCore/SubscriberCore.
#include "shmbus/raw.hpp"

#include <algorithm>
#include <cstring>

#include "publisher_core.hpp"
#include "subscriber_core.hpp"

namespace shmbus {

// ---------------------------------------------------------------- RawLoan

RawLoan::RawLoan(RawLoan&& o) noexcept
    : core_(std::exchange(o.core_, nullptr)), data_(o.data_), size_(o.size_), chunk_(o.chunk_) {}

RawLoan& RawLoan::operator=(RawLoan&& o) noexcept {
  if (this != &o) {
    this->~RawLoan();
    new (this) RawLoan(std::move(o));
  }
  return *this;
}

RawLoan::~RawLoan() {
  if (core_ != nullptr) core_->return_chunk(chunk_);
}

// ---------------------------------------------------------------- RawSample

RawSample::RawSample(RawSample&& o) noexcept
    : core_(std::move(o.core_)), data_(o.data_), pool_base_(o.pool_base_), size_(o.size_), sequence_(o.sequence_),
      lost_before_(o.lost_before_), chunk_(o.chunk_), hold_index_(o.hold_index_) {}

RawSample& RawSample::operator=(RawSample&& o) noexcept {
  if (this != &o) {
    this->~RawSample();
    new (this) RawSample(std::move(o));
  }
  return *this;
}

RawSample::~RawSample() {
  if (core_) core_->release_hold(hold_index_);
}

std::uint64_t RawSample::publish_time_ns() const noexcept {
  return core_ ? core_->map().chunk(chunk_).publish_ns.load(std::memory_order_relaxed) : 0;
}

const Topic& RawSample::topic() const noexcept { return core_->topic(); }

// ---------------------------------------------------------------- RawPublisher

RawPublisher::RawPublisher(const Topic& topic) : core_(std::make_unique<detail::PublisherCore>(topic)) {}
RawPublisher::~RawPublisher() = default;
RawPublisher::RawPublisher(RawPublisher&&) noexcept = default;
RawPublisher& RawPublisher::operator=(RawPublisher&&) noexcept = default;

Result<RawLoan> RawPublisher::loan(std::size_t size) noexcept {
  Errc err = Errc::ok;
  std::uint32_t chunk = core_->loan_chunk(std::max<std::size_t>(size, 1), err);
  if (chunk == detail::kNoChunk) return err;
  return core_->make_loan(chunk, size);
}

Status RawPublisher::publish(RawLoan&& loan) noexcept { return publish(std::move(loan), loan.size_); }

Status RawPublisher::publish(RawLoan&& loan, std::size_t used) noexcept {
  if (loan.core_ != core_.get()) return Errc::invalid_config;  // a loan of another publisher
  detail::ChunkHeader& h = core_->map().chunk(loan.chunk_);
  used = std::min(used, loan.size_);
  h.used_bytes.store(used, std::memory_order_relaxed);
  h.flags.store(0, std::memory_order_relaxed);
  // Raw writers may have touched the whole loan; typed loans must zero it before reuse.
  std::uint64_t dirty = std::max<std::uint64_t>(h.dirty_bytes.load(std::memory_order_relaxed), loan.size_);
  h.dirty_bytes.store(dirty, std::memory_order_relaxed);
  std::uint32_t chunk = loan.chunk_;
  loan.core_ = nullptr;  // the chunk now belongs to the commit below, whatever it returns
  Status st = core_->commit(chunk);
  if (!st.ok()) core_->return_chunk(chunk);
  return st;
}

Status RawPublisher::publish_copy(std::span<const std::byte> bytes) noexcept {
  Result<RawLoan> loan = this->loan(bytes.size());
  if (!loan) return loan.code();
  std::memcpy(loan->data().data(), bytes.data(), bytes.size());
  return publish(std::move(loan.value()));
}

std::string RawPublisher::explain(Errc error, std::size_t requested_bytes) const {
  return core_->explain(error, requested_bytes);
}

const Topic& RawPublisher::topic() const noexcept { return core_->topic(); }
std::uint32_t RawPublisher::slot() const noexcept { return core_->slot(); }

// ---------------------------------------------------------------- RawSubscriber

RawSubscriber::RawSubscriber(const Topic& topic, SubscriberOptions options)
    : core_(std::make_shared<detail::SubscriberCore>(topic, options)) {}
RawSubscriber::~RawSubscriber() {
  if (core_) core_->stop_event_thread();
}
RawSubscriber::RawSubscriber(RawSubscriber&&) noexcept = default;
RawSubscriber& RawSubscriber::operator=(RawSubscriber&&) noexcept = default;

Result<RawSample> RawSubscriber::take() noexcept {
  detail::Taken t;
  Errc err = core_->take_chunk(t);
  if (err != Errc::ok) return err;
  return detail::SubscriberCore::make_sample(core_, t);
}

Result<RawSample> RawSubscriber::take_wait(std::chrono::nanoseconds timeout) noexcept {
  // Negative (or absurdly long) timeouts wait for good; compute no deadline for them.
  const bool bounded = timeout.count() >= 0 && timeout < std::chrono::hours(24 * 365);
  const auto deadline = std::chrono::steady_clock::now() + (bounded ? timeout : std::chrono::nanoseconds(0));
  for (;;) {
    if (Status st = core_->wait(timeout); !st.ok()) return st.code();
    Result<RawSample> s = take();
    if (s || s.code() != Errc::no_data) return s;
    // Woken, yet nothing to take: what arrived could not be read (a tombstone of a dead
    // publisher, a payload pool that is gone) and was counted lost. Wait for the next one.
    if (bounded) {
      timeout = deadline - std::chrono::steady_clock::now();
      if (timeout.count() <= 0) return Errc::timeout;
    }
  }
}

Status RawSubscriber::wait(std::chrono::nanoseconds timeout) noexcept { return core_->wait(timeout); }
bool RawSubscriber::has_data() const noexcept { return core_->has_data(); }
int RawSubscriber::event_fd() { return core_->event_fd(); }
std::uint64_t RawSubscriber::lost() const noexcept { return core_->lost(); }
const Topic& RawSubscriber::topic() const noexcept { return core_->topic(); }
std::uint32_t RawSubscriber::slot() const noexcept { return core_->slot(); }

}  // namespace shmbus
