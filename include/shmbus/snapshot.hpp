// Consistent snapshots of a topic's retained messages, saved to a file and read back offline.
//
// save_snapshot() copies every message the topic retains (its queue/history ring, and older
// messages subscribers still hold) while publishers keep publishing. No message is ever torn:
// each is copied while the snapshot holds a reference to its chunk, and a published chunk is
// immutable while referenced. The set of messages is a point in time per batch of
// max_loans_per_publisher messages (the snapshot registers as a publisher slot so that the
// references it holds are recorded and reclaimed if it dies); a message overwritten between
// two batches is absent from the file, never half-present.
//
// File format (little-endian, all offsets 8-byte aligned), version 1:
//   SnapshotFileHeader, then per message: SnapshotRecordHeader, segment sizes (u64 each),
//   then each segment's bytes padded to 8. See bus/snapshot.cpp for the structs.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "shmbus/topic.hpp"

namespace shmbus {

struct SnapshotMessage {
  std::uint64_t sequence = 0;
  std::uint64_t publish_time_ns = 0;
  bool typed = false;  // a Cap'n Proto message (segments), or raw bytes (one segment)
  std::vector<std::span<const std::byte>> segments;
};

// Writes `file` atomically (a temporary file renamed into place). Returns the number of
// messages saved. Throws Error: no_space (full disk: nothing is left behind), system_error.
std::size_t save_snapshot(const Topic& topic, const std::filesystem::path& file);

class Snapshot {
 public:
  // Maps and validates a snapshot file. Throws Error: not_a_region (not a snapshot),
  // unknown_layout_version, region_too_short / region_corrupt (truncated or inconsistent).
  static Snapshot open(const std::filesystem::path& file);

  const std::string& topic_name() const noexcept { return topic_name_; }
  std::uint64_t type_id() const noexcept { return type_id_; }
  // The topic's recorded Cap'n Proto schema (see TopicConfig::schema), empty for raw topics.
  const std::string& schema() const noexcept { return schema_; }
  std::uint64_t created_unix_ns() const noexcept { return created_unix_ns_; }
  const std::vector<SnapshotMessage>& messages() const noexcept { return messages_; }

 private:
  std::shared_ptr<void> mapping_;
  std::string topic_name_;
  std::uint64_t type_id_ = 0;
  std::string schema_;
  std::uint64_t created_unix_ns_ = 0;
  std::vector<SnapshotMessage> messages_;
};

}  // namespace shmbus
