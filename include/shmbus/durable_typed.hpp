// Typed durable logs: Cap'n Proto messages built directly in the log's record, and read there.
//
//   shmbus::TypedDurableAppender<Reading> log(config);     // records Reading's type id and schema
//   auto loan = log.loan(256);                             // a record with room for 256 bytes
//   if (loan) {
//     Reading::Builder r = loan.init();                    // builds in the mapped segment
//     r.setSeq(7);
//     log.publish(loan);
//   }
//
//   shmbus::TypedDurableReader<Reading> in(shmbus::DurableReader::oldest(dir, "readings"));
//   if (auto r = in.next()) use(r->getSeq());              // reads in place, validated
//
// Record format: the payload is a standard Cap'n Proto serialized message of one segment, the
// framing word (segment count - 1 = 0, segment size in words) then the segment, so any Cap'n
// Proto reader (and `capnp decode`) reads it. The record's size is fixed when it is loaned (the
// log is append-only), so loan(max_bytes) reserves room for the largest message you will
// build; what the message leaves unused stays zero in the record. Building more than that
// throws kj::Exception (Cap'n Proto's FlatMessageBuilder); a loan destroyed unpublished becomes
// a tombstone, as raw loans do.
//
// Reading validates each message once (a full traversal within ReaderOptions limits): a
// malformed one is Errc::malformed_message and the reader moves on. Later reads stay
// bounds-checked (Cap'n Proto throws kj::Exception instead of reading out of bounds).
//
// Threads: as DurableAppender / DurableReader.
#pragma once

#include <capnp/message.h>
#include <capnp/serialize.h>

#include <cstring>
#include <optional>

#include "shmbus/detail/chunk_message.hpp"
#include "shmbus/durable.hpp"

namespace shmbus {

// A durable log configuration for messages of type T: its type id (checked against the log's
// segments: type_mismatch) and schema (the log's schema file, for tools that decode).
template <typename T>
DurableConfig typed_durable_config(std::filesystem::path directory, std::string topic) {
  DurableConfig c;
  c.directory = std::move(directory);
  c.topic = std::move(topic);
  c.type_id = capnp::typeId<T>();
  c.schema = detail::serialize_schema(capnp::Schema::from<T>());
  return c;
}

template <typename T>
class TypedDurableAppender;

// A typed message under construction in a claimed record. Not movable: returned by value
// (guaranteed elision) and published with TypedDurableAppender<T>::publish().
template <typename T>
class TypedDurableLoan {
 public:
  TypedDurableLoan(const TypedDurableLoan&) = delete;
  TypedDurableLoan& operator=(const TypedDurableLoan&) = delete;

  bool ok() const noexcept { return status_.ok(); }
  explicit operator bool() const noexcept { return ok(); }
  Status status() const noexcept { return status_; }
  typename T::Builder init() { return builder_->template initRoot<T>(); }
  typename T::Builder root() { return builder_->template getRoot<T>(); }
  capnp::MessageBuilder& builder() noexcept { return *builder_; }
  std::uint64_t sequence() const noexcept { return loan_.sequence(); }

 private:
  friend class TypedDurableAppender<T>;
  explicit TypedDurableLoan(Result<DurableLoan> loan) noexcept : status_(loan.code()) {
    if (!loan) return;
    loan_ = std::move(*loan);
    std::span<std::byte> d = loan_.data();  // 8-aligned, a multiple of 8, zero (never used before)
    builder_.emplace(kj::arrayPtr(reinterpret_cast<capnp::word*>(d.data()) + 1, d.size() / sizeof(capnp::word) - 1));
  }
  Status status_;
  DurableLoan loan_;
  std::optional<capnp::FlatMessageBuilder> builder_;
};

// Appends messages of type T to one durable log (a DurableAppender underneath).
template <typename T>
class TypedDurableAppender {
 public:
  // `config` as for DurableAppender; its type id and schema are set to T's. Throws as
  // DurableAppender does; type_mismatch when the log holds another type.
  explicit TypedDurableAppender(DurableConfig config) : log_(with_type(std::move(config))) {}

  // Claims a record with room for a message of up to `max_bytes` (rounded up to words).
  // message_too_large, no_space, region_lost as DurableAppender::loan().
  TypedDurableLoan<T> loan(std::size_t max_bytes) noexcept {
    const std::size_t words = (max_bytes + sizeof(capnp::word) - 1) / sizeof(capnp::word);
    return TypedDurableLoan<T>(log_.loan((words + 1) * sizeof(capnp::word)));  // + the framing word
  }
  // Writes the framing word for what was built, then commits the record (DurableAppender::publish).
  Status publish(TypedDurableLoan<T>& loan) noexcept {
    if (!loan.ok()) return Errc::misuse;
    try {
      if (loan.builder_->getSegmentsForOutput().size() == 0) loan.builder_->template initRoot<T>();
      const std::size_t used = loan.builder_->getSegmentsForOutput()[0].size();
      const std::uint32_t framing[2] = {0, static_cast<std::uint32_t>(used)};  // one segment of `used` words
      std::memcpy(loan.loan_.data().data(), framing, sizeof framing);
    } catch (...) {
      return Errc::message_too_large;  // the builder had run out of the record's room
    }
    loan.status_ = Errc::misuse;  // published: not again
    return log_.publish(loan.loan_);
  }

  DurableAppender& raw() noexcept { return log_; }

 private:
  static DurableConfig with_type(DurableConfig c) {
    DurableConfig typed = typed_durable_config<T>(std::move(c.directory), std::move(c.topic));
    typed.segment_size = c.segment_size;
    typed.flush = c.flush;
    return typed;
  }
  DurableAppender log_;
};

// Reads messages of type T from a DurableReader: next() returns T::Reader over the record in
// place, valid until the next call.
template <typename T>
class TypedDurableReader {
 public:
  explicit TypedDurableReader(DurableReader reader, capnp::ReaderOptions options = {}) noexcept
      : reader_(std::move(reader)), options_(options) {}

  // The next message: as DurableReader::next(), plus malformed_message for a record that is
  // not a valid message (it is skipped: the next call goes on after it).
  Result<typename T::Reader> next() noexcept { return decode(reader_.next()); }
  Result<typename T::Reader> next_wait(std::chrono::nanoseconds timeout) noexcept {
    return decode(reader_.next_wait(timeout));
  }
  // Sequence and time of the message next() returned last.
  const DurableSample& sample() const noexcept { return sample_; }
  DurableReader& raw() noexcept { return reader_; }

 private:
  Result<typename T::Reader> decode(Result<DurableSample> s) noexcept {
    message_.reset();
    if (!s) return s.code();
    sample_ = *s;
    const std::span<const std::byte> d = s->data;
    if (d.size() < sizeof(capnp::word) || d.size() % sizeof(capnp::word) != 0) return Errc::malformed_message;
    try {
      message_.emplace(kj::arrayPtr(reinterpret_cast<const capnp::word*>(d.data()), d.size() / sizeof(capnp::word)),
                       options_);
      if (!detail::validate_message(*message_)) {
        message_.reset();
        return Errc::malformed_message;
      }
      return message_->template getRoot<T>();
    } catch (...) {  // framing larger than the record
      message_.reset();
      return Errc::malformed_message;
    }
  }

  DurableReader reader_;
  capnp::ReaderOptions options_;
  DurableSample sample_;
  std::optional<capnp::FlatArrayMessageReader> message_;
};

}  // namespace shmbus
