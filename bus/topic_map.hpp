// detail::TopicMap: one process's validated view of a topic region, and the lock-free pool
// operations on it. Every value read from shared memory that could send us out of bounds
// (chunk indices, sizes) is checked here before use: other processes are not trusted to
// keep the region consistent. Defined in topic_map.cpp (planning and validation),
// chunk_refs.cpp (the chunk reference protocol) and pool_views.cpp (payload pools).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "layout.hpp"
#include "payload_pool.hpp"
#include "region_facts.hpp"
#include "shmbus/config.hpp"
#include "shmbus/error.hpp"

namespace shmbus::detail {

// Process-local copy of one validated size class (offsets within a pool).
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

  // ---- payload pools (layout.hpp, "Payload pools") ----
  // The pool a publisher in slot `slot` loans from: creates pool `slot` (a new sealed memfd,
  // a new generation) in an anonymous region, or joins the region's own pool 0 in a file. It
  // becomes this process's view of that pool. Throws Error.
  std::shared_ptr<PoolMapping> own_pool(std::uint32_t slot);
  // Payload base of pool `pool` at `generation` in this process, mapping it on first use
  // (read-only; from the daemon, or through /proc/<owner>/fd); nullptr when it cannot be
  // mapped (no daemon, and its publisher is gone or a newer generation replaced it, or the
  // pool slot names something that is not that sealed memfd). Hot path: one acquire load and a
  // compare.
  std::byte* pool_base(std::uint32_t pool, std::uint32_t generation) noexcept {
    // Acquire: pairs with the release store that installed the view (its fields are set).
    const PoolMapping* v = views_[pool].load(std::memory_order_acquire);
    if (v != nullptr && v->generation == generation) [[likely]] return v->base;
    return resolve_pool(pool, generation);
  }
  // This process's current view of `pool`, whatever its generation, or nullptr (prefetching).
  const PoolMapping* current_view(std::uint32_t pool) const noexcept {
    return views_[pool].load(std::memory_order_acquire);  // acquire: as in pool_base()
  }
  // The mapping (of this process) that holds address `p`, or nullptr.
  std::shared_ptr<PoolMapping> mapping_containing(const void* p);
  std::shared_ptr<PoolMapping> current_pool(std::uint32_t pool);
  // See detail::check_pool_fd() and detail::pool_in_use() (topic_admin.hpp).
  void check_pool_fd(std::uint32_t pool, std::uint32_t generation, int fd, pid_t creator) const;
  bool pool_in_use(std::uint32_t pool, std::uint32_t generation) const noexcept;
  // Where this map gets a pool's memfd from first: the bus daemon, when a shmbus::Client
  // mapped the topic (it hands the map a source then). The daemon accepted each pool only from
  // a connection with publish rights whose pid created it, and keeps it while any message of
  // its generation is queued or held, also after its publisher exited and its slot was reused.
  // A source returns an fd the caller owns; kPoolUnknownHere when it cannot tell (daemon
  // unreachable, its client gone: the subscriber then opens the pool through /proc if the slot
  // still names that generation); or kPoolRefused when the daemon answered that it has no
  // such pool (the subscriber then does not trust the pool slot, which any participant could
  // have rewritten, and counts the message lost). Called without any lock held.
  static constexpr int kPoolUnknownHere = -1;
  static constexpr int kPoolRefused = -2;
  using PoolFdSource = std::function<int(std::uint32_t pool, std::uint32_t generation)>;
  void set_pool_fd_source(PoolFdSource source);
  // Where chunk `chunk`'s payload starts in the pool mapped at `pool_base`, and how many bytes
  // it can hold (one class lookup for both: the take path wants both).
  struct PayloadSpan {
    std::byte* data;
    std::uint64_t capacity;
  };
  PayloadSpan payload_span(const std::byte* pool_base, std::uint32_t chunk) const noexcept {
    const std::uint32_t local = local_index(chunk);
    const LocalClass& c = class_of_local(local);
    return {const_cast<std::byte*>(pool_base) + c.payload_offset + std::uint64_t{local - c.first_chunk} * c.stride,
            c.chunk_size};
  }
  std::byte* payload_at(const std::byte* pool_base, std::uint32_t chunk) const noexcept {
    return payload_span(pool_base, chunk).data;
  }
  // payload_at() through pool_base() of the chunk's pool and generation; slow-path helper for
  // tools and snapshots. nullptr when the pool cannot be mapped.
  std::byte* payload(std::uint32_t chunk) noexcept;
  // chunk / chunks_per_pool without a division instruction (tens of cycles, twice per message
  // otherwise): Lemire's fastdiv with a precomputed ceil(2^64 / d), exact for every 32-bit chunk.
  std::uint32_t pool_of(std::uint32_t chunk) const noexcept {
    if (chunks_per_pool_ == 1) return chunk;  // the magic number would be 2^64
    return static_cast<std::uint32_t>((static_cast<unsigned __int128>(pool_magic_) * chunk) >> 64);
  }
  // The chunk's index within its pool.
  std::uint32_t local_index(std::uint32_t chunk) const noexcept { return chunk - pool_of(chunk) * chunks_per_pool_; }
  std::uint32_t pool_count() const noexcept { return pool_count_; }
  std::uint32_t chunks_per_pool() const noexcept { return chunks_per_pool_; }
  std::uint64_t pool_bytes() const noexcept { return pool_bytes_; }
  PoolSlot& pool_slot(std::uint32_t pool) const noexcept { return pool_slots_[pool]; }
  // True when the pool's chunk headers and free lists have been built (chunks exist).
  bool pool_initialised(std::uint32_t pool) const noexcept {
    return pool_slots_[pool].initialised.load(std::memory_order_acquire) != 0;  // acquire: see the lists
  }
  // Payload lives in pools outside the region (anonymous regions).
  bool external_pools() const noexcept { return external_pools_; }

  // ---- chunks ----
  // Smallest class whose chunks hold `bytes`, or -1.
  int class_for(std::uint64_t bytes) const noexcept;
  // Pops a free chunk of class `cls` of pool `pool` and gives it refs = 1 and the pool
  // generation `generation`, or returns kNoChunk. Only the pool's owner calls it.
  std::uint32_t allocate(std::uint32_t pool, int cls, std::uint32_t generation) noexcept;
  // Takes one more reference to a chunk that is not free; false if it is free (refs == 0).
  bool try_acquire(std::uint32_t chunk) noexcept;
  // Drops one counted reference; the last reference frees the chunk and the rest of its
  // message's chain.
  void release(std::uint32_t chunk) noexcept;
  // Turns the loaner's counted reference into the ring's reference (publish).
  void loan_to_ring(std::uint32_t chunk) noexcept;
  // Drops the ring's reference, idempotently: a second call (a recoverer racing the
  // publisher that overwrote the slot) does nothing. Frees the chunk if nothing else holds it,
  // and then returns true.
  bool drop_ring_ref(std::uint32_t chunk) noexcept;
  // A publisher's reuse of the chunk it displaced from the ring: when only the ring holds
  // `chunk`, a single segment, turn the ring's reference into a loan (refs = 1), set up as
  // allocate() would hand it out. False, and nothing changed, otherwise. The caller must
  // record the loan (it is a counted reference).
  bool ring_ref_to_loan(std::uint32_t chunk, std::uint32_t generation) noexcept;

  // Turns the pin of `chunk` in hold-row entry `entry` (chunk|kHoldPinned) into a counted
  // reference for the entry's subscriber: a count first, then a CAS of the entry to the bare
  // chunk. If the entry changed meanwhile (released, or already counted by someone else), our
  // count goes back. False when no count could be taken (the chunk is free: the region was
  // lost). The caller covers the window between the count and the entry (UnrecordedWindow),
  // unless no audit can run meanwhile.
  bool count_pin(std::atomic<std::uint32_t>& entry, std::uint32_t chunk) noexcept;
  // Drop-oldest: turns every pin of `chunk` in subscriber `sub`'s hold row into a counted
  // reference for that subscriber (layout.hpp, protocol summary). The caller displaced the
  // chunk from its ring slot, committed the slot and issued a seq_cst fence, and still holds
  // the ring's reference (so the count never rises from 0).
  void count_pins(std::uint32_t sub, std::uint32_t chunk) noexcept;
  // count_pins() for every subscriber slot: recoverers, which displace chunks rarely.
  void count_pins_everywhere(std::uint32_t chunk) noexcept;

  bool valid_chunk(std::uint32_t chunk) const noexcept { return chunk < total_chunks_; }
  // The chunk a hold-row entry names, counted or pinned (kHoldPinned); kNoChunk for none.
  std::uint32_t held_chunk(std::uint32_t entry) const noexcept {
    const std::uint32_t chunk = entry == kNoChunk ? kNoChunk : entry & ~kHoldPinned;
    return valid_chunk(chunk) ? chunk : kNoChunk;
  }
  // Inline, and a scan of a handful of classes: it runs several times per message (it was
  // 10 % of the hot path's instructions out of line, bench/NOTES.md).
  const LocalClass& class_of(std::uint32_t chunk) const noexcept { return class_of_local(local_index(chunk)); }
  // The class of the chunk with index `local` within its pool.
  const LocalClass& class_of_local(std::uint32_t local) const noexcept {
    for (const LocalClass& c : classes_) {
      if (local - c.first_chunk < c.chunk_count) return c;
    }
    return classes_.back();  // unreachable for a valid_chunk(); callers check first
  }
  std::uint64_t capacity(std::uint32_t chunk) const noexcept { return class_of(chunk).chunk_size; }

  // ---- accessors ----
  // The mapping's header and control block: use them for the mutable words only (health,
  // layout_version, tail, futexes, ...); immutable ones come from facts().
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

  // The topic's configuration and the region's immutable facts, from the private copy taken
  // and validated at open: never re-read from the mapping, which anyone may rewrite.
  const TopicConfig& config() const noexcept { return config_; }
  const RegionFacts& facts() const noexcept { return facts_; }
  SlowSubscriberPolicyWire policy_wire() const noexcept { return facts_.control.policy; }
  std::uint32_t flags() const noexcept { return facts_.control.flags; }
  RegionKind kind() const noexcept { return facts_.header.kind; }
  std::uint64_t block_timeout_ns() const noexcept { return facts_.control.block_timeout_ns; }
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
  // FreeList::high_water of a pool's class, as stored (layout.hpp: untrusted, unclamped).
  std::uint32_t pool_high_water(std::uint32_t pool, std::size_t cls) const noexcept {
    return free_list(pool, cls).high_water.load(std::memory_order_relaxed);  // relaxed: a statistic
  }

 private:
  TopicMap() = default;
  void free_chain(std::uint32_t head) noexcept;
  FreeList& free_list(std::uint32_t pool, std::size_t cls) const noexcept {
    return free_lists_[std::size_t{pool} * classes_.size() + cls];
  }
  void initialise_pool(std::uint32_t pool) noexcept;  // chunk headers and free lists
  // pool_base()'s miss path: out of line and cold, so that none of it lands in the hot path's code.
  [[gnu::noinline, gnu::cold]] std::byte* resolve_pool(std::uint32_t pool, std::uint32_t generation) noexcept;
  // Installs `m` as this process's view of its pool; the one it replaces is kept until no
  // chunk of its generation is referenced any more. Caller holds pools_mutex_.
  void install_view(std::shared_ptr<PoolMapping> m);
  void drop_unreferenced_views();  // caller holds pools_mutex_
  void bind_sections();      // sets the typed pointers from the section table
  void validate(const std::string& what);  // throws Error; called on open

  int fd_ = -1;
  std::filesystem::path path_;
  std::byte* base_ = nullptr;
  std::size_t size_ = 0;
  TopicConfig config_;
  RegionFacts facts_;  // validated private copy of the immutable words (region_facts.hpp)
  TopicControl* control_ = nullptr;
  PoolSlot* pool_slots_ = nullptr;
  FreeList* free_lists_ = nullptr;
  PublisherSlot* publishers_ = nullptr;
  SubscriberSlot* subscribers_ = nullptr;
  std::atomic<std::uint32_t>* loans_ = nullptr;
  std::atomic<std::uint32_t>* holds_ = nullptr;
  RingSlot* ring_ = nullptr;
  ChunkHeader* chunks_ = nullptr;
  std::uint64_t ring_mask_ = 0;
  std::uint32_t total_chunks_ = 0;
  std::uint32_t pool_count_ = 1;
  std::uint32_t chunks_per_pool_ = 1;
  std::uint64_t pool_magic_ = 0;  // ceil(2^64 / chunks_per_pool_), see pool_of()
  std::uint64_t pool_bytes_ = 0;
  bool external_pools_ = false;
  std::vector<LocalClass> classes_;
  // This process's pool views: views_[p] is the one the hot path reads; current_ keeps it
  // alive, retired_ keeps replaced ones while chunks of their generation are referenced.
  std::unique_ptr<std::atomic<const PoolMapping*>[]> views_;
  std::mutex pools_mutex_;
  std::vector<std::shared_ptr<PoolMapping>> current_;
  std::vector<std::shared_ptr<PoolMapping>> retired_;
  std::shared_ptr<const PoolFdSource> pool_source_;  // under pools_mutex_; called outside it
  // (pool, generation) pairs found out of reach for good (an older generation that neither
  // the daemon nor /proc offers), so that each of their messages does not ask again. Bounded.
  std::vector<std::pair<std::uint32_t, std::uint32_t>> unreachable_;
  std::atomic<std::uint32_t> lost_{0};  // set by the SIGBUS guard
  bool guarded_ = false;
  bool writable_ = true;
};

}  // namespace shmbus::detail
