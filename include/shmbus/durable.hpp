// Durable topics: a memory-mapped commit log on disk (docs/durable.md).
//
// A durable topic keeps every message in segment files, `<directory>/<topic>/<first
// sequence, 20 digits>.log`, each reserved in full with posix_fallocate when it is created and
// mapped MAP_SHARED. Appending is zero copy: loan() claims a record in the mapped segment, the
// caller builds the message there, publish() commits it with one release store. Readers read
// records in place, from the oldest retained message, from a sequence, or from the first
// message at or after a CLOCK_REALTIME time, and then go on with live messages.
//
// Crash safety: a message whose publish() returned is in the page cache and survives the kill -9
// of every process; FlushPolicy extends that to power loss. A publisher killed between loan()
// and publish() leaves a claimed record that the next reader to meet it turns into a tombstone
// (skipped, never readable) as soon as /proc says the claimant is dead.
//
// Threads: a DurableAppender or DurableReader belongs to one thread at a time. Several
// appenders (threads or processes) may append to one log at once; each claim takes the log's
// append lock for a few stores (a robust lock: its owner's death is detected through its pid
// and start time, and the lock taken over).
//
// Errors: opening throws shmbus::Error naming the directory or file and what was wrong
// (not_a_region, unknown_layout_version, region_too_short, region_corrupt, invalid_config,
// no_space, system_error). Appending and reading return Errc: no_space when a new segment
// cannot be reserved (last_error() names the directory), message_too_large, region_lost when a
// segment file was truncated under us (the SIGBUS guard caught it; last_error() names the file;
// the appender's next loan and the reader's next call go on in the segment after it, the reader
// counting the messages skipped in lost()), lost_history when
// retention removed messages a reader had not read yet (lost() counts them; the next call goes
// on from the oldest retained message), no_data / timeout when nothing new is there.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "shmbus/error.hpp"

namespace shmbus {

namespace detail {
class DurableSegment;  // bus/durable/segment.hpp
class StampClock;      // bus/durable/stamp_clock.hpp
class AppendersLock;   // bus/durable/appenders_lock.hpp
struct SpareSegment;   // bus/durable/segment.hpp
}

// When an appender pushes its writes past the page cache to the disk. What each level
// guarantees is in docs/durable.md, "Flush policy".
struct FlushPolicy {
  enum class Mode : std::uint8_t {
    none,          // page cache only: survives any process crash, not a power loss
    every_n,       // fdatasync after every `every_n` messages of this appender
    interval,      // fdatasync at the first publish at least `interval` after the last one
    each_publish,  // msync(MS_SYNC) of the record's pages before publish() returns
  };
  Mode mode = Mode::none;
  std::uint32_t every_n = 0;
  std::chrono::milliseconds interval{0};
};

struct DurableConfig {
  std::filesystem::path directory;  // the log directory; the topic's segments go in directory/topic
  std::string topic;                // [A-Za-z0-9._-], 1..127 characters, not "." or ".."
  std::uint64_t segment_size = 64ull << 20;  // bytes per segment file, 64 KiB .. 1 TiB
  std::uint64_t type_id = 0;        // recorded in every segment; 0 = raw bytes
  std::string schema;               // recorded once in directory/topic/schema (any bytes)
  FlushPolicy flush;
  // Bytes of the segment kept populated ahead of the write offset (MADV_POPULATE_WRITE, in
  // 256 KiB steps from loan()), so that writing a message takes no page fault. Costs up to this
  // much page cache per appender beyond what is written; 0 = off (each new page faults).
  // docs/durable.md, "Pre-faulting".
  std::uint64_t prefault_window = 2ull << 20;
  // The log's only appender (docs/durable.md, "Exclusive appender"; Aeron's
  // ExclusivePublication): it holds the log's appenders.lock exclusively (an flock, let go by
  // the kernel when its process dies) and keeps the segment's append lock from its first claim
  // there to its roll, so that each claim is plain loads and stores, no locked instruction.
  // While it lives, opening another appender of the log (exclusive or not) throws
  // Error(too_many_publishers) naming its pid; it is refused the same way while others are open.
  bool exclusive_appender = false;
};

class DurableAppender;

// A record claimed in the log: write the payload through data(), then publish it. Destroying an
// unpublished loan turns its record into a tombstone. Must not outlive its appender.
class DurableLoan {
 public:
  DurableLoan() noexcept = default;
  DurableLoan(DurableLoan&& other) noexcept;
  DurableLoan& operator=(DurableLoan&& other) noexcept;
  ~DurableLoan();

  std::span<std::byte> data() const noexcept { return {data_, size_}; }
  std::uint64_t sequence() const noexcept { return sequence_; }
  std::uint64_t time_ns() const noexcept { return time_ns_; }  // CLOCK_REALTIME, non-decreasing
  bool valid() const noexcept { return owner_ != nullptr; }

 private:
  friend class DurableAppender;
  DurableLoan(DurableAppender* owner, detail::DurableSegment* segment, std::byte* data, std::size_t size,
              std::uint64_t record_offset, std::uint64_t sequence, std::uint64_t time_ns) noexcept
      : owner_(owner), segment_(segment), data_(data), size_(size), record_offset_(record_offset),
        sequence_(sequence), time_ns_(time_ns) {}
  DurableAppender* owner_ = nullptr;
  detail::DurableSegment* segment_ = nullptr;  // the appender keeps it mapped while loaned
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
  std::uint64_t record_offset_ = 0;
  std::uint64_t sequence_ = 0;
  std::uint64_t time_ns_ = 0;
};

// Appends to one durable log. Creates the topic directory and its first segment if missing.
class DurableAppender {
 public:
  explicit DurableAppender(const DurableConfig& config);  // throws Error
  ~DurableAppender();
  DurableAppender(const DurableAppender&) = delete;
  DurableAppender& operator=(const DurableAppender&) = delete;

  // Claims a record of exactly `size` payload bytes (8-aligned address). Rolls to a new
  // segment when the current one is full: no_space if it cannot be reserved.
  Result<DurableLoan> loan(std::size_t size) noexcept;
  // Commits the record: readers see it from now on. misuse for a loan of another appender or
  // one already published or tombstoned (e.g. judged dead by a reader in another pid namespace).
  Status publish(DurableLoan& loan) noexcept;
  // loan + copy + publish, for tests and tools.
  Status append(std::span<const std::byte> bytes) noexcept;

  // Populates the next `bytes` of the current segment now, from its write offset (at most to
  // its end), e.g. before a latency-critical burst. system_error (last_error() says why) when
  // the kernel refuses.
  Status prefault(std::uint64_t bytes) noexcept;

  // The largest payload one record can hold with this segment size.
  std::size_t max_message_size() const noexcept;
  // Why the last call failed, in one line naming the directory or file; empty after success.
  const std::string& last_error() const noexcept { return last_error_; }
  const std::filesystem::path& log_path() const noexcept { return log_path_; }
  // Segments this appender left because they were truncated under it (docs/durable.md,
  // "Truncation"): the publish() that met the truncation returned region_lost, the next loan()
  // went on in a new segment numbered past every sequence the lost one may have held.
  std::uint64_t segments_lost() const noexcept { return segments_lost_; }

 private:
  friend class DurableLoan;
  void abandon(DurableLoan& loan) noexcept;
  Status move_on() noexcept;
  Status leave_lost_segment() noexcept;
  std::shared_ptr<detail::DurableSegment> segment_after_damaged_tail(std::uint64_t first);
  std::shared_ptr<detail::DurableSegment> open_tail() const;
  Status roll() noexcept;
  void flush_after(const detail::DurableSegment& seg, const DurableLoan& loan) noexcept;
  void prefault_step(const detail::DurableSegment& seg, std::uint64_t want) noexcept;
  void loan_returned(detail::DurableSegment* seg) noexcept;
  void drop_left_segment(detail::DurableSegment* seg) noexcept;
  void spare_step(const detail::DurableSegment& seg, std::uint64_t end) noexcept;
  void upkeep(const detail::DurableSegment& seg, std::uint64_t end) noexcept;
  void retire_step(std::uint64_t end) noexcept;
  void retire(std::shared_ptr<detail::DurableSegment> left, std::uint64_t touched_end) noexcept;

  void let_go_append_lock() noexcept;

  DurableConfig config_;
  std::filesystem::path log_path_;
  std::unique_ptr<detail::AppendersLock> appenders_lock_;  // shared, or exclusive (exclusive_appender)
  // The segment whose append lock an exclusive appender keeps between claims (null otherwise).
  const detail::DurableSegment* held_ = nullptr;
  std::shared_ptr<detail::DurableSegment> segment_;
  // Segments left behind with loans still out (plain counts, no atomic reference count per
  // message: an appender and its loans belong to one thread at a time).
  std::vector<std::shared_ptr<detail::DurableSegment>> loaned_segments_;
  std::uint64_t lock_word_ = 0;  // our pid and start time, as the append lock stores them
  std::uint64_t claimant_word_ = 0;  // the same as a record's claimant_pid and claimant_start
  std::uint32_t unflushed_ = 0;
  std::uint64_t last_flush_ns_ = 0;
  const detail::DurableSegment* prefaulted_segment_ = nullptr;  // what prefaulted_to_ is about
  std::uint64_t prefaulted_to_ = 0;  // offset in it up to which pages are populated
  bool prefault_supported_ = true;   // false once the kernel said EINVAL
  std::uint64_t next_sequence_seen_ = 0;  // past our newest loan's sequence
  std::uint64_t last_time_seen_ = 0;      // our newest loan's time
  std::uint64_t segments_lost_ = 0;
  std::unique_ptr<detail::StampClock> clock_;  // record stamps (rule 5)
  // The next segment's file, reserved in steps while the second half of the current one is
  // written, so that neither a roll nor any one loan waits for a whole posix_fallocate
  // (docs/durable.md, "Roll").
  std::unique_ptr<detail::SpareSegment> spare_;
  const detail::DurableSegment* spare_for_ = nullptr;  // the segment spare_next_at_ is about
  std::uint64_t spare_next_at_ = 0;  // offset in it past which the next step is taken
  // The segment left at the last roll, unmapped in steps (docs/durable.md, "Roll"): its pages
  // below retired_to_ are released; retire_next_at_ is the offset in the current segment past
  // which the next step is taken. upkeep_at_ is the nearer of it and spare_next_at_.
  std::shared_ptr<detail::DurableSegment> retiring_;
  std::uint64_t retired_to_ = 0;
  std::uint64_t retire_end_ = 0;
  std::uint64_t retire_next_at_ = UINT64_MAX;
  std::uint64_t upkeep_at_ = 0;
  std::string last_error_;
};

// A message read in place: data() points into the mapped segment and stays valid until the
// reader's next call of next(), next_wait() or seek, or its destruction.
struct DurableSample {
  std::span<const std::byte> data;
  std::uint64_t sequence = 0;
  std::uint64_t time_ns = 0;
};

// Reads one durable log in order. No daemon needed. A reader may tombstone a dead claimant's
// record, so it maps segments writable.
class DurableReader {
 public:
  // Position at the oldest retained message.
  static DurableReader oldest(const std::filesystem::path& directory, const std::string& topic);
  // Position at `sequence` (older than the oldest retained: lost_history on the first next()).
  static DurableReader at_sequence(const std::filesystem::path& directory, const std::string& topic,
                                   std::uint64_t sequence);
  // Position at the first message stamped at or after `time_ns` (CLOCK_REALTIME); at the end of
  // the log when there is none yet.
  static DurableReader at_time(const std::filesystem::path& directory, const std::string& topic,
                               std::uint64_t time_ns);
  // A reader that remembers its position under `name` (directory/topic/readers/name.pos) and
  // reopens there; a new name starts at the oldest retained message. The position stored is
  // past every sample the reader returned before its latest next(): a reader killed while it
  // handles a sample gets that sample again (at least once).
  static DurableReader named(const std::filesystem::path& directory, const std::string& topic,
                             const std::string& name);

  DurableReader(DurableReader&&) noexcept;
  DurableReader& operator=(DurableReader&&) noexcept;
  ~DurableReader();

  // The next message, or no_data at the end of the log (or before a record still being
  // written), lost_history, region_lost, region_corrupt.
  Result<DurableSample> next() noexcept;
  // Like next(), but sleeps (futex) up to `timeout` for a message; timeout when none came.
  Result<DurableSample> next_wait(std::chrono::nanoseconds timeout) noexcept;

  std::uint64_t position() const noexcept;  // sequence of the message next() reads next
  std::uint64_t lost() const noexcept;      // messages skipped by lost_history, in total
  const std::string& last_error() const noexcept;

 private:
  struct State;
  explicit DurableReader(std::unique_ptr<State> state) noexcept;
  std::unique_ptr<State> s_;
};

// One segment file, as list_segments() finds it.
struct DurableSegmentInfo {
  std::filesystem::path path;
  std::uint64_t first_sequence = 0;
  std::uint64_t next_sequence = 0;  // first sequence not in it (yet)
  std::uint64_t first_time_ns = 0;
  std::uint64_t last_time_ns = 0;   // of its newest claimed record; first_time_ns when empty
  std::uint64_t size_bytes = 0;
  std::uint64_t used_bytes = 0;     // header, index and records so far
  std::uint64_t type_id = 0;
  bool sealed = false;              // full: the log went on in the next segment
  // Empty for a readable segment. Else why it cannot be read, in one line naming the file
  // (truncated, foreign, newer layout, inconsistent header); then size_bytes is the file's
  // size on disk, used_bytes 0, next_sequence the next segment's first (its messages are lost;
  // first_sequence itself when it is the newest), and the times are bounds from the nearest
  // readable neighbours (first_time_ns: the previous one's last, last_time_ns: the next one's
  // first; 0 when there is none).
  std::string damage;
};

// The topic's segments, oldest first. A damaged segment (foreign, truncated, newer layout) is
// listed with `damage` saying what is wrong, between the readable others.
std::vector<DurableSegmentInfo> list_durable_segments(const std::filesystem::path& directory,
                                                      const std::string& topic);
// The schema bytes recorded when the log was created (empty if none).
std::string durable_schema(const std::filesystem::path& directory, const std::string& topic);

// Retention: 0 in a field means no limit by it. The newest segment is never removed. A damaged
// segment is removed in its turn like any other (by age: once the next segment's first time is
// older than max_age).
struct RetentionPolicy {
  std::chrono::nanoseconds max_age{0};  // remove a segment whose newest message is older
  std::uint64_t max_bytes = 0;          // remove oldest segments while the total is larger
  std::uint64_t max_segments = 0;       // remove oldest segments while there are more
};
struct RetentionReport {
  std::uint64_t segments_removed = 0;
  std::uint64_t bytes_removed = 0;
  std::uint64_t messages_removed = 0;
};
// Unlinks the segments the policy no longer keeps, oldest first. Safe under live readers and
// appenders: a mapping keeps its inode; a reader that needed a removed segment gets
// lost_history. `now_ns` is CLOCK_REALTIME (0 = now).
RetentionReport apply_durable_retention(const std::filesystem::path& directory, const std::string& topic,
                                        const RetentionPolicy& policy, std::uint64_t now_ns = 0);

}  // namespace shmbus
