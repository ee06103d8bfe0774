// One mapped segment file of a durable log: creation (reserved in full, appearing whole under
// its name), opening with validation, and the SIGBUS guard's registration. Shared by the
// appender, the reader and the tools; see layout.hpp for the format.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "durable/layout.hpp"
#include "shmbus/error.hpp"

namespace shmbus::detail {

// A segment file reserved ahead of its roll, under a temporary name (leftovers.hpp removes it
// if its creator dies): the roll then only writes its header and links it into place.
struct SpareSegment {
  SpareSegment() = default;
  SpareSegment(const SpareSegment&) = delete;
  SpareSegment& operator=(const SpareSegment&) = delete;
  ~SpareSegment();  // closes and unlinks what was not used
  // Reserves up to `step` more bytes (posix_fallocate); 0 on success, else the error number.
  int grow(std::uint64_t step) noexcept;
  bool complete() const noexcept { return reserved >= size; }
  int fd = -1;
  std::filesystem::path tmp;
  std::uint64_t size = 0;
  std::uint64_t reserved = 0;  // bytes reserved so far, from the start
};

class DurableSegment {
 public:
  // Opens and validates an existing segment; throws Error naming the file: not_a_region,
  // unknown_layout_version, abi_mismatch, region_too_short (truncated), region_corrupt.
  static std::shared_ptr<DurableSegment> open(const std::filesystem::path& file);
  // Creates the segment `first_sequence` in `log_path`, or opens it when another process made
  // it first. no_space (naming the directory) when it cannot be reserved.
  static std::shared_ptr<DurableSegment> create(const std::filesystem::path& log_path, const std::string& topic,
                                                std::uint64_t segment_size, std::uint64_t type_id,
                                                std::uint64_t first_sequence, std::uint64_t first_time_ns,
                                                std::unique_ptr<SpareSegment> spare = nullptr);
  // A spare of `segment_size` bytes in `log_path`, of which `reserve_now` are reserved at once
  // (no_space, naming the directory); grow() reserves the rest.
  static std::unique_ptr<SpareSegment> reserve_spare(const std::filesystem::path& log_path, std::uint64_t segment_size,
                                                     std::uint64_t reserve_now);
  ~DurableSegment();
  DurableSegment(const DurableSegment&) = delete;
  DurableSegment& operator=(const DurableSegment&) = delete;

  durable::SegmentHeader& header() const noexcept { return *reinterpret_cast<durable::SegmentHeader*>(base_); }
  std::byte* base() const noexcept { return base_; }
  std::uint64_t size() const noexcept { return size_; }
  int fd() const noexcept { return fd_; }
  // From the header when the file was opened: still known after the mapping is lost.
  std::uint64_t first_sequence() const noexcept { return first_sequence_; }
  const std::filesystem::path& path() const noexcept { return path_; }
  durable::RecordHeader* record_at(std::uint64_t offset) const noexcept {
    return reinterpret_cast<durable::RecordHeader*>(base_ + offset);
  }
  durable::IndexEntry* index() const noexcept {
    return reinterpret_cast<durable::IndexEntry*>(base_ + durable::kSegmentHeaderSize);
  }
  // True once the SIGBUS guard caught a fault in this mapping (the file was truncated).
  bool lost() const noexcept { return lost_.load(std::memory_order_acquire) != 0; }  // pairs with the guard's release
  // True when the file is now shorter than the segment (one fstat: for slow paths only).
  bool truncated_on_disk() const noexcept;
  // The next sequence the file's own header records (pread, never through the mapping, so it
  // works after the mapping was lost), or 0 when the header is no longer in the file.
  std::uint64_t next_sequence_on_disk() const noexcept;
  // The largest payload one record can hold.
  std::uint64_t max_payload() const noexcept;
  std::uint64_t max_payload_bytes() const noexcept { return max_payload_; }  // the same, kept from open()
  // The first record offset whose index entry says sequence <= `sequence` (or time < `time_ns`).
  std::uint64_t index_floor_by_sequence(std::uint64_t sequence) const noexcept;
  std::uint64_t index_floor_by_time(std::uint64_t time_ns) const noexcept;

  // Loans of the appender that opened this object still out in it. That appender's thread only:
  // a plain count.
  std::uint32_t loans_out = 0;
  // Maps and dirties the pages of [from, to) (MADV_POPULATE_WRITE) without changing a byte, so
  // that writes there take no page fault. 0 on success, else the errno (EINVAL: the kernel is
  // older than 5.14; EFAULT: the file is shorter than the mapping).
  int populate_write(std::uint64_t from, std::uint64_t to) const noexcept;
  // Drops this process's page-table entries for [from, to) (MADV_DONTNEED: the bytes stay in
  // the file and the page cache), so that unmapping the segment later has little left to do.
  void release_pages(std::uint64_t from, std::uint64_t to) const noexcept;

 private:
  DurableSegment() = default;
  std::filesystem::path path_;
  int fd_ = -1;
  std::byte* base_ = nullptr;
  std::uint64_t size_ = 0;
  std::uint64_t first_sequence_ = 0;
  std::uint64_t max_payload_ = 0;
  std::atomic<std::uint32_t> lost_{0};
};

// <log_path>/<first_sequence as 20 digits>.log
std::filesystem::path durable_segment_path(const std::filesystem::path& log_path, std::uint64_t first_sequence);
// The first sequences of the segment files in `log_path`, ascending (other names ignored).
std::vector<std::uint64_t> durable_segment_firsts(const std::filesystem::path& log_path);
// The first sequence of the segment after the one starting at `first` (0 when none).
std::uint64_t durable_segment_after(const std::filesystem::path& log_path, std::uint64_t first);
// True for the errors DurableSegment::open() throws for a file that is there but unreadable
// (truncated, foreign, newer layout, inconsistent): the damage is that one file's.
bool durable_segment_damaged(Errc code) noexcept;
// Throws Error(invalid_config) unless `name` is 1..127 of [A-Za-z0-9._-] and not "." or "..".
void validate_durable_name(const std::string& what, const std::string& name);
// True when /proc shows no process `pid` started at `start_low` (the low 32 bits).
bool durable_claimant_dead(std::int32_t pid, std::uint32_t start_low) noexcept;
std::uint64_t realtime_ns() noexcept;

}  // namespace shmbus::detail
