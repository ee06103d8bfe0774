// Internal machinery of typed services (shmbus/typed_service.hpp), in a public header only
// because its templates need complete types. Not part of the API.
//
// A typed request or response is one Cap'n Proto message in flat-array form (the form
// capnp::messageToFlatArray writes, and `shmbus call` writes and reads): a segment table
// (uint32 segment count - 1, uint32 words per segment, padded to a whole word), then the
// segments. The library builds it with one segment directly in the loaned payload and reads
// any segment count in place.
#pragma once

#include <capnp/message.h>

#include <cstddef>
#include <cstdint>
#include <span>

#include "shmbus/detail/chunk_message.hpp"
#include "shmbus/error.hpp"

namespace shmbus {
class ServiceRequest;
class ServiceResponse;
}  // namespace shmbus

namespace shmbus::detail {

// Bytes of a one-segment flat array's table.
inline constexpr std::size_t kFlatTableBytes = 8;

// A capnp::MessageBuilder whose one segment is a loaned payload after its segment table: the
// message is built where the reader will read it. The payload must be zeroed (Cap'n Proto
// requires it) and word aligned. A message that outgrows it throws kj::Exception naming the
// loan's size (loan more bytes).
class SpanMessageBuilder final : public capnp::MessageBuilder {
 public:
  explicit SpanMessageBuilder(std::span<std::byte> payload) noexcept : payload_(payload) {}
  kj::ArrayPtr<capnp::word> allocateSegment(unsigned minimum_words) override;
  // Writes the segment table in front of the segment; returns the payload bytes used (table
  // and segment), or 0 when the message is not a one-segment message of this payload.
  std::size_t finish() noexcept;

 private:
  std::span<std::byte> payload_;
  bool handed_out_ = false;
};

// Zeroes `payload` for a SpanMessageBuilder; false when it cannot hold one (too small or not
// word aligned).
bool prepare_flat_payload(std::span<std::byte> payload) noexcept;

// Fills `table` with the segments of the flat array in `bytes`, in place, checking the count
// (<= kMaxSegments), the sizes against `bytes` and the alignment. False when malformed.
bool read_flat_segments(std::span<const std::byte> bytes, SegmentTable& table) noexcept;

// Counts a taken request or response that failed validation in the taking subscriber's slot
// (its `malformed` counter, docs/metrics.md).
void count_malformed(const ServiceRequest& request) noexcept;
void count_malformed(const ServiceResponse& response) noexcept;

// The way to the raw samples behind ServiceRequest and ServiceResponse (their friend).
struct TypedServiceAccess;

}  // namespace shmbus::detail
