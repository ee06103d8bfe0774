// Shared-memory layout of a shmbus topic region. Everything in this file lives in memory that
// other processes map, so every struct is standard-layout, fixed-width, pointer-free (offsets
// and chunk indices only) and pinned by static_asserts. Bump kLayoutVersion on ANY change to a
// size, offset, field meaning or protocol rule below; a process meeting another version refuses
// the region (docs/design.md property 6).
//
// A region is a RegionHeader (one page) followed by the sections of SectionId, found through
// the header's section table. docs/internals.md has the picture of a region and its pools, the
// life of a message, and why each rule below is what it is; each field's comment says who
// writes it, and each atomic's use names its memory order and its pair.
//
// Payload pools (least privilege, docs/design.md property 4). Subscribers must write this
// region, so payload lives outside it: publisher slot p owns pool p, a memfd its publisher maps
// writable and then seals SHRINK|GROW|FUTURE_WRITE|SEAL, so every other mapping of it is
// read-only (docs/linux-facts.md §3). PoolSlot p says where it is now. Chunk c belongs to pool
// c / chunks_per_pool; its header's pool_generation names which memfd of that pool holds its
// payload. With kTopicFlagPayloadInRegion there is one pool instead, generation 0, in the
// region's payload section and shared by every publisher (trusted setups only).
//
// Protocol summary: the rules every process keeps (cite them as "layout.hpp rule N").
//   1. References. ChunkHeader::refs is 0 while free. Its top bit (kRingRef) is the ring's
//      reference; the rest counts every other one (a loan, a counted sample, a snapshot, a
//      view). A loan sets refs = 1, publishing turns it into the ring bit. The ring's
//      reference is a bit so that dropping it is idempotent: a recoverer and a live publisher
//      may both drop it, and only the one that sees exactly kRingRef frees the chunk.
//   2. Records. Every counted reference a process holds is recorded in its slot's loan or hold
//      row, except inside a window its slot's op_seq (or foreign_windows) marks open; so a
//      recoverer releases what the rows record, and audits counts only on a quiet view.
//   3. Claims. A publisher stores PublisherSlot::claimed_plus1 = ~0 before it takes a
//      sequence from `tail`, then seq+1, so a recoverer that read `tail` knows every live
//      claim; a dead one's holes get tombstones (chunk kNoChunk), chunk first, commit last.
//   4. One writer per ring slot. The claimant of seq writes slot seq & mask only once the
//      message a lap earlier (seq - capacity) is committed, and nobody else writes it until
//      its own commit; so it writes with plain stores (drop-oldest: `writing` = seq+1 first)
//      and stores `commit` = seq+1 last, with release.
//   5. Takes. A subscriber takes in order from its cursor; a commit word above cursor+1 means
//      it was overtaken (drop-oldest), and it counts exactly what it lost.
//   6. Pins. A sample is normally pinned: its hold entry is chunk|kHoldPinned, the ring's
//      reference keeps the chunk, and the take reads the ring slot (which carries the size and
//      pool generation) and the payload, never the chunk header. The subscriber's stored
//      cursor stays at the oldest sequence it pins. A pin held while its subscriber waits, or
//      for more than half a lap, becomes a counted reference (SubscriberCore::unpin).
//   7. What keeps a pinned slot. Block and fail_publish: publishers respect cursors, so none
//      claims the pinned sequence's next lap. Drop-oldest: the pin holds only if, after
//      storing it and a seq_cst fence, the subscriber finds that `commit` still names its
//      message and `writing` is not past it; and the slot's next writer, after its commit
//      store and a seq_cst fence and before it drops the ring's reference, turns every pin of
//      the chunk it displaced (in the rows of subscribers whose cursor is at or below that
//      sequence) into a counted reference: count added first, then a CAS of the entry from
//      chunk|kHoldPinned to chunk. Recoverers that displace a chunk do the same. So under
//      drop-oldest, hold entries change only by atomic read-modify-writes.
//   8. Counted takes (a one-slot ring, or a message more than a lap older than the tail a new
//      subscriber read after bumping subscriber_epoch): a CAS that never raises refs from 0,
//      then a check that `sequence` is the one wanted; if not, the chunk was recycled under
//      us, and the subscriber resynchronises.
//   9. Sleeping. A sleeper registers (sleepers, lap_waiters, blocked_publishers; seq_cst) and
//      then re-checks; the party it waits for makes its progress visible, issues a seq_cst
//      fence and then reads the count, and calls FUTEX_WAKE only when it is non-zero.
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace shmbus::detail {

// Fixed in the layout, never std::hardware_destructive_interference_size (it changes with
// compiler flags, and both sides of a mapping must agree).
inline constexpr std::size_t kCacheLine = 64;
inline constexpr std::size_t kPageSize = 4096;

inline constexpr std::uint64_t kRegionMagic = 0x31'53'55'42'4d'48'53'00ULL;  // "\0SHMBUS1"
// Incompatible when: any struct below changes size/offset/meaning, a section is added or
// reordered, or a protocol rule in the comments changes.
// 1: first release. 2: ring slots padded to a cache line each. 3: payload pools, sealed
// per-publisher memfds in anonymous regions. 4: one writer per ring slot (plain-store commit).
// 5: pinned samples (ring slot carries size and pool generation; kHoldPinned hold entries),
// PublisherSlot::kept_chunk, SubscriberSlot::foreign_windows. 6: pinned samples under
// drop-oldest too (RingSlot::writing; displaced pins are counted by the displacer).
// 7: metrics counters: PublisherSlot's second line (failures by reason),
// SubscriberSlot::malformed, FreeList::pops and high_water (docs/metrics.md).
inline constexpr std::uint32_t kLayoutVersion = 7;

// ABI facts that must match for two builds to share a region: pointer width, cache line,
// byte order, and the size of the structures whose layout depends on the compiler.
inline constexpr std::uint32_t kAbiWord =
    static_cast<std::uint32_t>(sizeof(void*)) | (static_cast<std::uint32_t>(kCacheLine) << 8) |
    ((std::endian::native == std::endian::little ? 1u : 0u) << 16);

inline constexpr std::uint32_t kNoChunk = 0xFFFF'FFFFu;
// A hold-row entry with this bit set records a pinned sample (see the protocol summary): it
// holds no counted reference, so recoverers and auditors must not release or count it.
// Marked values fail valid_chunk(), as every chunk index is below it.
inline constexpr std::uint32_t kHoldPinned = 0x8000'0000u;
inline constexpr std::uint32_t kRingRef = 0x8000'0000u;  // ChunkHeader::refs: the ring's reference
inline constexpr std::uint64_t kNoSequence = ~0ULL;

enum class RegionKind : std::uint32_t { kAnonymous = 1, kFile = 2 };

enum SectionId : std::uint32_t {
  kSectionControl = 0,
  kSectionClasses,
  kSectionPublishers,
  kSectionSubscribers,
  kSectionLoans,
  kSectionHolds,
  kSectionRing,
  kSectionChunks,
  kSectionPayload,
  kSectionSchema,
  kSectionPools,
  kSectionFreeLists,
  kSectionCount
};

struct Section {
  std::uint64_t offset;  // from the region base
  std::uint64_t size;    // bytes
};
static_assert(sizeof(Section) == 16);

// Region header, at offset 0 of every shmbus region.
struct RegionHeader {
  std::uint64_t magic;         // kRegionMagic
  std::uint32_t abi_word;      // kAbiWord of the creator
  RegionKind kind;             // anonymous (memfd) or file
  std::uint64_t region_size;   // bytes; must equal the mapping / file size
  std::uint64_t bus_epoch;     // creator's epoch (daemon start time, or creation time)
  char bus_name[64];           // NUL-terminated
  std::uint32_t section_count; // kSectionCount
  std::uint32_t reserved0;
  Section sections[16];        // room for later sections (durable log, schema)
  // Region health. 0 = ok; kRegionRevoked once the daemon learned the backing file is being
  // truncated or rewritten (lease break). Clients check it on the slow paths.
  std::atomic<std::uint32_t> health;
  // Written last by the creator with release order; an opener reads it first with acquire so
  // that everything above is visible once it reads a non-zero version.
  std::atomic<std::uint32_t> layout_version;
  std::uint8_t reserved[kPageSize - 368];
};
inline constexpr std::uint32_t kRegionHealthy = 0;
inline constexpr std::uint32_t kRegionRevoked = 1;
static_assert(std::is_standard_layout_v<RegionHeader>);
static_assert(sizeof(RegionHeader) == kPageSize);
static_assert(offsetof(RegionHeader, magic) == 0);
static_assert(offsetof(RegionHeader, abi_word) == 8);
static_assert(offsetof(RegionHeader, region_size) == 16);
static_assert(offsetof(RegionHeader, bus_name) == 32);
static_assert(offsetof(RegionHeader, section_count) == 96);
static_assert(offsetof(RegionHeader, sections) == 104);
static_assert(offsetof(RegionHeader, health) == 360);
static_assert(offsetof(RegionHeader, layout_version) == 364);

enum class SlowSubscriberPolicyWire : std::uint32_t { kBlock = 1, kDropOldest = 2, kFailPublish = 3 };

inline constexpr std::size_t kTopicNameMax = 255;

// The topic's control block. The first cache lines are written once by the creator before
// layout_version is released and never change afterwards; the hot words follow, each on its
// own cache line so that publishers and subscribers do not false-share.
struct TopicControl {
  char name[kTopicNameMax + 1];
  std::uint64_t type_id;           // Cap'n Proto struct id of the message type, 0 = raw bytes
  SlowSubscriberPolicyWire policy;
  std::uint32_t ring_capacity;     // power of two
  std::uint32_t history_depth;     // <= ring_capacity
  std::uint32_t max_publishers;
  std::uint32_t max_subscribers;
  std::uint32_t max_loans_per_publisher;
  std::uint32_t max_held_per_subscriber;
  std::uint32_t max_segments;      // Cap'n Proto segments per message (chunks per message)
  std::uint32_t class_count;
  std::uint32_t total_chunks;
  std::uint64_t max_message_size;  // bytes, over all segments of one message
  std::uint64_t block_timeout_ns;  // default for the block policy
  std::uint32_t flags;             // kTopicFlag*
  std::uint32_t pool_count;        // max_publishers (pool p belongs to slot p); 1 with the payload in region
  std::uint32_t chunks_per_pool;   // sum of the size classes' counts
  std::uint32_t reserved_pool;
  std::uint64_t pool_bytes;        // size of one pool's payload (its memfd, or the payload section)
  std::uint8_t reserved_config[192 - 88];

  // Next sequence to claim. Publishers fetch_add/CAS it; subscribers read it to resynchronise.
  alignas(kCacheLine) std::atomic<std::uint64_t> tail;
  std::uint8_t pad_tail[kCacheLine - 8];
  // Futex word bumped by a publisher when `sleepers` is non-zero; subscribers FUTEX_WAIT on it.
  alignas(kCacheLine) std::atomic<std::uint32_t> data_futex;
  std::atomic<std::uint32_t> sleepers;
  // Futex word bumped by a publisher when `lap_waiters` is non-zero; publishers waiting for a
  // ring slot's previous lap to be committed FUTEX_WAIT on it (PublisherCore::commit()). Same
  // line as `sleepers`: the publisher reads both after every commit.
  std::atomic<std::uint32_t> lap_futex;
  std::atomic<std::uint32_t> lap_waiters;
  std::uint8_t pad_data[kCacheLine - 16];
  // Futex word bumped by a subscriber when `blocked_publishers` is non-zero (block policy).
  alignas(kCacheLine) std::atomic<std::uint32_t> space_futex;
  std::atomic<std::uint32_t> blocked_publishers;
  // One past the highest subscriber slot ever registered: block-policy publishers scan only
  // that far. Only grows (a freed slot below it is simply skipped).
  std::atomic<std::uint32_t> subscriber_high_water;
  // Bumped whenever a subscriber joins or leaves: publishers that cache the slowest cursor
  // rescan when it changes. Read-mostly, so it stays cached in publishers.
  std::atomic<std::uint32_t> subscriber_epoch;
  // Held (CLOCK_MONOTONIC ns of taking it, 0 = free) by whoever reclaims slots or audits
  // reference counts, so that two recoverers never release the same reference. A holder that
  // died is taken over after a second. Never touched by the data path.
  std::atomic<std::uint64_t> recovery_lock;
  std::uint8_t pad_space[kCacheLine - 24];
};
inline constexpr std::uint32_t kTopicFlagStampTime = 1;
// Payload in the region's own payload section (one pool, shared by every publisher) instead of
// per-publisher sealed memfds (RegionOptions::payload_in_region).
inline constexpr std::uint32_t kTopicFlagPayloadInRegion = 2;
static_assert(std::is_standard_layout_v<TopicControl>);
static_assert(offsetof(TopicControl, flags) == 320);
static_assert(offsetof(TopicControl, pool_count) == 324);
static_assert(offsetof(TopicControl, pool_bytes) == 336);
static_assert(offsetof(TopicControl, type_id) == 256);
static_assert(offsetof(TopicControl, max_message_size) == 304);
static_assert(offsetof(TopicControl, tail) == 448);
static_assert(offsetof(TopicControl, data_futex) == 512);
static_assert(offsetof(TopicControl, lap_futex) == 520);
static_assert(offsetof(TopicControl, lap_waiters) == 524);
static_assert(offsetof(TopicControl, space_futex) == 576);
static_assert(sizeof(TopicControl) == 640);
static_assert(alignof(TopicControl) == kCacheLine);

// One size class, the same in every pool. Written once at creation.
struct SizeClassEntry {
  std::uint64_t chunk_size;        // usable payload bytes per chunk
  std::uint64_t payload_stride;    // distance between two chunks' payloads
  std::uint64_t payload_offset;    // of the class's first chunk, from the pool's start (page-aligned)
  std::uint32_t first_chunk;       // index of the class's first chunk within a pool
  std::uint32_t chunk_count;
  std::uint8_t reserved[kCacheLine - 32];
};
static_assert(std::is_standard_layout_v<SizeClassEntry>);
static_assert(sizeof(SizeClassEntry) == kCacheLine);
static_assert(offsetof(SizeClassEntry, chunk_count) == 28);

// Free chunks of one size class of one pool. `head` packs {ABA tag:32, chunk index:32}; the
// tag changes on every successful push/pop so a stale CAS cannot succeed. Pushed by whoever
// drops a chunk's last reference; popped only by the pool's owner.
// Statistics (external pools only, where the pool's owner is the only popper): `pops` counts
// pops since the pool was initialised and `high_water` the most chunks of the class out of the
// list at once, both written by the owner right after its pop's CAS, with relaxed load + store
// (one writer; the CAS already holds the line). As head's tag counts pops plus pushes, chunks
// out = 2 * pops - tag (mod 2^32), exact at each pop, the only moment it can rise. Untrusted:
// readers clamp high_water to the class's chunk count.
struct FreeList {
  std::atomic<std::uint64_t> head;
  std::atomic<std::uint32_t> pops;
  std::atomic<std::uint32_t> high_water;
  std::uint8_t pad[kCacheLine - 16];
};
static_assert(sizeof(FreeList) == kCacheLine);
static_assert(offsetof(FreeList, pops) == 8);
static_assert(offsetof(FreeList, high_water) == 12);

enum : std::uint32_t { kSlotFree = 0, kSlotClaiming = 1, kSlotActive = 2, kSlotReclaiming = 3 };

// Who owns a slot, in a form anyone can check against /proc without trusting the owner's
// pid alone (pids are reused): its start time, and the pid namespace the pid belongs to.
struct OwnerIdentity {
  std::atomic<std::uint64_t> start_time;  // /proc/<pid>/stat field 22, clock ticks since boot
  std::atomic<std::uint64_t> pid_ns;      // inode of /proc/<pid>/ns/pid; 0 = unknown
};
static_assert(sizeof(OwnerIdentity) == 16);

// Where payload pool p lives now. Written only by the owner of publisher slot p (anonymous
// regions), under a sequence lock: `seq` is odd while the fields change, and a reader that
// sees the same even value before and after its reads has a consistent copy.
struct PoolSlot {
  std::atomic<std::uint32_t> seq;
  // Of the memfd now behind the pool; 0 = never created. Each new owner creates a new memfd
  // and bumps it; ChunkHeader::pool_generation says which one a message's payload is in.
  std::atomic<std::uint32_t> generation;
  std::atomic<std::int32_t> owner_pid;   // the process that created that memfd...
  std::atomic<std::int32_t> owner_fd;    // ...and its fd number there: /proc/<pid>/fd/<fd>
  std::atomic<std::uint64_t> inode;      // st_ino of that memfd, checked after opening it
  // 1 once the pool's chunk headers and free lists are built (by its first owner, release).
  std::atomic<std::uint32_t> initialised;
  std::uint32_t reserved0;
  OwnerIdentity owner;                   // of owner_pid, against pid reuse
  std::uint8_t pad[kCacheLine - 48];
};
static_assert(std::is_standard_layout_v<PoolSlot>);
static_assert(sizeof(PoolSlot) == kCacheLine);
static_assert(offsetof(PoolSlot, inode) == 16);
static_assert(offsetof(PoolSlot, initialised) == 24);
static_assert(offsetof(PoolSlot, owner) == 32);

struct PublisherSlot {
  std::atomic<std::uint32_t> state;   // kSlot*
  std::atomic<std::int32_t> pid;      // informational: owner's pid at registration
  // Sequence this publisher has claimed but not yet committed, plus one; 0 = none; ~0 while
  // it is taking one from `tail` (set just before, with the tail RMW's release). Lets a
  // recoverer fill the hole a publisher killed between claim and commit leaves in the ring.
  std::atomic<std::uint64_t> claimed_plus1;
  std::atomic<std::uint64_t> published;   // messages committed (statistics)
  std::atomic<std::uint64_t> generation;  // bumped at each registration
  // Head chunk of the message being committed under claimed_plus1 (its loan records are
  // cleared before the ring slot is written; this keeps it reachable for a recoverer).
  std::atomic<std::uint32_t> claim_chunk;
  // A chunk of its loan row that the publisher only keeps for its next loan (the ring gave it
  // up at its last publish); kNoChunk = none. Tools count it as free. Written by the owner.
  std::atomic<std::uint32_t> kept_chunk;
  OwnerIdentity owner;
  // Odd while the owner holds a counted chunk reference it has not recorded yet (between a
  // pop and its loan-row store, a loan-row clear and the release). See audit_references().
  std::atomic<std::uint64_t> op_seq;
  // Line 1: failure counters (docs/metrics.md), zeroed at registration and written only by
  // the owner on its failure paths, with relaxed load + store (one writer, no locked RMW);
  // read only by tools, so neither the data path nor recoverers ever pull this line.
  alignas(kCacheLine) std::atomic<std::uint64_t> refused;  // fail_publish: subscriber queue full
  std::atomic<std::uint64_t> timed_out;              // block: gave up after the block timeout
  std::atomic<std::uint64_t> loan_pool_exhausted;    // loans failing: no free chunk big enough
  std::atomic<std::uint64_t> loan_too_many_loans;    // loans failing: loan row full
  std::atomic<std::uint64_t> loan_too_large;         // loans failing: above every size class
  // Payload bytes committed (every segment's used bytes), for bandwidth. The one counter of
  // this line written on every publish: the line stays in the owner's cache, as no other
  // party writes it or reads it on the data path.
  std::atomic<std::uint64_t> published_bytes;
  std::uint8_t pad1[kCacheLine - 48];
};
static_assert(std::is_standard_layout_v<PublisherSlot>);
static_assert(sizeof(PublisherSlot) == 2 * kCacheLine);
static_assert(alignof(PublisherSlot) == kCacheLine);
static_assert(offsetof(PublisherSlot, published) == 16);
static_assert(offsetof(PublisherSlot, refused) == kCacheLine);
static_assert(offsetof(PublisherSlot, timed_out) == kCacheLine + 8);
static_assert(offsetof(PublisherSlot, loan_pool_exhausted) == kCacheLine + 16);
static_assert(offsetof(PublisherSlot, loan_too_many_loans) == kCacheLine + 24);
static_assert(offsetof(PublisherSlot, loan_too_large) == kCacheLine + 32);
static_assert(offsetof(PublisherSlot, published_bytes) == kCacheLine + 40);
static_assert(offsetof(PublisherSlot, claimed_plus1) == 8);
static_assert(offsetof(PublisherSlot, claim_chunk) == 32);
static_assert(offsetof(PublisherSlot, kept_chunk) == 36);
static_assert(offsetof(PublisherSlot, owner) == 40);
static_assert(offsetof(PublisherSlot, op_seq) == 56);

// Line 0 changes only at registration, so block-policy publishers that read `state` on every
// publish keep it cached; line 1 holds everything the owner writes on every take.
struct SubscriberSlot {
  std::atomic<std::uint32_t> state;   // kSlot*
  std::atomic<std::int32_t> pid;
  std::atomic<std::uint64_t> generation;
  OwnerIdentity owner;
  std::uint8_t pad0[kCacheLine - 32];
  // Next sequence this subscriber will take. Written by its owner on every take (release: the
  // publisher that reads it may then reuse the ring slot), read by block-policy publishers.
  alignas(kCacheLine) std::atomic<std::uint64_t> cursor;
  std::atomic<std::uint64_t> taken;
  std::atomic<std::uint64_t> lost;    // messages overwritten before this subscriber took them
  // Odd while the owner holds a chunk reference it has not recorded in its hold row yet.
  std::atomic<std::uint64_t> op_seq;
  // The same for the owner's other threads (a sample released on another thread than the
  // one that takes, ForeignUnrecordedWindow): low 32 bits count open windows, high 32 bits
  // count openings, both by atomic read-modify-writes since such windows may overlap.
  std::atomic<std::uint64_t> foreign_windows;
  // Taken messages that failed validation (typed subscribers), on the line the owner writes
  // on every take anyway; relaxed load + store by the owner only. docs/metrics.md.
  std::atomic<std::uint64_t> malformed;
  std::uint8_t pad1[kCacheLine - 48];
};
static_assert(std::is_standard_layout_v<SubscriberSlot>);
static_assert(sizeof(SubscriberSlot) == 2 * kCacheLine);
static_assert(offsetof(SubscriberSlot, generation) == 8);
static_assert(offsetof(SubscriberSlot, owner) == 16);
static_assert(offsetof(SubscriberSlot, cursor) == kCacheLine);
static_assert(offsetof(SubscriberSlot, lost) == kCacheLine + 16);
static_assert(offsetof(SubscriberSlot, op_seq) == kCacheLine + 24);
static_assert(offsetof(SubscriberSlot, foreign_windows) == kCacheLine + 32);
static_assert(offsetof(SubscriberSlot, taken) == kCacheLine + 8);
static_assert(offsetof(SubscriberSlot, malformed) == kCacheLine + 40);

// One slot per cache line. Packed four to a line, a subscriber that keeps up reads slot s
// while the publisher writes slot s+1 of the same line, and the line crosses between their
// cores on every message: padding raised 64 B throughput by 28 % (bench/NOTES.md).
struct RingSlot {
  // sequence+1 of the message in this slot, 0 = never written. Stored last with release, by
  // the slot's single writer of the moment (see the protocol summary).
  std::atomic<std::uint64_t> commit;
  std::atomic<std::uint32_t> chunk;   // head chunk of the message; kNoChunk = tombstone
  // Copies of the head chunk's ChunkHeader::pool_generation and used_bytes, written with the
  // chunk index, so that a pinned take need not touch the header's line (see the summary).
  std::atomic<std::uint32_t> pool_generation;
  std::atomic<std::uint64_t> used_bytes;
  // Drop-oldest only, for pinned takes: sequence+1 of the message whose fields (the three
  // above) the slot's writer last began to write, stored before them. Above the commit word
  // while a rewrite is in progress. A subscriber that finds it above its own sequence+1 after
  // reading the fields (and a fence) may have read another message's fields.
  std::atomic<std::uint64_t> writing;
  std::uint8_t pad[kCacheLine - 32];
};
static_assert(std::is_standard_layout_v<RingSlot>);
static_assert(sizeof(RingSlot) == kCacheLine);
static_assert(offsetof(RingSlot, chunk) == 8);
static_assert(offsetof(RingSlot, pool_generation) == 12);
static_assert(offsetof(RingSlot, used_bytes) == 16);
static_assert(offsetof(RingSlot, writing) == 24);

enum : std::uint32_t { kChunkFlagTyped = 1 };

// Chunk header, kept apart from payload so that payloads can be page-aligned (copy-on-write
// views of a payload then copy only the payload's own pages).
struct ChunkHeader {
  // 0 = free; kRingRef | count of other references. See the protocol summary above.
  std::atomic<std::uint32_t> refs;
  // Free-list link, meaningful only while the chunk is on its class's free list.
  std::atomic<std::uint32_t> next_free;
  // Message sequence while published; kNoSequence while loaned. A subscriber that raced a
  // reuse detects it here after taking its reference.
  std::atomic<std::uint64_t> sequence;
  // Bytes of this chunk's payload the message uses (segment size for Cap'n Proto messages).
  std::atomic<std::uint64_t> used_bytes;
  // High-water mark of bytes ever written in this chunk since it was last zeroed. Publisher-
  // private while loaned; lets a typed loan zero only what an earlier message dirtied.
  std::atomic<std::uint64_t> dirty_bytes;
  std::atomic<std::uint32_t> next_segment;   // next chunk of the same message, kNoChunk = last
  std::atomic<std::uint32_t> segment_count;  // on the head chunk: chunks in the message
  std::atomic<std::uint32_t> flags;          // kChunkFlag*
  std::atomic<std::uint32_t> publisher;      // slot index of the publisher
  std::uint32_t size_class;                  // immutable
  // PoolSlot::generation of the memfd the payload is in; set at loan by the pool's owner.
  std::atomic<std::uint32_t> pool_generation;
  std::atomic<std::uint64_t> publish_ns;     // CLOCK_MONOTONIC at publish
};
static_assert(std::is_standard_layout_v<ChunkHeader>);
static_assert(sizeof(ChunkHeader) == kCacheLine);
static_assert(offsetof(ChunkHeader, sequence) == 8);
static_assert(offsetof(ChunkHeader, next_segment) == 32);
static_assert(offsetof(ChunkHeader, pool_generation) == 52);
static_assert(offsetof(ChunkHeader, publish_ns) == 56);

// Every atomic in shared memory must be lock-free, or another process could see a lock the
// library keeps in this process only.
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);
static_assert(std::atomic<std::int32_t>::is_always_lock_free);

constexpr std::uint64_t round_up(std::uint64_t v, std::uint64_t a) { return (v + a - 1) / a * a; }

}  // namespace shmbus::detail
