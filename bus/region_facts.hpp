// detail::RegionFacts: a process's private copy of the immutable part of a topic region (the
// header's identity and section table, the control block's configuration, the size class
// table). Any participant can rewrite the shared copy at any time, so an opener copies these
// bytes out of the mapping once (one memcpy each), validates the copy, and derives every
// bound, pointer and configuration value from the copy only (TopicMap::validate). Nothing
// reads a configuration field from shared memory after that.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "layout.hpp"

namespace shmbus::detail {

// RegionHeader up to (not including) its mutable words `health` and `layout_version`.
struct HeaderFacts {
  std::uint64_t magic;
  std::uint32_t abi_word;
  RegionKind kind;
  std::uint64_t region_size;
  std::uint64_t bus_epoch;
  char bus_name[64];
  std::uint32_t section_count;
  std::uint32_t reserved0;
  Section sections[16];
};

// TopicControl up to (not including) its first hot word, `tail`.
struct ControlFacts {
  char name[kTopicNameMax + 1];
  std::uint64_t type_id;
  SlowSubscriberPolicyWire policy;
  std::uint32_t ring_capacity;
  std::uint32_t history_depth;
  std::uint32_t max_publishers;
  std::uint32_t max_subscribers;
  std::uint32_t max_loans_per_publisher;
  std::uint32_t max_held_per_subscriber;
  std::uint32_t max_segments;
  std::uint32_t class_count;
  std::uint32_t total_chunks;
  std::uint64_t max_message_size;
  std::uint64_t block_timeout_ns;
  std::uint32_t flags;
  std::uint32_t pool_count;
  std::uint32_t chunks_per_pool;
  std::uint32_t reserved_pool;
  std::uint64_t pool_bytes;
  std::uint8_t reserved_config[192 - 88];
};

// The copies must mirror the shared structs byte for byte: they are filled by memcpy.
#define SHMBUS_SAME_FIELD(Copy, Shared, field) \
  static_assert(offsetof(Copy, field) == offsetof(Shared, field) && sizeof(Copy::field) == sizeof(Shared::field))
SHMBUS_SAME_FIELD(HeaderFacts, RegionHeader, magic);
SHMBUS_SAME_FIELD(HeaderFacts, RegionHeader, abi_word);
SHMBUS_SAME_FIELD(HeaderFacts, RegionHeader, kind);
SHMBUS_SAME_FIELD(HeaderFacts, RegionHeader, region_size);
SHMBUS_SAME_FIELD(HeaderFacts, RegionHeader, bus_epoch);
SHMBUS_SAME_FIELD(HeaderFacts, RegionHeader, bus_name);
SHMBUS_SAME_FIELD(HeaderFacts, RegionHeader, section_count);
SHMBUS_SAME_FIELD(HeaderFacts, RegionHeader, sections);
static_assert(sizeof(HeaderFacts) == offsetof(RegionHeader, health));
SHMBUS_SAME_FIELD(ControlFacts, TopicControl, name);
SHMBUS_SAME_FIELD(ControlFacts, TopicControl, type_id);
SHMBUS_SAME_FIELD(ControlFacts, TopicControl, policy);
SHMBUS_SAME_FIELD(ControlFacts, TopicControl, ring_capacity);
SHMBUS_SAME_FIELD(ControlFacts, TopicControl, history_depth);
SHMBUS_SAME_FIELD(ControlFacts, TopicControl, max_publishers);
SHMBUS_SAME_FIELD(ControlFacts, TopicControl, max_subscribers);
SHMBUS_SAME_FIELD(ControlFacts, TopicControl, max_loans_per_publisher);
SHMBUS_SAME_FIELD(ControlFacts, TopicControl, max_held_per_subscriber);
SHMBUS_SAME_FIELD(ControlFacts, TopicControl, max_segments);
SHMBUS_SAME_FIELD(ControlFacts, TopicControl, class_count);
SHMBUS_SAME_FIELD(ControlFacts, TopicControl, total_chunks);
SHMBUS_SAME_FIELD(ControlFacts, TopicControl, max_message_size);
SHMBUS_SAME_FIELD(ControlFacts, TopicControl, block_timeout_ns);
SHMBUS_SAME_FIELD(ControlFacts, TopicControl, flags);
SHMBUS_SAME_FIELD(ControlFacts, TopicControl, pool_count);
SHMBUS_SAME_FIELD(ControlFacts, TopicControl, chunks_per_pool);
SHMBUS_SAME_FIELD(ControlFacts, TopicControl, pool_bytes);
static_assert(sizeof(ControlFacts) == offsetof(TopicControl, tail));
#undef SHMBUS_SAME_FIELD

struct RegionFacts {
  HeaderFacts header{};
  ControlFacts control{};
  std::vector<SizeClassEntry> classes;  // control.class_count entries

  const Section& section(SectionId id) const noexcept { return header.sections[id]; }
};

}  // namespace shmbus::detail
