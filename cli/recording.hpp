// A recording: what `shmbus record` writes and `shmbus replay`, `log info` and `dump` read.
//
// A recording directory DIR holds one durable log, DIR/recording/<first sequence>.log
// (include/shmbus/durable.hpp), whose log type id is kRecordingTypeId and whose schema bytes
// are the manifest: JSON naming the format and its version, and for each recorded topic its
// name, type id, schema (hex) and the queue/pool settings to re-create it with. Every record
// of the log is a RecordEnvelope followed by the message: its bytes for a raw topic, the
// standard Cap'n Proto framing (segment table, then segments) for a typed one. The log's own
// sequence numbers and CLOCK_REALTIME stamps give the one global order and the spacing replay
// reproduces. docs/cli.md, "Durable topics: record, replay, inspect".
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "shmbus/config.hpp"
#include "shmbus/durable.hpp"

namespace shmbus::cli {

// The log type id of a recording ("SHMBREC1").
inline constexpr std::uint64_t kRecordingTypeId = 0x53484D4252454331ull;
inline constexpr const char* kRecordingLogName = "recording";
inline constexpr int kManifestVersion = 1;

// Before each recorded message. Versioned: a reader refuses another magic or a newer version.
struct RecordEnvelope {
  static constexpr std::uint32_t kMagic = 0x45524253;  // "SBRE"
  static constexpr std::uint16_t kVersion = 1;
  static constexpr std::uint32_t kTyped = 1;           // flags: the message is Cap'n Proto framed

  std::uint32_t magic = kMagic;
  std::uint16_t version = kVersion;
  std::uint16_t topic = 0;                // index into the manifest's topics
  std::uint32_t flags = 0;
  std::uint32_t reserved = 0;
  std::uint64_t original_sequence = 0;    // the message's sequence on its topic
  std::uint64_t publish_time_ns = 0;      // CLOCK_MONOTONIC at publish, 0 if the topic did not stamp
};
static_assert(sizeof(RecordEnvelope) == 32);
static_assert(offsetof(RecordEnvelope, topic) == 6);
static_assert(offsetof(RecordEnvelope, original_sequence) == 16);
static_assert(offsetof(RecordEnvelope, publish_time_ns) == 24);

struct RecordedTopic {
  TopicConfig config;  // name, type_id, schema and the settings to re-create the topic with
};

// Manifest <-> the log's schema bytes. Parsing throws Error(region_corrupt or
// unknown_layout_version) naming `where` and what was wrong.
std::string encode_manifest(const std::vector<RecordedTopic>& topics);
std::vector<RecordedTopic> decode_manifest(const std::string& bytes, const std::string& where);

// One record of a recording, split. Throws Error(region_corrupt) naming the sequence for a
// record too short or with a foreign envelope, unknown_layout_version for a newer one, and a
// topic index outside the manifest.
struct RecordView {
  RecordEnvelope envelope;
  std::span<const std::byte> message;
};
RecordView split_record(std::span<const std::byte> record, std::uint64_t log_sequence, std::size_t topic_count);

// What a DIR argument names: a recording, or one durable topic's log directory
// (<directory>/<topic>). Throws Error(not_a_region) naming DIR when it is neither.
struct LogLocation {
  std::filesystem::path directory;  // as DurableReader takes it
  std::string topic;
  std::optional<std::vector<RecordedTopic>> recording;  // set for a recording
};
LogLocation locate_log(const std::filesystem::path& dir);
// Throws Error naming the first damaged segment (its one-line damage) when no segment is
// readable: then there is nothing to show but that.
void require_a_readable_segment(const std::vector<DurableSegmentInfo>& segments);
// The type id of the log's first readable (undamaged) segment; 0 when there is none.
std::uint64_t readable_type_id(const std::vector<DurableSegmentInfo>& segments) noexcept;

// "1765100000.25" (seconds), "1765100000250000000" (nanoseconds) or "2026-12-07T13:00:00[.25]Z"
// as CLOCK_REALTIME nanoseconds. Throws std::invalid_argument naming the text.
std::uint64_t parse_time(const std::string& text);
std::string format_time(std::uint64_t unix_ns);

}  // namespace shmbus::cli
