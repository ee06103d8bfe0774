// The public raw-bytes API: thin, allocation-free wrappers over PublisherCore/SubscriberCore.
#include "shmbus/raw.hpp"

#include <algorithm>
#include <cstring>

#include "publisher_core.hpp"
#include "reopener.hpp"
#include "subscriber_core.hpp"

namespace shmbus {

namespace {

using Clock = std::chrono::steady_clock;

// Negative (or absurdly long) timeouts wait for good; no deadline is computed for them.
bool bounded_wait(std::chrono::nanoseconds timeout) noexcept {
  return timeout.count() >= 0 && timeout < std::chrono::hours(24 * 365);
}

// After a failed attempt to follow the topic: the next one no sooner than 100 ms, doubling
// to 1 s, as the Client's reconnection does. A daemon that is down is not asked in a loop.
void back_off(detail::Resumption& r, Clock::time_point now) noexcept {
  using std::chrono::milliseconds;
  r.backoff = r.backoff.count() == 0 ? milliseconds(100) : std::min(r.backoff * 2, milliseconds(1000));
  r.retry_at = now + r.backoff;
}

void resumed(detail::Resumption& r) noexcept {
  r.backoff = std::chrono::milliseconds(0);
  r.retry_at = {};
  ++r.count;
}

bool can_resume(const detail::Resumption& r) noexcept { return r.reopener && r.reopener->alive(); }

}  // namespace

// ---------------------------------------------------------------- RawLoan

void RawLoan::give_back() noexcept { std::exchange(core_, nullptr)->return_chunk(chunk_); }

// ---------------------------------------------------------------- RawSample

void RawSample::release() noexcept {
  core_->release_hold(hold_index_);
  core_.reset();
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
  // One call site of loan_chunk(), so that LTO inlines it here as before resumption existed
  // (two made GCC keep it out of line: +9 % instructions per message); a second attempt only
  // after following a revoked topic.
  for (int attempt = 0;; ++attempt) {
    Errc err = Errc::ok;
    const std::uint32_t chunk = core_->loan_chunk(std::max<std::size_t>(size, 1), err);
    if (chunk != detail::kNoChunk) [[likely]] return core_->make_loan(chunk, size);
    if (attempt != 0 || err != Errc::region_lost || !resume()) return err;
  }
}

Status RawPublisher::publish(RawLoan&& loan) noexcept { return publish(std::move(loan), loan.size_); }

Status RawPublisher::publish(RawLoan&& loan, std::size_t used) noexcept {
  if (loan.core_ != core_.get()) {
    for (const auto& old : retired_) {
      if (loan.core_ != old.get()) continue;
      // A loan of a region we left: it cannot be published any more; give its chunk back.
      old->return_chunk(loan.chunk_);
      loan.core_ = nullptr;
      return Errc::region_lost;
    }
    return Errc::misuse;  // a loan of another publisher
  }
  used = std::min(used, loan.size_);
  // Raw writers may have touched the whole loan; typed loans must zero it before reuse.
  core_->describe_raw_message(loan.chunk_, used, loan.size_);
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
bool RawPublisher::resumable() const noexcept { return can_resume(resume_); }

detail::PublisherCore& RawPublisher::core_following_topic() noexcept {
  if (core_->map().unusable()) resume();
  return *core_;
}

bool RawPublisher::resume() noexcept {
  detail::Resumption& r = resume_;
  const Clock::time_point now = Clock::now();
  if (!r.reopener || now < r.retry_at) return false;
  try {
    std::optional<Topic> fresh = r.reopener->reopen(core_->topic(), /*publisher=*/true);
    if (fresh) {
      auto next = std::make_unique<detail::PublisherCore>(*fresh);
      retired_.push_back(std::move(core_));
      core_ = std::move(next);
      r.reopener->register_slot(core_->topic(), /*publisher=*/true, core_->slot());
      resumed(r);
      return true;
    }
  } catch (const std::exception&) {  // no free slot in the fresh region, no memory: try later
  }
  back_off(r, now);
  return false;
}

// ---------------------------------------------------------------- RawSubscriber

namespace {
// The sequence a subscriber core just made starts at: the cursor it stored in its slot (we
// are its only writer, so relaxed).
std::uint64_t start_of(const detail::SubscriberCore& core) noexcept {
  return core.map().subscriber(core.slot()).cursor.load(std::memory_order_relaxed);
}
}  // namespace

RawSubscriber::RawSubscriber(const Topic& topic, SubscriberOptions options)
    : core_(std::make_shared<detail::SubscriberCore>(topic, options)), options_(options), joined_at_(start_of(*core_)) {}
RawSubscriber::~RawSubscriber() {
  if (core_) core_->stop_event_thread();
}
RawSubscriber::RawSubscriber(RawSubscriber&&) noexcept = default;
RawSubscriber& RawSubscriber::operator=(RawSubscriber&&) noexcept = default;

Result<RawSample> RawSubscriber::take() noexcept {
  detail::Taken t;
  // One call site of take_chunk(), as in RawPublisher::loan().
  for (int attempt = 0;; ++attempt) {
    const Errc err = core_->take_chunk(t);
    if (err == Errc::ok) [[likely]] break;
    if (attempt != 0 || err != Errc::region_lost || !resume()) return err;
  }
  if (lost_revoked_unreported_ == 0) [[likely]] return detail::SubscriberCore::make_sample(core_, t);
  return sample_after_resumption(t);
}

Result<RawSample> RawSubscriber::sample_after_resumption(const detail::Taken& t) noexcept {
  RawSample s = detail::SubscriberCore::make_sample(core_, t);
  s.lost_before_ += lost_revoked_unreported_;
  lost_revoked_unreported_ = 0;
  return s;
}

Result<RawSample> RawSubscriber::take_wait(std::chrono::nanoseconds timeout) noexcept {
  const bool bounded = bounded_wait(timeout);
  const auto deadline = Clock::now() + (bounded ? timeout : std::chrono::nanoseconds(0));
  for (;;) {
    if (Status st = core_->wait(timeout); st.ok()) {
      Result<RawSample> s = take();
      if (s || (s.code() != Errc::no_data && s.code() != Errc::region_lost)) return s;
      // no_data: woken, yet nothing to take: what arrived could not be read (a tombstone of a
      // dead publisher, a payload pool that is gone) and was counted lost. Wait for the next.
      if (s.code() == Errc::region_lost) {
        if (Errc e = resume_or_sleep(bounded, deadline); e != Errc::ok) return e;
      }
    } else if (st.code() != Errc::region_lost) {
      return st.code();
    } else if (Errc e = resume_or_sleep(bounded, deadline); e != Errc::ok) {
      return e;
    }
    if (bounded) {
      timeout = deadline - Clock::now();
      if (timeout.count() <= 0) return Errc::timeout;
    }
  }
}

Status RawSubscriber::wait(std::chrono::nanoseconds timeout) noexcept {
  const bool bounded = bounded_wait(timeout);
  const auto deadline = Clock::now() + (bounded ? timeout : std::chrono::nanoseconds(0));
  for (;;) {
    Status st = core_->wait(timeout);
    if (st.ok() || st.code() != Errc::region_lost) return st;
    if (Errc e = resume_or_sleep(bounded, deadline); e != Errc::ok) return e;
    if (bounded) {
      timeout = deadline - Clock::now();
      if (timeout.count() <= 0) return Errc::timeout;
    }
  }
}

Errc RawSubscriber::resume_or_sleep(bool bounded, Clock::time_point deadline) noexcept {
  // Without a Client, region_lost is final: say so at once, and the caller stops.
  while (can_resume(resume_)) {
    if (resume()) return Errc::ok;
    Clock::time_point wake = resume_.retry_at;
    if (bounded) {
      if (Clock::now() >= deadline) break;
      wake = std::min(wake, deadline);
    }
    std::this_thread::sleep_until(wake);  // no spinning while the daemon has no fresh region
  }
  return Errc::region_lost;
}

bool RawSubscriber::resume() noexcept {
  detail::Resumption& r = resume_;
  const Clock::time_point now = Clock::now();
  if (!r.reopener || now < r.retry_at) return false;
  try {
    std::optional<Topic> fresh = r.reopener->reopen(core_->topic(), /*publisher=*/false);
    if (fresh) {
      SubscriberOptions options = options_;
      options.with_history = true;  // the fresh region's retained messages are the topic's
      auto next = std::make_shared<detail::SubscriberCore>(*fresh, options);
      // What the lost region still owed us: published after our cursor, which is where we
      // joined plus what we took and lost there (the slot's cursor word lags behind it by the
      // samples we still pin). Relaxed loads: a count for the user, no data is read by it. A
      // truncated region's words are gone (the SIGBUS guard mapped zeros over them): what it
      // owed cannot be known, count nothing.
      std::uint64_t owed = 0;
      detail::TopicMap& old = core_->map();
      if (old.lost_flag()->load(std::memory_order_acquire) == 0) {  // pairs with the guard's release
        const std::uint64_t tail = old.control().tail.load(std::memory_order_relaxed);
        const std::uint64_t cursor =
            joined_at_ + old.subscriber(core_->slot()).taken.load(std::memory_order_relaxed) + core_->lost();
        owed = tail > cursor ? tail - cursor : 0;
      }
      // And what the fresh region published before we joined, beyond its retained history.
      const std::uint64_t joined = start_of(*next);
      owed += joined;
      lost_earlier_ += core_->lost();
      lost_revoked_ += owed;
      lost_revoked_unreported_ += owed;
      core_ = std::move(next);  // the old core lives on while samples of it do
      joined_at_ = joined;
      r.reopener->register_slot(core_->topic(), /*publisher=*/false, core_->slot());
      resumed(r);
      return true;
    }
  } catch (const std::exception&) {  // no free slot in the fresh region, no memory: try later
  }
  back_off(r, now);
  return false;
}

bool RawSubscriber::has_data() const noexcept { return core_->has_data(); }
int RawSubscriber::event_fd() { return core_->event_fd(); }
std::uint64_t RawSubscriber::lost() const noexcept { return lost_earlier_ + lost_revoked_ + core_->lost(); }
const Topic& RawSubscriber::topic() const noexcept { return core_->topic(); }
std::uint32_t RawSubscriber::slot() const noexcept { return core_->slot(); }
bool RawSubscriber::resumable() const noexcept { return can_resume(resume_); }

}  // namespace shmbus
