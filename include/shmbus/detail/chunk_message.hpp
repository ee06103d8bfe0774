// Internal machinery of the typed API, in a public header only because the templates in
// shmbus/typed.hpp need complete types. Not part of the API.
#pragma once

#include <capnp/message.h>
#include <capnp/schema.h>

#include <cstdint>

#include "shmbus/error.hpp"
#include "shmbus/raw.hpp"

namespace shmbus::detail {

class PublisherCore;

// Upper bound of TopicConfig::max_segments: the size of the inline segment tables below.
inline constexpr unsigned kMaxSegments = 32;

// A capnp::MessageBuilder whose segments are chunks loaned from a topic's pool: the message is
// built where subscribers will read it. The first segment is loaned at construction; further
// ones when the message outgrows it (throwing kj::Exception past max_segments or
// max_message_size, like any capnp allocation failure). Zeroing, which Cap'n Proto requires,
// covers only the bytes an earlier message in the same chunk dirtied.
class ChunkMessageBuilder final : public capnp::MessageBuilder {
 public:
  ChunkMessageBuilder(PublisherCore& core, std::size_t first_segment_bytes) noexcept;
  ~ChunkMessageBuilder() noexcept(false) override;

  kj::ArrayPtr<capnp::word> allocateSegment(unsigned minimum_words) override;
  Status status() const noexcept { return status_; }
  // Sizes the segments, links them and publishes. The builder is spent afterwards.
  Status publish() noexcept;
  std::uint32_t head_chunk() const noexcept { return chunks_[0]; }

 private:
  std::uint32_t loan_segment(std::uint64_t bytes) noexcept;

  PublisherCore* core_;
  Status status_;
  std::uint32_t chunks_[kMaxSegments];
  unsigned count_ = 0;          // chunks loaned
  unsigned handed_out_ = 0;     // chunks given to Cap'n Proto as segments
  std::uint64_t bytes_ = 0;     // capacity handed out so far
  bool published_ = false;
};

// The in-place segments of a typed sample.
struct SegmentTable {
  kj::ArrayPtr<const capnp::word> segments[kMaxSegments];
  unsigned count = 0;
  kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>> array() const noexcept { return {segments, count}; }
};

// Fills `table` from the sample's chain of chunks, validating every index and size read from
// shared memory. False when the chain is malformed.
bool read_segments(const RawSample& sample, SegmentTable& table) noexcept;
// Reader limits for messages of `topic`: traversal scaled to its max message size.
capnp::ReaderOptions reader_options(const Topic& topic) noexcept;
// Walks the whole message once within the reader's limits. False when malformed.
bool validate_message(capnp::MessageReader& reader) noexcept;
// Counts a taken message that failed read_segments or validate_message in the subscriber's
// slot (its `malformed` counter, docs/metrics.md).
void count_malformed(RawSubscriber& subscriber) noexcept;
PublisherCore& core_of(RawPublisher& publisher) noexcept;
// `root` and every node it depends on, as a serialized schema.capnp CodeGeneratorRequest.
std::string serialize_schema(capnp::Schema root);

}  // namespace shmbus::detail
