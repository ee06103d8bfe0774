#include "wire.hpp"

#include <bit>
#include <cstring>

namespace shmbus::bridge {

static_assert(std::endian::native == std::endian::little, "the frame is written in host order: little-endian hosts only");

namespace {
constexpr std::size_t kMaxOrigin = 128;  // valid_bus_id's limit
std::size_t round8(std::size_t n) { return (n + 7) & ~std::size_t{7}; }
}  // namespace

FrameWriter::FrameWriter(std::uint64_t type_id, std::uint64_t schema_id, std::uint64_t run, std::string_view origin) {
  FrameHeader h{};
  h.magic = kFrameMagic;
  h.version = kFrameVersion;
  h.type_id = type_id;
  h.schema_id = schema_id;
  h.run = run;
  h.origin_len = static_cast<std::uint16_t>(origin.size());
  bytes_.assign(reinterpret_cast<const char*>(&h), sizeof h);
  bytes_.append(origin);
  fixed_ = bytes_.size();
}

std::span<const std::byte> FrameWriter::header(std::uint64_t sequence, std::uint64_t export_seq,
                                               std::span<const std::uint32_t> segment_words) {
  const std::size_t total = round8(fixed_ + segment_words.size() * sizeof(std::uint32_t));
  bytes_.resize(total);  // within capacity after the first messages: no allocation
  char* p = bytes_.data();
  std::memset(p + fixed_, 0, total - fixed_);
  if (!segment_words.empty()) std::memcpy(p + fixed_, segment_words.data(), segment_words.size_bytes());
  const auto header_bytes = static_cast<std::uint16_t>(total);
  const auto count = static_cast<std::uint16_t>(segment_words.size());
  std::memcpy(p + offsetof(FrameHeader, header_bytes), &header_bytes, sizeof header_bytes);
  std::memcpy(p + offsetof(FrameHeader, sequence), &sequence, sizeof sequence);
  std::memcpy(p + offsetof(FrameHeader, export_seq), &export_seq, sizeof export_seq);
  std::memcpy(p + offsetof(FrameHeader, segment_count), &count, sizeof count);
  return {reinterpret_cast<const std::byte*>(p), total};
}

std::optional<Frame> decode_frame(std::span<const std::byte> message, std::string& why) {
  FrameHeader h;
  if (message.size() < sizeof h) {
    why = "shorter than the " + std::to_string(sizeof h) + "-byte frame header";
    return std::nullopt;
  }
  std::memcpy(&h, message.data(), sizeof h);
  if (h.magic != kFrameMagic) {
    why = "no frame magic (not sent by a shmbus bridge)";
    return std::nullopt;
  }
  if (h.version != kFrameVersion) {
    why = "frame version " + std::to_string(h.version) + ", this bridge reads " + std::to_string(kFrameVersion);
    return std::nullopt;
  }
  if (h.origin_len == 0 || h.origin_len > kMaxOrigin) {
    why = "origin length " + std::to_string(h.origin_len) + " outside 1.." + std::to_string(kMaxOrigin);
    return std::nullopt;
  }
  if (h.segment_count > detail::kMaxSegments) {
    why = "segment count " + std::to_string(h.segment_count) + " over " + std::to_string(detail::kMaxSegments);
    return std::nullopt;
  }
  const std::size_t expected = round8(sizeof h + h.origin_len + h.segment_count * sizeof(std::uint32_t));
  if (h.header_bytes != expected || expected > message.size()) {
    why = "header length " + std::to_string(h.header_bytes) + " does not match its contents (" + std::to_string(expected) + ")";
    return std::nullopt;
  }
  if (h.export_seq == 0) {
    why = "export sequence 0";
    return std::nullopt;
  }
  Frame f;
  f.type_id = h.type_id;
  f.schema_id = h.schema_id;
  f.run = h.run;
  f.sequence = h.sequence;
  f.export_seq = h.export_seq;
  const char* base = reinterpret_cast<const char*>(message.data());
  f.origin = std::string_view(base + sizeof h, h.origin_len);
  f.segment_count = h.segment_count;
  if (h.segment_count) std::memcpy(f.segment_words, base + sizeof h + h.origin_len, h.segment_count * sizeof(std::uint32_t));
  f.payload = message.subspan(expected);
  return f;
}

}  // namespace shmbus::bridge
