// detail::TopicMap: one process's validated view of a topic region, and the lock-free pool
// operations on it. Every value read from shared memory that could send us out of bounds
// (chunk indices, sizes) is checked here before use: other processes are not trusted to
// keep the region consistent.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "layout.hpp"
#include "shmbus/config.hpp"
#include "shmbus/error.hpp"

namespace shmbus::detail {

// Process-local copy of one validated size class.
struct LocalClass {
  std::uint64_t chunk_size;
  std::uint64_t stride;
  std::uint64_t payload_offset;
  std::uint32_t first_chunk;
  std::uint32_t chunk_count;
};

class TopicMap {
 public:
  // Creates the region (memfd or file), lays out and initialises the topic, maps it.
  static std::shared_ptr<TopicMap> create(const TopicConfig& config, const RegionOptions& options);
  // Maps and validates an existing region. `fd` is owned by the new map.
  // A read-only map (writable = false) serves inspection only; publishers and subscribers
  // refuse it.
  static std::shared_ptr<TopicMap> open(int fd, std::filesystem::path path, bool writable = true);
  ~TopicMap();
  TopicMap(const TopicMap&) = delete;
  TopicMap& operator=(const TopicMap&) = delete;

  // ---- the pool ----
  // Smallest class whose chunks hold `bytes`, or -1.
  int class_for(std::uint64_t bytes) const noexcept;
  // Pops a free chunk of class `cls` and gives it refs = 1, or returns kNoChunk.
  std::uint32_t allocate(int cls) noexcept;
  // Takes one more reference to a chunk that is not free; false if it is free (refs == 0).
  bool try_acquire(std::uint32_t chunk) noexcept;
  // Drops one counted reference; the last reference frees the chunk and the rest of its
  // message's chain.
  void release(std::uint32_t chunk) noexcept;
  // Turns the loaner's counted reference into the ring's reference (publish).
  void loan_to_ring(std::uint32_t chunk) noexcept;
  // Drops the ring's reference, idempotently: a second call (a recoverer racing the
  // publisher that overwrote the slot) does nothing. Frees the chunk if nothing else holds it.
  void drop_ring_ref(std::uint32_t chunk) noexcept;

  bool valid_chunk(std::uint32_t chunk) const noexcept { return chunk < total_chunks_; }
  const LocalClass& class_of(std::uint32_t chunk) const noexcept;
  std::byte* payload(std::uint32_t chunk) const noexcept;
  std::uint64_t capacity(std::uint32_t chunk) const noexcept { return class_of(chunk).chunk_size; }

  // ---- accessors ----
  RegionHeader& header() const noexcept { return *reinterpret_cast<RegionHeader*>(base_); }
  TopicControl& control() const noexcept { return *control_; }
  ChunkHeader& chunk(std::uint32_t i) const noexcept { return chunks_[i]; }
  RingSlot& ring_slot(std::uint64_t seq) const noexcept { return ring_[seq & ring_mask_]; }
  PublisherSlot& publisher(std::uint32_t i) const noexcept { return publishers_[i]; }
  SubscriberSlot& subscriber(std::uint32_t i) const noexcept { return subscribers_[i]; }
  std::atomic<std::uint32_t>* loans_of(std::uint32_t pub) const noexcept {
    return loans_ + static_cast<std::size_t>(pub) * config_.max_loans_per_publisher;
  }
  std::atomic<std::uint32_t>* holds_of(std::uint32_t sub) const noexcept {
    return holds_ + static_cast<std::size_t>(sub) * config_.max_held_per_subscriber;
  }
  const std::vector<LocalClass>& classes() const noexcept { return classes_; }
  SizeClassEntry& class_entry(std::size_t i) const noexcept { return class_entries_[i]; }

  const TopicConfig& config() const noexcept { return config_; }
  std::uint64_t ring_capacity() const noexcept { return ring_mask_ + 1; }
  std::uint32_t total_chunks() const noexcept { return total_chunks_; }
  int fd() const noexcept { return fd_; }
  bool writable() const noexcept { return writable_; }
  const std::filesystem::path& path() const noexcept { return path_; }
  std::byte* base() const noexcept { return base_; }
  std::size_t size() const noexcept { return size_; }
  // "topic 'x'" or "topic 'x' (file /path)", for error messages.
  std::string describe() const;
  // The flag the SIGBUS guard raises for this region (for further private mappings of it).
  std::atomic<std::uint32_t>* lost_flag() noexcept { return &lost_; }

  // True once the region is lost (its file was truncated under us: the SIGBUS guard fired) or
  // revoked (the daemon marked it in the header after a lease break). Every API call checks it.
  bool unusable() const noexcept {
    // Acquire: pairs with the guard's release store; relaxed for health, a hint only.
    return lost_.load(std::memory_order_acquire) != 0 ||
           header().health.load(std::memory_order_relaxed) != kRegionHealthy;
  }

 private:
  TopicMap() = default;
  void free_chain(std::uint32_t head) noexcept;
  void bind_sections();      // sets the typed pointers from the section table
  void validate(const std::string& what);  // throws Error; called on open
  void initialise(const TopicConfig& config, const RegionOptions& options);

  int fd_ = -1;
  std::filesystem::path path_;
  std::byte* base_ = nullptr;
  std::size_t size_ = 0;
  TopicConfig config_;
  TopicControl* control_ = nullptr;
  SizeClassEntry* class_entries_ = nullptr;
  PublisherSlot* publishers_ = nullptr;
  SubscriberSlot* subscribers_ = nullptr;
  std::atomic<std::uint32_t>* loans_ = nullptr;
  std::atomic<std::uint32_t>* holds_ = nullptr;
  RingSlot* ring_ = nullptr;
  ChunkHeader* chunks_ = nullptr;
  std::uint64_t ring_mask_ = 0;
  std::uint32_t total_chunks_ = 0;
  std::vector<LocalClass> classes_;
  std::atomic<std::uint32_t> lost_{0};  // set by the SIGBUS guard
  bool guarded_ = false;
  bool writable_ = true;
};

}  // namespace shmbus::detail
