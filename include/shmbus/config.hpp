// Configuration of a topic: its pool, its queue, its history and its slow-subscriber policy.
// Everything here is chosen at run time; nothing is a compile-time limit.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace shmbus {

// One size class of a topic's buffer pool: `count` chunks of `chunk_size` usable bytes each.
struct SizeClass {
  std::uint64_t chunk_size = 0;
  std::uint32_t count = 0;
};

// What a publisher meets when a subscriber has not yet taken the oldest message of the queue.
enum class SlowSubscriberPolicy {
  block,         // wait (up to block_timeout) until the slowest subscriber takes one
  drop_oldest,   // overwrite it; that subscriber is told how many it lost (Sample::lost_before)
  fail_publish,  // publish() returns Errc::subscriber_queue_full at once
};

struct TopicConfig {
  std::string name;  // 1..255 bytes
  // Pool size classes, any order. A loan takes the smallest class that fits.
  std::vector<SizeClass> size_classes{{4096, 256}};
  // Messages a subscriber may fall behind before the policy applies; rounded up to a power of
  // two. The ring keeps a reference to each of these messages, so every class should have at
  // least queue_depth + (loans and held samples you expect) chunks.
  std::uint32_t queue_depth = 64;
  // Messages a subscriber that joins late receives first (<= queue_depth).
  std::uint32_t history_depth = 0;
  SlowSubscriberPolicy policy = SlowSubscriberPolicy::drop_oldest;
  std::chrono::nanoseconds block_timeout = std::chrono::seconds(1);
  std::uint32_t max_publishers = 8;
  std::uint32_t max_subscribers = 64;
  std::uint32_t max_loans_per_publisher = 32;  // chunks a publisher may hold unpublished
  std::uint32_t max_held_per_subscriber = 32;  // samples a subscriber may hold at once
  std::uint32_t max_segments = 16;             // chunks one Cap'n Proto message may span (<= 32)
  std::uint64_t max_message_size = 0;          // bytes over all segments; 0 = largest chunk
  std::uint64_t type_id = 0;                   // Cap'n Proto struct id; 0 = raw bytes
  // The type's schema, recorded in the region so that tools decode messages without the
  // user's headers: a serialized schema.capnp CodeGeneratorRequest. shmbus::typed_topic<T>()
  // fills type_id and schema.
  std::string schema;
  // Stamp each message with CLOCK_MONOTONIC at publish (RawSample::publish_time_ns()). Off by
  // default: reading the clock costs ~40 ns on a VM's kvm-clock, as much as the rest of
  // publish.
  bool stamp_publish_time = false;
};

// Where a topic's region lives.
struct RegionOptions {
  enum class Backing { anonymous, file };
  Backing backing = Backing::anonymous;  // memfd, sealed against shrinking and growing
  std::filesystem::path directory;       // for Backing::file: the bus directory
  std::string bus_name = "default";
  unsigned file_mode = 0600;             // for Backing::file
  // Where message payload lives. By default each publisher writes into a payload pool of its
  // own, a memfd it seals against writing once it has mapped it, so subscribers can read but
  // never change a message (least privilege), whatever the backing. With payload_in_region,
  // one pool inside the region serves every publisher: a file-backed region then holds its
  // messages, and messages outlive their publisher even without a bus daemon, but every
  // process that maps the region can write every payload. For trusted setups and tools.
  bool payload_in_region = false;
};

}  // namespace shmbus
