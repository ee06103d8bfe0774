// The frame of a bridged message on NATS: a fixed binary header in front of the message bytes,
// one NATS payload, no NATS headers. It replaces the six text headers of the first version
// (subjects.hpp's kHeader*), whose building and parsing cost more per 64-byte message than
// the NATS client's publish itself; the importer still reads that older form (rolling
// upgrades, and other NATS clients that prefer headers).
//
//   [FrameHeader, 56 B][origin bus id, origin_len B][segment word counts, u32 each][pad to 8]
//   [the message: raw bytes, or the Cap'n Proto segments back to back]
//
// All integers little-endian (the machines shmbus runs on). The header's length is a multiple
// of 8, so Cap'n Proto words stay aligned wherever the client aligned the payload.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "shmbus/detail/chunk_message.hpp"

namespace shmbus::bridge {

inline constexpr std::uint32_t kFrameMagic = 0x4e424853;  // "SHBN" read little-endian
inline constexpr std::uint16_t kFrameVersion = 1;

struct FrameHeader {
  std::uint32_t magic;
  std::uint16_t version;
  std::uint16_t header_bytes;   // this struct + origin + segment table + padding
  std::uint64_t type_id;        // Cap'n Proto type id; 0 = raw bytes
  std::uint64_t schema_id;      // FNV-1a of the serialized schema (subjects.hpp); 0 for raw
  std::uint64_t run;            // the exporting run
  std::uint64_t sequence;       // the message's sequence on its bus
  std::uint64_t export_seq;     // 1, 2, 3... per topic and run
  std::uint16_t origin_len;     // bytes of the origin bus id that follow
  std::uint16_t segment_count;  // 0 for raw; else the number of u32 word counts after the origin
  std::uint32_t reserved;       // 0
};
static_assert(sizeof(FrameHeader) == 56 && alignof(FrameHeader) == 8, "FrameHeader is wire format");
static_assert(offsetof(FrameHeader, type_id) == 8 && offsetof(FrameHeader, export_seq) == 40 &&
                  offsetof(FrameHeader, origin_len) == 48 && offsetof(FrameHeader, reserved) == 52,
              "FrameHeader is wire format");

// Builds the frame header of one exported topic once; per message only the sequences and the
// segment table change. The bytes stay valid until the next call.
class FrameWriter {
 public:
  FrameWriter(std::uint64_t type_id, std::uint64_t schema_id, std::uint64_t run, std::string_view origin);
  // `segment_words` empty for raw messages.
  std::span<const std::byte> header(std::uint64_t sequence, std::uint64_t export_seq,
                                    std::span<const std::uint32_t> segment_words);

 private:
  std::string bytes_;  // FrameHeader + origin, then the per-message segment table
  std::size_t fixed_ = 0;
};

// A decoded frame; views into the message, valid while it is.
struct Frame {
  std::uint64_t type_id = 0;
  std::uint64_t schema_id = 0;
  std::uint64_t run = 0;
  std::uint64_t sequence = 0;
  std::uint64_t export_seq = 0;
  std::string_view origin;
  unsigned segment_count = 0;  // 0: one segment (or raw)
  std::uint32_t segment_words[detail::kMaxSegments] = {};
  std::span<const std::byte> payload;
};

// Decodes `message` (a whole NATS payload). On failure returns nullopt and sets `why` to a
// short reason naming the field that was wrong.
std::optional<Frame> decode_frame(std::span<const std::byte> message, std::string& why);

}  // namespace shmbus::bridge
