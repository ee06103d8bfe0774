// On-disk layout of a durable log segment (docs/durable.md has the picture). Every field lives
// in a file that other processes map, so everything is standard-layout, fixed-width,
// offset-only and pinned by static_asserts. Bump kSegmentLayoutVersion on ANY change below.
//
//   offset 0            SegmentHeader (one page): identity (immutable once the file has its
//                       name), then the append state and the readers' wake word, each on its
//                       own cache line
//   index_offset        IndexEntry[index_capacity]: one entry for the first record starting in
//                       each kIndexStride bytes of data, so a lookup walks at most that much
//   data_offset         records, 8-aligned: RecordHeader, payload, padding
//   segment_size        end of file
//
// Protocol (cite as "durable layout rule N"):
//   1. Claims. A claimant takes append_lock (CAS 0 -> its lock word, acquire), writes the record
//      header's length, sequence, time and claimant with plain stores (commit stays 0: the file
//      was zero when reserved, and a record is claimed once), adds an index entry if the record
//      starts a new stride (entry first, index_count after, release), stores write_offset past
//      the record and next_sequence with release, and releases the lock (store 0, release).
//      So every record below write_offset has a valid length: the log is always walkable.
//      An exclusive appender (durable/appenders_lock.hpp: alone on the log) keeps the lock from
//      its first claim in a segment to its roll or its end, so its claims skip the CAS and the
//      release; its lock word stays in the file meanwhile, and a kill leaves it for takeover.
//   2. Commit. The claimant builds the payload, then CASes commit 0 -> kCommitted (seq_cst:
//      it pairs with the reader's sleepers increment, and with a tombstoning reader's CAS).
//   3. Tombstones. A record below write_offset whose commit is 0 and whose claimant is dead
//      (pid and start time from /proc) is CASed 0 -> kTombstone by whoever meets it; a dropped
//      loan does the same. Readers skip tombstones; their sequence is spent.
//   4. Roll. The lock holder whose record does not fit creates the next segment (named by
//      next_sequence; link() makes it appear whole, and finds a dead roller's file), then
//      writes an end record (commit = kEndOfSegment, release) at write_offset and stores
//      sealed = 1 (release). A lock taken over from a dead owner first finishes such a roll.
//   5. Times are non-decreasing: a claim stamps max(CLOCK_REALTIME, last_time_ns) (the clock
//      may be read through the TSC: durable/stamp_clock.hpp).
//   6. Waking. A reader that would sleep increments sleepers (seq_cst), re-reads the commit
//      word, then futex-waits on wake_word; a committer (or roller) after its seq_cst CAS loads
//      sleepers and, when non-zero, bumps wake_word and wakes all.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace shmbus::detail::durable {

inline constexpr char kSegmentMagic[8] = {'S', 'H', 'M', 'B', 'L', 'O', 'G', '\0'};
inline constexpr std::uint32_t kSegmentLayoutVersion = 1;
inline constexpr std::uint64_t kSegmentHeaderSize = 4096;
inline constexpr std::uint64_t kIndexStride = 4096;
inline constexpr std::uint64_t kRecordAlign = 8;
inline constexpr std::uint64_t kCacheLine = 64;
inline constexpr std::size_t kMaxTopicName = 127;
inline constexpr std::uint64_t kMinSegmentSize = 64 * 1024;
inline constexpr std::uint64_t kMaxSegmentSize = 1ull << 40;
// ABI facts that make two builds incompatible: pointer width and little-endian byte order.
inline constexpr std::uint32_t kDurableAbiWord = (sizeof(void*) << 8) | (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? 1 : 2);

enum RecordCommit : std::uint32_t {
  kClaimed = 0,       // claimed (below write_offset) or free space (at or above it)
  kCommitted = 1,     // a message: readable
  kTombstone = 2,     // spent sequence: the claimant died or dropped its loan
  kEndOfSegment = 3,  // no more records here: go on in the segment named by the sequence
};

struct RecordHeader {
  std::atomic<std::uint32_t> commit;  // RecordCommit; see rules 2 and 3
  std::uint32_t length;               // payload bytes
  std::uint64_t sequence;
  std::uint64_t time_ns;              // CLOCK_REALTIME at claim, non-decreasing (rule 5)
  std::int32_t claimant_pid;
  std::uint32_t claimant_start;       // low 32 bits of /proc/<pid>/stat start time
};
static_assert(std::is_standard_layout_v<RecordHeader>);
static_assert(sizeof(RecordHeader) == 32);
static_assert(offsetof(RecordHeader, length) == 4);
static_assert(offsetof(RecordHeader, sequence) == 8);
static_assert(offsetof(RecordHeader, time_ns) == 16);
static_assert(offsetof(RecordHeader, claimant_pid) == 24);
static_assert(offsetof(RecordHeader, claimant_start) == 28);  // the appender stores both as one word
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

inline constexpr std::uint64_t record_stride(std::uint64_t payload) noexcept {
  return (sizeof(RecordHeader) + payload + kRecordAlign - 1) & ~(kRecordAlign - 1);
}

struct IndexEntry {
  std::uint64_t offset;    // of a record's header
  std::uint64_t sequence;
  std::uint64_t time_ns;
};
static_assert(sizeof(IndexEntry) == 24);

struct SegmentHeader {
  // Identity: written by the creator before the file gets its name, never changed after.
  char magic[8];
  std::uint32_t layout_version;
  std::uint32_t abi_word;
  std::uint64_t segment_size;     // the file's size
  std::uint64_t first_sequence;   // also the file's name
  std::uint64_t first_time_ns;    // no record in it is stamped earlier
  std::uint64_t type_id;
  std::uint64_t index_offset;
  std::uint64_t index_capacity;   // entries
  std::uint64_t data_offset;
  char topic[kMaxTopicName + 1];  // NUL-terminated
  std::uint8_t pad0[256 - 72 - (kMaxTopicName + 1)];
  // Append state (offset 256): written under append_lock (rule 1).
  std::atomic<std::uint64_t> append_lock;   // pid << 32 | start-time low bits; 0 = free
  std::atomic<std::uint64_t> write_offset;  // end of the claimed records
  std::atomic<std::uint64_t> next_sequence;
  std::atomic<std::uint64_t> last_time_ns;
  std::atomic<std::uint64_t> index_count;
  std::atomic<std::uint32_t> sealed;        // 1 once the end record is written (rule 4)
  std::uint32_t pad1;
  std::uint8_t pad2[kCacheLine - 48];
  // Readers' wake (offset 320), apart from the appenders' line.
  std::atomic<std::uint32_t> wake_word;
  std::atomic<std::uint32_t> sleepers;
  std::uint8_t pad3[kSegmentHeaderSize - 320 - 8];
};
static_assert(std::is_standard_layout_v<SegmentHeader>);
static_assert(sizeof(SegmentHeader) == kSegmentHeaderSize);
static_assert(offsetof(SegmentHeader, layout_version) == 8);
static_assert(offsetof(SegmentHeader, segment_size) == 16);
static_assert(offsetof(SegmentHeader, first_sequence) == 24);
static_assert(offsetof(SegmentHeader, data_offset) == 64);
static_assert(offsetof(SegmentHeader, topic) == 72);
static_assert(offsetof(SegmentHeader, append_lock) == 256);
static_assert(offsetof(SegmentHeader, sealed) == 296);
static_assert(offsetof(SegmentHeader, wake_word) == 320);

// A named reader's position: directory/topic/readers/<name>.pos, one page, mapped shared.
inline constexpr char kPositionMagic[8] = {'S', 'H', 'M', 'B', 'P', 'O', 'S', '\0'};
inline constexpr std::uint32_t kPositionLayoutVersion = 1;
struct PositionFile {
  char magic[8];
  std::uint32_t layout_version;
  std::uint32_t abi_word;
  std::atomic<std::uint64_t> next_sequence;  // release by its reader; survives its kill -9
};
static_assert(sizeof(PositionFile) == 24);
static_assert(offsetof(PositionFile, next_sequence) == 16);

}  // namespace shmbus::detail::durable
