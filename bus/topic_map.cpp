// TopicMap's region planning and validation: the section plan for a configuration, creating
// and opening a region, and validating everything read from it before use (TopicMap::validate).
// The chunk reference protocol is in chunk_refs.cpp, the payload pools in pool_views.cpp.
#include "topic_map.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "process_identity.hpp"
#include "region.hpp"
#include "sigbus_guard.hpp"

namespace shmbus::detail {
namespace {

constexpr std::uint32_t kMaxSegmentsLimit = 32;  // inline segment table of typed samples
constexpr std::uint64_t kMaxChunkSize = 1ULL << 40;

std::uint64_t payload_stride(std::uint64_t chunk_size) {
  // Page-aligned payloads from one page up: copy-on-write views then copy whole pages of one
  // message only (mapping-safety issue); smaller chunks stay cache-line aligned.
  return chunk_size >= kPageSize ? round_up(chunk_size, kPageSize) : round_up(chunk_size, kCacheLine);
}

struct Plan {
  Section sections[kSectionCount]{};
  std::vector<LocalClass> classes;  // offsets within a pool
  std::uint64_t total_size = 0;
  std::uint32_t pool_count = 1;
  std::uint32_t chunks_per_pool = 0;
  std::uint64_t pool_bytes = 0;
  std::uint32_t ring_capacity = 0;
};

[[noreturn]] void bad_config(const std::string& topic, const std::string& why) {
  throw Error(Errc::invalid_config, "topic '" + topic + "': " + why);
}

TopicConfig normalised(TopicConfig c) {
  if (c.name.empty() || c.name.size() > kTopicNameMax) {
    bad_config(c.name, "name must be 1.." + std::to_string(kTopicNameMax) + " bytes");
  }
  if (c.size_classes.empty()) bad_config(c.name, "at least one size class is needed");
  std::uint64_t chunks = 0;
  for (auto& sc : c.size_classes) {
    if (sc.chunk_size == 0 || sc.count == 0) bad_config(c.name, "size classes need chunk_size > 0 and count > 0");
    if (sc.chunk_size > kMaxChunkSize) bad_config(c.name, "chunk_size above 1 TiB");
    sc.chunk_size = round_up(sc.chunk_size, 8);  // Cap'n Proto words
    chunks += sc.count;
  }
  if (chunks * c.max_publishers >= kNoChunk) {
    bad_config(c.name, "more than 2^32-2 chunks (size class counts times max_publishers: each publisher has a pool)");
  }
  std::sort(c.size_classes.begin(), c.size_classes.end(),
            [](const SizeClass& a, const SizeClass& b) { return a.chunk_size < b.chunk_size; });
  if (c.queue_depth == 0 || c.queue_depth > (1u << 24)) bad_config(c.name, "queue_depth must be 1..2^24");
  c.queue_depth = std::bit_ceil(c.queue_depth);
  if (c.history_depth > c.queue_depth) bad_config(c.name, "history_depth exceeds queue_depth");
  if (c.max_publishers == 0 || c.max_publishers > 65536) bad_config(c.name, "max_publishers must be 1..65536");
  if (c.max_subscribers == 0 || c.max_subscribers > 65536) bad_config(c.name, "max_subscribers must be 1..65536");
  if (c.max_loans_per_publisher == 0 || c.max_loans_per_publisher > 4096) bad_config(c.name, "max_loans_per_publisher must be 1..4096");
  if (c.max_held_per_subscriber == 0 || c.max_held_per_subscriber > 4096) bad_config(c.name, "max_held_per_subscriber must be 1..4096");
  if (c.max_segments == 0 || c.max_segments > kMaxSegmentsLimit) bad_config(c.name, "max_segments must be 1..32");
  if (c.max_message_size == 0) c.max_message_size = c.size_classes.back().chunk_size;
  if (c.block_timeout.count() < 0) bad_config(c.name, "block_timeout is negative");
  return c;
}

// `in_region`: pool 0's payload lives in the region (RegionOptions::payload_in_region), else
// each publisher slot has a pool of its own outside it.
Plan plan_for(const TopicConfig& c, bool in_region) {
  Plan p;
  std::uint64_t pool_off = 0;
  for (const auto& sc : c.size_classes) {
    pool_off = round_up(pool_off, kPageSize);
    LocalClass lc{sc.chunk_size, payload_stride(sc.chunk_size), pool_off, p.chunks_per_pool, sc.count};
    p.classes.push_back(lc);
    pool_off += lc.stride * sc.count;
    p.chunks_per_pool += sc.count;
  }
  p.pool_bytes = round_up(pool_off, kPageSize);
  p.pool_count = in_region ? 1 : c.max_publishers;
  const std::uint64_t total_chunks = std::uint64_t{p.pool_count} * p.chunks_per_pool;
  if (total_chunks >= kHoldPinned) bad_config(c.name, "more than 2^31 chunks in all pools together");

  std::uint64_t off = kPageSize;
  auto place = [&](SectionId id, std::uint64_t size, std::uint64_t align) {
    off = round_up(off, align);
    p.sections[id] = {off, size};
    off += size;
  };
  p.ring_capacity = c.queue_depth;
  place(kSectionControl, sizeof(TopicControl), kCacheLine);
  place(kSectionClasses, sizeof(SizeClassEntry) * c.size_classes.size(), kCacheLine);
  place(kSectionPublishers, sizeof(PublisherSlot) * c.max_publishers, kCacheLine);
  place(kSectionSubscribers, sizeof(SubscriberSlot) * c.max_subscribers, kCacheLine);
  place(kSectionLoans, 4ULL * c.max_publishers * c.max_loans_per_publisher, kCacheLine);
  place(kSectionHolds, 4ULL * c.max_subscribers * c.max_held_per_subscriber, kCacheLine);
  place(kSectionRing, sizeof(RingSlot) * p.ring_capacity, kCacheLine);
  place(kSectionChunks, sizeof(ChunkHeader) * total_chunks, kCacheLine);
  place(kSectionPools, sizeof(PoolSlot) * p.pool_count, kCacheLine);
  place(kSectionFreeLists, sizeof(FreeList) * p.pool_count * c.size_classes.size(), kCacheLine);
  off = round_up(off, kPageSize);
  place(kSectionPayload, in_region ? p.pool_bytes : 0, kPageSize);
  place(kSectionSchema, c.schema.size(), kCacheLine);
  p.total_size = round_up(off, kPageSize);
  return p;
}

}  // namespace

std::shared_ptr<TopicMap> TopicMap::create(const TopicConfig& config_in, const RegionOptions& options) {
  TopicConfig config = normalised(config_in);
  const bool in_region = options.payload_in_region;
  Plan plan = plan_for(config, in_region);
  std::shared_ptr<TopicMap> m(new TopicMap());
  m->config_.name = config.name;  // for describe() in errors below
  if (options.backing == RegionOptions::Backing::anonymous) {
    m->fd_ = create_sealed_memfd(config.name, plan.total_size);
  } else {
    if (options.directory.empty()) bad_config(config.name, "file backing needs a directory");
    std::string file = config.name;
    std::replace(file.begin(), file.end(), '/', '%');  // topic names may contain '/'
    m->path_ = options.directory / (file + ".shmbus");
    m->fd_ = create_reserved_file(m->path_, plan.total_size, options.file_mode);
  }
  m->size_ = plan.total_size;
  try {
    m->base_ = static_cast<std::byte*>(map_shared(m->fd_, m->size_, m->describe()));
    SigbusGuard::register_mapping(m->base_, m->size_, &m->lost_);
    m->guarded_ = true;
  } catch (...) {
    if (!m->path_.empty()) unlink(m->path_.c_str());
    throw;
  }

  RegionHeader& h = m->header();
  h.magic = kRegionMagic;
  h.abi_word = kAbiWord;
  h.kind = options.backing == RegionOptions::Backing::anonymous ? RegionKind::kAnonymous : RegionKind::kFile;
  h.region_size = plan.total_size;
  h.bus_epoch = static_cast<std::uint64_t>(time(nullptr));
  std::strncpy(h.bus_name, options.bus_name.c_str(), sizeof(h.bus_name) - 1);
  h.section_count = kSectionCount;
  std::copy(std::begin(plan.sections), std::end(plan.sections), h.sections);

  auto* ctl = reinterpret_cast<TopicControl*>(m->base_ + plan.sections[kSectionControl].offset);
  std::memset(ctl->name, 0, sizeof(ctl->name));
  std::memcpy(ctl->name, config.name.data(), config.name.size());
  ctl->type_id = config.type_id;
  ctl->policy = config.policy == SlowSubscriberPolicy::block         ? SlowSubscriberPolicyWire::kBlock
                : config.policy == SlowSubscriberPolicy::drop_oldest ? SlowSubscriberPolicyWire::kDropOldest
                                                                     : SlowSubscriberPolicyWire::kFailPublish;
  ctl->ring_capacity = plan.ring_capacity;
  ctl->history_depth = config.history_depth;
  ctl->max_publishers = config.max_publishers;
  ctl->max_subscribers = config.max_subscribers;
  ctl->max_loans_per_publisher = config.max_loans_per_publisher;
  ctl->max_held_per_subscriber = config.max_held_per_subscriber;
  ctl->max_segments = config.max_segments;
  ctl->class_count = static_cast<std::uint32_t>(plan.classes.size());
  ctl->total_chunks = plan.pool_count * plan.chunks_per_pool;
  ctl->max_message_size = config.max_message_size;
  ctl->block_timeout_ns = static_cast<std::uint64_t>(config.block_timeout.count());
  ctl->flags = (config.stamp_publish_time ? kTopicFlagStampTime : 0) | (in_region ? kTopicFlagPayloadInRegion : 0);
  ctl->pool_count = plan.pool_count;
  ctl->chunks_per_pool = plan.chunks_per_pool;
  ctl->pool_bytes = plan.pool_bytes;

  if (!config.schema.empty()) {
    std::memcpy(m->base_ + plan.sections[kSectionSchema].offset, config.schema.data(), config.schema.size());
  }
  auto* classes = reinterpret_cast<SizeClassEntry*>(m->base_ + plan.sections[kSectionClasses].offset);
  for (std::size_t ci = 0; ci < plan.classes.size(); ++ci) {
    const LocalClass& lc = plan.classes[ci];
    classes[ci].chunk_size = lc.chunk_size;
    classes[ci].payload_stride = lc.stride;
    classes[ci].payload_offset = lc.payload_offset;
    classes[ci].first_chunk = lc.first_chunk;
    classes[ci].chunk_count = lc.chunk_count;
  }
  // The creator's private copy is what it just wrote (no other process has the region yet).
  std::memcpy(&m->facts_.header, &h, sizeof m->facts_.header);
  std::memcpy(&m->facts_.control, ctl, sizeof m->facts_.control);
  m->facts_.classes.assign(classes, classes + plan.classes.size());
  m->classes_ = plan.classes;
  m->config_ = config;
  m->bind_sections();
  // External pools are built by their first publisher (own_pool), so that the chunk headers
  // of pools nobody uses are never touched; the one pool in the region is built now.
  if (in_region) m->initialise_pool(0);
  for (std::uint64_t i = 0; i < plan.ring_capacity; ++i) {
    m->ring_[i].chunk.store(kNoChunk, std::memory_order_relaxed);
  }
  std::size_t loan_words = std::size_t{config.max_publishers} * config.max_loans_per_publisher;
  for (std::size_t i = 0; i < loan_words; ++i) m->loans_[i].store(kNoChunk, std::memory_order_relaxed);
  std::size_t hold_words = std::size_t{config.max_subscribers} * config.max_held_per_subscriber;
  for (std::size_t i = 0; i < hold_words; ++i) m->holds_[i].store(kNoChunk, std::memory_order_relaxed);
  // Release: an opener that reads this version (acquire) sees every field written above.
  h.layout_version.store(kLayoutVersion, std::memory_order_release);
  return m;
}

std::shared_ptr<TopicMap> TopicMap::open(int fd, std::filesystem::path path, bool writable) {
  std::shared_ptr<TopicMap> m(new TopicMap());
  m->fd_ = fd;  // owned from here on, closed by the destructor whatever happens next
  m->path_ = std::move(path);
  std::string what = m->path_.empty() ? "region fd " + std::to_string(fd) : "region file " + m->path_.string();
  std::size_t size = file_size(fd, what);
  if (size < sizeof(RegionHeader)) {
    throw Error(Errc::region_too_short, what + ": " + std::to_string(size) +
                                            " bytes, shorter than the " + std::to_string(sizeof(RegionHeader)) +
                                            "-byte region header");
  }
  m->size_ = size;
  m->writable_ = writable;
  m->base_ = static_cast<std::byte*>(map_shared(fd, size, what, writable));
  // Guard before the first read: the file may already be shorter than it claims.
  SigbusGuard::register_mapping(m->base_, m->size_, &m->lost_);
  m->guarded_ = true;
  m->validate(what);
  if (m->lost_.load(std::memory_order_acquire) != 0) throw Error(Errc::region_lost, what + ": region truncated while opening it");
  if (std::uint32_t health = m->header().health.load(std::memory_order_acquire); health != kRegionHealthy) {
    throw Error(Errc::region_lost, what + ": region revoked by the bus daemon (health word " + std::to_string(health) + ")");
  }
  return m;
}

namespace {

// a * b, or ~0 when that overflows (a size no section can have).
std::uint64_t times(std::uint64_t a, std::uint64_t b) noexcept {
  std::uint64_t r;
  return __builtin_mul_overflow(a, b, &r) ? ~0ULL : r;
}

}  // namespace

void TopicMap::validate(const std::string& what) {
  // Every check below reads the private copy (facts_), never the mapping: a participant that
  // rewrites the region meanwhile cannot make us use a value other than the one we checked.
  auto lost = [&] {
    if (lost_.load(std::memory_order_acquire) != 0) {
      throw Error(Errc::region_lost, what + ": region truncated (file shorter than its mapping)");
    }
  };
  lost();
  RegionFacts f;
  // Acquire: pairs with the creator's release store, so the rest of the header is complete
  // when we copy it next.
  const std::uint32_t version = header().layout_version.load(std::memory_order_acquire);
  std::memcpy(&f.header, base_, sizeof f.header);
  lost();
  const HeaderFacts& h = f.header;
  if (h.magic != kRegionMagic) throw Error(Errc::not_a_region, what + ": not a shmbus region (bad magic)");
  if (version == 0) {
    throw Error(Errc::region_corrupt, what + ": region was never completely initialised (its creator died or is still creating it)");
  }
  if (version != kLayoutVersion) {
    throw Error(Errc::unknown_layout_version, what + ": layout version " + std::to_string(version) +
                                                  ", this library only knows version " + std::to_string(kLayoutVersion));
  }
  if (h.abi_word != kAbiWord) {
    throw Error(Errc::abi_mismatch, what + ": created by an incompatible build (ABI word " +
                                        std::to_string(h.abi_word) + ", ours " + std::to_string(kAbiWord) + ")");
  }
  if (h.region_size > size_) {
    throw Error(Errc::region_too_short, what + ": header says " + std::to_string(h.region_size) +
                                            " bytes (region_size) but the file has " + std::to_string(size_));
  }
  if (h.region_size != size_) {
    throw Error(Errc::region_corrupt, what + ": file is " + std::to_string(size_) + " bytes, header says " +
                                          std::to_string(h.region_size) + " (region_size)");
  }
  if (h.kind == RegionKind::kAnonymous) check_seals(fd_, what);
  else if (h.kind != RegionKind::kFile) {
    throw Error(Errc::region_corrupt, what + ": unknown region kind " + std::to_string(static_cast<std::uint32_t>(h.kind)));
  }
  if (h.section_count != kSectionCount) {
    throw Error(Errc::region_corrupt, what + ": section_count is " + std::to_string(h.section_count) + ", expected " +
                                          std::to_string(kSectionCount));
  }
  for (std::uint32_t i = 0; i < kSectionCount; ++i) {
    const Section& s = h.sections[i];
    if (s.offset < kPageSize || s.offset > size_ || s.size > size_ - s.offset || s.offset % kCacheLine != 0) {
      throw Error(Errc::region_corrupt, what + ": section " + std::to_string(i) + " (offset " + std::to_string(s.offset) +
                                            ", size " + std::to_string(s.size) + ") lies outside the region");
    }
  }
  // No two sections share a byte: one participant's legitimate writes to one section must
  // never land in another (a creator never lays them out so).
  for (std::uint32_t i = 0; i < kSectionCount; ++i) {
    for (std::uint32_t j = i + 1; j < kSectionCount; ++j) {
      const Section& a = h.sections[i];
      const Section& b = h.sections[j];
      if (a.size != 0 && b.size != 0 && a.offset < b.offset + b.size && b.offset < a.offset + a.size) {
        throw Error(Errc::region_corrupt, what + ": sections " + std::to_string(i) + " and " + std::to_string(j) + " overlap");
      }
    }
  }
  auto corrupt = [&](const std::string& why) { throw Error(Errc::region_corrupt, what + ": " + why); };
  if (h.sections[kSectionControl].size < sizeof(TopicControl)) corrupt("control section too small");
  std::memcpy(&f.control, base_ + h.sections[kSectionControl].offset, sizeof f.control);
  lost();
  const ControlFacts& ctl = f.control;
  if (std::memchr(ctl.name, 0, sizeof(ctl.name)) == nullptr || ctl.name[0] == 0) corrupt("bad topic name (not 1..255 bytes)");
  // The same limits as a creator's (normalised()), so that no product below can overflow.
  auto at_most = [&](std::uint64_t value, std::uint64_t limit, const char* field) {
    if (value == 0 || value > limit) {
      corrupt(std::string(field) + " is " + std::to_string(value) + ", outside 1.." + std::to_string(limit));
    }
  };
  at_most(ctl.ring_capacity, 1u << 24, "ring_capacity");
  if (!std::has_single_bit(ctl.ring_capacity)) corrupt("ring_capacity " + std::to_string(ctl.ring_capacity) + " is not a power of two");
  if (ctl.history_depth > ctl.ring_capacity) corrupt("history_depth " + std::to_string(ctl.history_depth) + " deeper than the ring");
  at_most(ctl.max_segments, kMaxSegmentsLimit, "max_segments");
  at_most(ctl.max_publishers, 65536, "max_publishers");
  at_most(ctl.max_subscribers, 65536, "max_subscribers");
  at_most(ctl.max_loans_per_publisher, 4096, "max_loans_per_publisher");
  at_most(ctl.max_held_per_subscriber, 4096, "max_held_per_subscriber");
  at_most(ctl.total_chunks, kHoldPinned - 1, "total_chunks");
  at_most(ctl.chunks_per_pool, ctl.total_chunks, "chunks_per_pool");
  at_most(ctl.class_count, ctl.chunks_per_pool, "class_count");  // each class has a chunk
  if (ctl.block_timeout_ns > static_cast<std::uint64_t>(std::chrono::nanoseconds::max().count())) {
    corrupt("block_timeout_ns " + std::to_string(ctl.block_timeout_ns) + " out of range");
  }
  if ((ctl.flags & ~(kTopicFlagStampTime | kTopicFlagPayloadInRegion)) != 0) {
    corrupt("unknown bits in flags " + std::to_string(ctl.flags));
  }
  auto need = [&](SectionId id, std::uint64_t bytes, const char* name) {
    if (h.sections[id].size < bytes) {
      corrupt(std::string(name) + " section (" + std::to_string(h.sections[id].size) + " bytes) smaller than the configuration needs (" +
              std::to_string(bytes) + ")");
    }
  };
  need(kSectionClasses, times(ctl.class_count, sizeof(SizeClassEntry)), "size class");
  need(kSectionPublishers, times(ctl.max_publishers, sizeof(PublisherSlot)), "publisher");
  need(kSectionSubscribers, times(ctl.max_subscribers, sizeof(SubscriberSlot)), "subscriber");
  need(kSectionLoans, times(4ULL * ctl.max_publishers, ctl.max_loans_per_publisher), "loan");
  need(kSectionHolds, times(4ULL * ctl.max_subscribers, ctl.max_held_per_subscriber), "hold");
  need(kSectionRing, times(ctl.ring_capacity, sizeof(RingSlot)), "ring");
  need(kSectionChunks, times(ctl.total_chunks, sizeof(ChunkHeader)), "chunk");
  const bool in_region = (ctl.flags & kTopicFlagPayloadInRegion) != 0;
  if (std::uint64_t{ctl.pool_count} * ctl.chunks_per_pool != ctl.total_chunks) {
    corrupt("pool_count " + std::to_string(ctl.pool_count) + " times chunks_per_pool " + std::to_string(ctl.chunks_per_pool) +
            " is not total_chunks " + std::to_string(ctl.total_chunks));
  }
  if (in_region ? ctl.pool_count != 1 : ctl.pool_count != ctl.max_publishers) {
    corrupt("wrong pool_count " + std::to_string(ctl.pool_count) + " (payload " +
            std::string(in_region ? "in the region: 1" : "in publisher pools: max_publishers") + ")");
  }
  need(kSectionPools, times(ctl.pool_count, sizeof(PoolSlot)), "pool");
  need(kSectionFreeLists, times(times(ctl.pool_count, ctl.class_count), sizeof(FreeList)), "free list");
  const Section& pay = h.sections[kSectionPayload];
  if (ctl.pool_bytes == 0 || ctl.pool_bytes % kPageSize != 0 || (in_region && pay.size < ctl.pool_bytes) ||
      pay.offset % kPageSize != 0) {
    corrupt("bad pool_bytes " + std::to_string(ctl.pool_bytes) + " (payload section " + std::to_string(pay.size) + " bytes)");
  }
  f.classes.resize(ctl.class_count);
  std::memcpy(f.classes.data(), base_ + h.sections[kSectionClasses].offset, ctl.class_count * sizeof(SizeClassEntry));
  TopicConfig c;
  c.size_classes.clear();  // not TopicConfig's default class: only the region's own
  std::vector<LocalClass> classes;
  std::uint64_t expect_first = 0;
  // The classes must lie in the pool exactly as plan_for() lays them out, and the pool be
  // exactly as large as they need: a forged pool_bytes would make every joining publisher
  // create (and reserve) a memfd of that size.
  std::uint64_t pool_end = 0;
  for (std::uint32_t i = 0; i < ctl.class_count; ++i) {
    const SizeClassEntry& e = f.classes[i];
    if (e.chunk_size == 0 || e.chunk_size % 8 != 0 || e.chunk_size > kMaxChunkSize || e.chunk_count == 0 ||
        e.payload_stride != payload_stride(e.chunk_size) || e.first_chunk != expect_first ||
        e.payload_offset != round_up(pool_end, kPageSize) || e.payload_offset > ctl.pool_bytes ||
        times(e.payload_stride, e.chunk_count) > ctl.pool_bytes - e.payload_offset) {
      corrupt("size class " + std::to_string(i) + " is inconsistent (chunk_size " + std::to_string(e.chunk_size) +
              ", payload_stride " + std::to_string(e.payload_stride) + ", payload_offset " + std::to_string(e.payload_offset) +
              ", first_chunk " + std::to_string(e.first_chunk) + ", chunk_count " + std::to_string(e.chunk_count) + ")");
    }
    classes.push_back({e.chunk_size, e.payload_stride, e.payload_offset, e.first_chunk, e.chunk_count});
    c.size_classes.push_back({e.chunk_size, e.chunk_count});
    expect_first += e.chunk_count;
    pool_end = e.payload_offset + e.payload_stride * e.chunk_count;
  }
  if (ctl.pool_bytes != round_up(pool_end, kPageSize)) {
    corrupt("pool_bytes " + std::to_string(ctl.pool_bytes) + " is not what the size classes need (" +
            std::to_string(round_up(pool_end, kPageSize)) + ")");
  }
  if (expect_first != ctl.chunks_per_pool) {
    corrupt("size class chunk_counts add up to " + std::to_string(expect_first) + ", not chunks_per_pool " +
            std::to_string(ctl.chunks_per_pool));
  }
  c.name = ctl.name;
  c.type_id = ctl.type_id;
  switch (ctl.policy) {
    case SlowSubscriberPolicyWire::kBlock: c.policy = SlowSubscriberPolicy::block; break;
    case SlowSubscriberPolicyWire::kDropOldest: c.policy = SlowSubscriberPolicy::drop_oldest; break;
    case SlowSubscriberPolicyWire::kFailPublish: c.policy = SlowSubscriberPolicy::fail_publish; break;
    default: corrupt("unknown slow-subscriber policy " + std::to_string(static_cast<std::uint32_t>(ctl.policy)));
  }
  c.queue_depth = ctl.ring_capacity;
  c.history_depth = ctl.history_depth;
  c.max_publishers = ctl.max_publishers;
  c.max_subscribers = ctl.max_subscribers;
  c.max_loans_per_publisher = ctl.max_loans_per_publisher;
  c.max_held_per_subscriber = ctl.max_held_per_subscriber;
  c.max_segments = ctl.max_segments;
  c.max_message_size = ctl.max_message_size;
  c.block_timeout = std::chrono::nanoseconds(ctl.block_timeout_ns);
  c.stamp_publish_time = (ctl.flags & kTopicFlagStampTime) != 0;
  const Section& schema = h.sections[kSectionSchema];
  c.schema.assign(reinterpret_cast<const char*>(base_ + schema.offset), schema.size);
  lost();
  facts_ = std::move(f);
  classes_ = std::move(classes);
  config_ = std::move(c);
  bind_sections();
}

void TopicMap::bind_sections() {
  // Only from the validated private copy (see validate()).
  const HeaderFacts& h = facts_.header;
  const ControlFacts& ctl = facts_.control;
  auto at = [&](SectionId id) { return base_ + h.sections[id].offset; };
  control_ = reinterpret_cast<TopicControl*>(at(kSectionControl));
  publishers_ = reinterpret_cast<PublisherSlot*>(at(kSectionPublishers));
  subscribers_ = reinterpret_cast<SubscriberSlot*>(at(kSectionSubscribers));
  loans_ = reinterpret_cast<std::atomic<std::uint32_t>*>(at(kSectionLoans));
  holds_ = reinterpret_cast<std::atomic<std::uint32_t>*>(at(kSectionHolds));
  ring_ = reinterpret_cast<RingSlot*>(at(kSectionRing));
  chunks_ = reinterpret_cast<ChunkHeader*>(at(kSectionChunks));
  pool_slots_ = reinterpret_cast<PoolSlot*>(at(kSectionPools));
  free_lists_ = reinterpret_cast<FreeList*>(at(kSectionFreeLists));
  ring_mask_ = ctl.ring_capacity - 1;
  total_chunks_ = ctl.total_chunks;
  pool_count_ = ctl.pool_count;
  chunks_per_pool_ = ctl.chunks_per_pool;
  pool_magic_ = chunks_per_pool_ > 1 ? ~0ULL / chunks_per_pool_ + 1 : 0;
  pool_bytes_ = ctl.pool_bytes;
  external_pools_ = (ctl.flags & kTopicFlagPayloadInRegion) == 0;
  if (!views_) {
    views_ = std::make_unique<std::atomic<const PoolMapping*>[]>(pool_count_);
    current_.resize(pool_count_);
    for (std::uint32_t p = 0; p < pool_count_; ++p) views_[p].store(nullptr, std::memory_order_relaxed);
  }
  if (!external_pools_ && !current_[0]) {
    // The region's own pool: a view of the region mapping itself, generation 0.
    auto v = std::make_shared<PoolMapping>();
    v->base = at(kSectionPayload);
    v->size = pool_bytes_;
    v->fd = fd_;
    v->file_offset = h.sections[kSectionPayload].offset;
    v->writable = writable_;
    current_[0] = v;
    // Release: a reader of views_ (acquire) sees the view's fields.
    views_[0].store(v.get(), std::memory_order_release);
  }
}

TopicMap::~TopicMap() {
  if (guarded_) SigbusGuard::unregister_mapping(base_);
  if (base_ != nullptr) munmap(base_, size_);
  if (fd_ >= 0) close(fd_);
}

std::string TopicMap::describe() const {
  std::string s = "topic '" + config_.name + "'";  // the private copy: the mapping may be gone
  if (!path_.empty()) s += " (file " + path_.string() + ")";
  return s;
}

}  // namespace shmbus::detail
