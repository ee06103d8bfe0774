// Non-template half of typed services (shmbus/typed_service.hpp): one-segment Cap'n Proto
// messages built in a loaned payload, flat arrays read in place, malformed ones counted.
#include <capnp/serialize.h>
#include <kj/exception.h>

#include <cstring>
#include <string>

#include "metrics/counters.hpp"
#include "subscriber_core.hpp"
#include "topic_map.hpp"
#include "shmbus/typed_service.hpp"

namespace shmbus::detail {

struct TypedServiceAccess {
  static const RawSample& sample(const ServiceRequest& r) noexcept { return r.sample_; }
  static const RawSample& sample(const ServiceResponse& r) noexcept { return r.sample_; }
};

namespace {
bool word_aligned(const void* p) noexcept { return reinterpret_cast<std::uintptr_t>(p) % sizeof(capnp::word) == 0; }

void count_malformed(const RawSample& sample) noexcept {
  SubscriberCore* core = SubscriberCore::taker_of(sample);
  if (core != nullptr) bump(core->map().subscriber(core->slot()).malformed);
}
}  // namespace

bool prepare_flat_payload(std::span<std::byte> payload) noexcept {
  if (payload.size() < kFlatTableBytes + sizeof(capnp::word) || !word_aligned(payload.data())) return false;
  std::memset(payload.data(), 0, payload.size());  // Cap'n Proto requires a zeroed segment
  return true;
}

kj::ArrayPtr<capnp::word> SpanMessageBuilder::allocateSegment(unsigned minimum_words) {
  const std::size_t words = payload_.size() < kFlatTableBytes ? 0 : (payload_.size() - kFlatTableBytes) / sizeof(capnp::word);
  if (handed_out_ || words < minimum_words) {
    // Cap'n Proto can only throw here: say what the user can act on.
    std::string why = "shmbus: a typed service message outgrew its loan of " + std::to_string(payload_.size()) +
                      " bytes: loan more (loan(bytes))";
    kj::throwFatalException(kj::Exception(kj::Exception::Type::FAILED, __FILE__, __LINE__, kj::heapString(why.c_str())));
  }
  handed_out_ = true;
  return kj::arrayPtr(reinterpret_cast<capnp::word*>(payload_.data() + kFlatTableBytes), words);
}

std::size_t SpanMessageBuilder::finish() noexcept {
  try {
    if (!handed_out_) initRoot<capnp::AnyPointer>();  // an empty message is still a message
    kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>> segments = getSegmentsForOutput();
    if (segments.size() != 1 ||
        reinterpret_cast<const std::byte*>(segments[0].begin()) != payload_.data() + kFlatTableBytes) {
      return 0;
    }
    // The table capnp::messageToFlatArray writes: segment count - 1, then the segment's words.
    const std::uint32_t table[2] = {0, static_cast<std::uint32_t>(segments[0].size())};
    std::memcpy(payload_.data(), table, sizeof table);
    return kFlatTableBytes + segments[0].size() * sizeof(capnp::word);
  } catch (...) {
    return 0;
  }
}

bool read_flat_segments(std::span<const std::byte> bytes, SegmentTable& table) noexcept {
  table.count = 0;
  if (bytes.size() < sizeof(std::uint32_t) || !word_aligned(bytes.data())) return false;
  std::uint32_t count_minus_one;
  std::memcpy(&count_minus_one, bytes.data(), sizeof count_minus_one);
  if (count_minus_one >= kMaxSegments) return false;
  const std::uint64_t count = std::uint64_t{count_minus_one} + 1;
  // The table: (1 + count) uint32, padded to a whole word.
  const std::uint64_t table_bytes = (4 * (1 + count) + 7) / 8 * 8;
  if (table_bytes > bytes.size()) return false;
  std::uint64_t offset = table_bytes;
  for (std::uint64_t i = 0; i < count; ++i) {
    std::uint32_t words;
    std::memcpy(&words, bytes.data() + 4 * (1 + i), sizeof words);
    const std::uint64_t size = std::uint64_t{words} * sizeof(capnp::word);
    if (size > bytes.size() - offset) return false;
    table.segments[table.count++] =
        kj::arrayPtr(reinterpret_cast<const capnp::word*>(bytes.data() + offset), words);
    offset += size;
  }
  return true;
}

void count_malformed(const ServiceRequest& request) noexcept { count_malformed(TypedServiceAccess::sample(request)); }
void count_malformed(const ServiceResponse& response) noexcept { count_malformed(TypedServiceAccess::sample(response)); }

}  // namespace shmbus::detail
