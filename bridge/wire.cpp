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

bool is_batch(std::span<const std::byte> message) {
  std::uint32_t magic = 0;
  if (message.size() < sizeof magic) return false;
  std::memcpy(&magic, message.data(), sizeof magic);
  return magic == kBatchMagic;
}

std::optional<BatchReader> BatchReader::open(std::span<const std::byte> message, std::string& why) {
  BatchHeader h;
  if (message.size() < sizeof h) {
    why = "batch shorter than its " + std::to_string(sizeof h) + "-byte header";
    return std::nullopt;
  }
  std::memcpy(&h, message.data(), sizeof h);
  if (h.magic != kBatchMagic || h.version != kBatchVersion) {
    why = "batch version " + std::to_string(h.version) + ", this bridge reads " + std::to_string(kBatchVersion);
    return std::nullopt;
  }
  if (h.reserved != 0) {
    why = "batch header's reserved field is not 0";
    return std::nullopt;
  }
  if (h.count < 2 || h.count > kMaxBatchCount) {
    why = "batch count " + std::to_string(h.count) + " outside 2.." + std::to_string(kMaxBatchCount);
    return std::nullopt;
  }
  if (h.entries_bytes != message.size() - sizeof h) {
    why = "batch of " + std::to_string(h.entries_bytes) + " entry bytes arrived with " + std::to_string(message.size() - sizeof h) +
          " (truncated or padded)";
    return std::nullopt;
  }
  // Walk every entry once before handing any out: the count and the lengths must agree exactly.
  std::span<const std::byte> rest = message.subspan(sizeof h);
  for (std::uint32_t i = 0; i < h.count; ++i) {
    BatchEntry e;
    if (rest.size() < sizeof e) {
      why = "batch says " + std::to_string(h.count) + " entries, its bytes end after " + std::to_string(i);
      return std::nullopt;
    }
    std::memcpy(&e, rest.data(), sizeof e);
    const std::size_t padded = round8(e.frame_bytes);
    if (e.reserved != 0) {
      why = "batch entry " + std::to_string(i) + "'s reserved field is not 0";
      return std::nullopt;
    }
    if (e.frame_bytes == 0 || padded > rest.size() - sizeof e) {
      why = "batch entry " + std::to_string(i) + " claims " + std::to_string(e.frame_bytes) + " bytes, " +
            std::to_string(rest.size() - sizeof e) + " remain";
      return std::nullopt;
    }
    if (is_batch(rest.subspan(sizeof e, e.frame_bytes))) {
      why = "batch entry " + std::to_string(i) + " is itself a batch (batches do not nest)";
      return std::nullopt;
    }
    rest = rest.subspan(sizeof e + padded);
  }
  if (!rest.empty()) {
    why = "batch says " + std::to_string(h.count) + " entries, " + std::to_string(rest.size()) + " bytes follow the last";
    return std::nullopt;
  }
  BatchReader r;
  r.rest_ = message.subspan(sizeof h);
  r.count_ = h.count;
  return r;
}

bool BatchReader::next(std::span<const std::byte>& frame) {
  if (rest_.empty()) return false;
  BatchEntry e;
  std::memcpy(&e, rest_.data(), sizeof e);  // checked by open()
  frame = rest_.subspan(sizeof e, e.frame_bytes);
  rest_ = rest_.subspan(sizeof e + round8(e.frame_bytes));
  return true;
}

BatchWriter::BatchWriter() { clear(); }

void BatchWriter::clear() {
  bytes_.assign(sizeof(BatchHeader), '\0');  // keeps its capacity: no allocation once warm
  count_ = 0;
  first_frame_bytes_ = 0;
}

std::size_t BatchWriter::bytes_with(std::size_t frame_bytes) const {
  return bytes_.size() + sizeof(BatchEntry) + round8(frame_bytes);
}

void BatchWriter::add(std::span<const std::span<const std::byte>> parts) {
  std::size_t n = 0;
  for (auto p : parts) n += p.size();
  const BatchEntry e{static_cast<std::uint32_t>(n), 0};
  bytes_.append(reinterpret_cast<const char*>(&e), sizeof e);
  for (auto p : parts) bytes_.append(reinterpret_cast<const char*>(p.data()), p.size());
  bytes_.append(round8(n) - n, '\0');
  if (count_++ == 0) first_frame_bytes_ = n;
}

std::span<const std::byte> BatchWriter::finish() {
  const auto* base = reinterpret_cast<const std::byte*>(bytes_.data());
  if (count_ == 1) return {base + sizeof(BatchHeader) + sizeof(BatchEntry), first_frame_bytes_};
  const BatchHeader h{kBatchMagic, kBatchVersion, 0, count_, static_cast<std::uint32_t>(bytes_.size() - sizeof(BatchHeader))};
  std::memcpy(bytes_.data(), &h, sizeof h);
  return {base, bytes_.size()};
}

}  // namespace shmbus::bridge
