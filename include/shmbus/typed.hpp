// Typed publish/subscribe of Cap'n Proto messages, built and read in place in shared memory.
//
//   shmbus::Publisher<Frame> pub(topic);
//   auto loan = pub.loan();                 // a MessageLoan<Frame>; check loan.status()
//   auto frame = loan.init();               // Frame::Builder in shared memory
//   frame.setWidth(640);
//   pub.publish(loan);
//
//   shmbus::Subscriber<Frame> sub(topic);
//   if (auto sample = sub.take()) {         // Result<Sample<Frame>>
//     Frame::Reader f = sample->root();     // reads in place, no copy
//   }
//
// Security: every message is validated on take() (a full traversal within ReaderOptions
// limits), so a malformed message is Errc::malformed_message for that subscriber, which then
// moves on to the next one. Reading stays bounds-checked afterwards: Cap'n Proto throws
// kj::Exception rather than read out of bounds.
//
// Threads: as for the raw API (shmbus/raw.hpp).
#pragma once

#include <capnp/generated-header-support.h>
#include <capnp/message.h>

#include <optional>

#include "shmbus/detail/chunk_message.hpp"
#include "shmbus/raw.hpp"

namespace shmbus {

// A message under construction in loaned chunks. Not movable: it is returned by value
// (guaranteed elision) and published with Publisher<T>::publish(loan). Destroying an
// unpublished loan returns its chunks to the pool.
template <typename T>
class MessageLoan {
 public:
  MessageLoan(const MessageLoan&) = delete;
  MessageLoan& operator=(const MessageLoan&) = delete;

  bool ok() const noexcept { return builder_.status().ok(); }
  explicit operator bool() const noexcept { return ok(); }
  Status status() const noexcept { return builder_.status(); }
  // Initialises the root struct (once) and returns its builder.
  typename T::Builder init() { return builder_.template initRoot<T>(); }
  typename T::Builder root() { return builder_.template getRoot<T>(); }
  capnp::MessageBuilder& builder() noexcept { return builder_; }

 private:
  template <typename>
  friend class Publisher;
  MessageLoan(detail::PublisherCore& core, std::size_t first_segment_bytes) noexcept
      : builder_(core, first_segment_bytes) {}
  detail::ChunkMessageBuilder builder_;
};

// A topic configuration for messages of type T: records T's type id and schema in the region
// (see TopicConfig::schema), so tools can decode it. Adjust pools and policies afterwards.
template <typename T>
TopicConfig typed_topic(std::string name) {
  TopicConfig c;
  c.name = std::move(name);
  c.type_id = capnp::typeId<T>();
  c.schema = detail::serialize_schema(capnp::Schema::from<T>());
  return c;
}

template <typename T>
class Publisher {
 public:
  // Registers a publisher; throws Error(type_mismatch) when the topic records another type.
  explicit Publisher(const Topic& topic) : raw_(topic) {
    check_type(topic, capnp::typeId<T>());
  }

  // Loans the first segment: the smallest chunk holding `first_segment_bytes` (default: the
  // smallest class). Check status() before use: pool_exhausted, too_many_loans,
  // message_too_large.
  MessageLoan<T> loan(std::size_t first_segment_bytes = 0) noexcept {
    return MessageLoan<T>(detail::core_of(raw_), first_segment_bytes);
  }
  Status publish(MessageLoan<T>& loan) noexcept { return loan.builder_.publish(); }

  RawPublisher& raw() noexcept { return raw_; }

 private:
  static void check_type(const Topic& topic, std::uint64_t id) {
    if (topic.config().type_id != 0 && topic.config().type_id != id) {
      throw Error(Errc::type_mismatch, "topic '" + topic.name() + "' carries type id " +
                                           std::to_string(topic.config().type_id) + ", not " + std::to_string(id));
    }
  }
  RawPublisher raw_;
  template <typename>
  friend class Subscriber;
};

// A typed message read in place. Movable; the message stays valid and unchanged until the
// sample is destroyed.
template <typename T>
class Sample {
 public:
  Sample() = default;
  Sample(Sample&& o) noexcept : raw_(std::move(o.raw_)), table_(o.table_), options_(o.options_) {
    if (raw_.valid()) reader_.emplace(table_.array(), options_);
    o.reader_.reset();
  }
  Sample& operator=(Sample&& o) noexcept {
    if (this != &o) {
      reader_.reset();
      raw_ = std::move(o.raw_);
      table_ = o.table_;
      options_ = o.options_;
      if (raw_.valid()) reader_.emplace(table_.array(), options_);
      o.reader_.reset();
    }
    return *this;
  }
  ~Sample() { reader_.reset(); }

  typename T::Reader root() const { return reader_->template getRoot<T>(); }
  capnp::MessageReader& reader() const { return *reader_; }
  std::uint64_t sequence() const noexcept { return raw_.sequence(); }
  std::uint64_t lost_before() const noexcept { return raw_.lost_before(); }
  std::uint64_t publish_time_ns() const noexcept { return raw_.publish_time_ns(); }
  const RawSample& raw() const noexcept { return raw_; }
  unsigned segment_count() const noexcept { return table_.count; }

 private:
  template <typename>
  friend class Subscriber;
  RawSample raw_;
  detail::SegmentTable table_;
  capnp::ReaderOptions options_;
  mutable std::optional<capnp::SegmentArrayMessageReader> reader_;
};

template <typename T>
class Subscriber {
 public:
  explicit Subscriber(const Topic& topic, SubscriberOptions options = {})
      : raw_(topic, options), options_(detail::reader_options(topic)) {
    Publisher<T>::check_type(topic, capnp::typeId<T>());
  }

  // Takes and validates the next message. Errors: no_data, malformed_message (that message
  // is skipped), too_many_held.
  Result<Sample<T>> take() noexcept {
    Result<RawSample> raw = raw_.take();
    if (!raw) return raw.code();
    return from_raw(std::move(raw.value()));
  }
  Result<Sample<T>> take_wait(std::chrono::nanoseconds timeout) noexcept {
    Result<RawSample> raw = raw_.take_wait(timeout);
    if (!raw) return raw.code();
    return from_raw(std::move(raw.value()));
  }
  Status wait(std::chrono::nanoseconds timeout) noexcept { return raw_.wait(timeout); }
  bool has_data() const noexcept { return raw_.has_data(); }
  int event_fd() { return raw_.event_fd(); }
  std::uint64_t lost() const noexcept { return raw_.lost(); }
  RawSubscriber& raw() noexcept { return raw_; }

 private:
  Result<Sample<T>> from_raw(RawSample&& raw) noexcept {
    Sample<T> s;
    s.raw_ = std::move(raw);
    if (!detail::read_segments(s.raw_, s.table_)) {
      detail::count_malformed(raw_);
      return Errc::malformed_message;
    }
    s.options_ = options_;
    s.reader_.emplace(s.table_.array(), options_);
    if (!detail::validate_message(*s.reader_)) {
      detail::count_malformed(raw_);
      return Errc::malformed_message;
    }
    return Result<Sample<T>>(std::move(s));
  }

  RawSubscriber raw_;
  capnp::ReaderOptions options_;
};

}  // namespace shmbus
