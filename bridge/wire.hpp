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

// ---- Batches: several frames of one topic in one NATS payload ----
// The exporter sends one when it finds more than one message waiting on a topic (a lone
// message goes at once as a plain frame): at 64 B a message, NATS's per-message cost (the
// server's parse and route, the client's callback) is what limits the stream.
//
//   [BatchHeader, 16 B] then `count` entries: [BatchEntry, 8 B][a frame, frame_bytes B][pad to 8]
//
// Every entry starts 8-aligned and a frame's header is a multiple of 8, so Cap'n Proto words
// stay aligned in place. Entries are frames, never batches: a batch does not nest.
inline constexpr std::uint32_t kBatchMagic = 0x42424853;  // "SHBB" read little-endian
inline constexpr std::uint16_t kBatchVersion = 1;
inline constexpr std::uint32_t kMaxBatchCount = 4096;        // entries in one batch
inline constexpr std::size_t kMaxBatchBytes = 256 * 1024;    // the exporter's bound (and the server's max_payload)

struct BatchHeader {
  std::uint32_t magic;
  std::uint16_t version;
  std::uint16_t reserved;       // 0
  std::uint32_t count;          // entries, 2..kMaxBatchCount
  std::uint32_t entries_bytes;  // all that follows this header: the payload's size - 16
};
static_assert(sizeof(BatchHeader) == 16 && offsetof(BatchHeader, count) == 8 && offsetof(BatchHeader, entries_bytes) == 12,
              "BatchHeader is wire format");

struct BatchEntry {
  std::uint32_t frame_bytes;  // the frame that follows, without its padding
  std::uint32_t reserved;     // 0
};
static_assert(sizeof(BatchEntry) == 8 && offsetof(BatchEntry, reserved) == 4, "BatchEntry is wire format");

// True when `message` starts with the batch magic (then read it with BatchReader, not decode_frame).
bool is_batch(std::span<const std::byte> message);

// Reads a batch's entries in place. open() checks the whole structure before any entry is
// handed out (the count, every length, the padding, no nested batch), so a batch that lies is
// refused whole; each entry's frame is then decoded (and refused) on its own.
class BatchReader {
 public:
  static std::optional<BatchReader> open(std::span<const std::byte> message, std::string& why);
  std::uint32_t count() const { return count_; }
  // The next entry's frame; false after the last.
  bool next(std::span<const std::byte>& frame);

 private:
  std::span<const std::byte> rest_;
  std::uint32_t count_ = 0;
};

// Builds a batch in one buffer: entries appended as they are taken, the header written when it
// is sent. A batch of one is sent as its plain frame (frame()).
class BatchWriter {
 public:
  BatchWriter();
  // Appends one entry: `parts` are the frame's header and the message's bytes.
  void add(std::span<const std::span<const std::byte>> parts);
  std::uint32_t count() const { return count_; }
  // Bytes the batch would have with one more frame of `frame_bytes`.
  std::size_t bytes_with(std::size_t frame_bytes) const;
  // The whole batch (count() >= 2), or the lone frame (count() == 1).
  std::span<const std::byte> finish();
  void clear();

 private:
  std::string bytes_;  // BatchHeader, then the entries
  std::uint32_t count_ = 0;
  std::size_t first_frame_bytes_ = 0;
};

}  // namespace shmbus::bridge
