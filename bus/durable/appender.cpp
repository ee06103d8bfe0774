// DurableAppender: claims under the log's robust append lock, commits with one CAS
// (durable layout rules 1-6).
#include <fcntl.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "durable/appenders_lock.hpp"
#include "durable/leftovers.hpp"
#include "durable/segment.hpp"
#include "durable/stamp_clock.hpp"
#include "futex.hpp"
#include "prefetch.hpp"
#include "process_identity.hpp"
#include "shmbus/durable.hpp"

namespace shmbus {

using namespace detail::durable;
using detail::DurableSegment;

namespace {

constexpr std::uint64_t kLockGiveUpNs = 10'000'000'000ull;  // a live holder keeps it for a few stores
constexpr std::uint64_t kLivenessCheckNs = 1'000'000;
// One populate call per step: 64 pages, about 0.2 ms at worst here, the longest one loan() waits.
constexpr std::uint64_t kPrefaultStep = 256 * 1024;
// At most this much of the next record's lines is asked for by each claim (see loan()).
constexpr std::uint64_t kPrefetchMax = 4096;

void wake_readers(SegmentHeader& h) noexcept {
  // seq_cst: after our commit (or end record) store, pairs with the sleeper's seq_cst
  // increment before its re-check (rule 6).
  if (h.sleepers.load(std::memory_order_seq_cst) != 0) {
    h.wake_word.fetch_add(1, std::memory_order_release);  // release: the futex word's new value
    detail::futex_wake_all(&h.wake_word);
  }
}

enum class Locked { yes, taken_over, lost, timed_out };

// Takes the append lock; a dead holder's lock is taken over (rule 1).
Locked lock_append(const DurableSegment& seg, std::uint64_t me) noexcept {
  SegmentHeader& h = seg.header();
  std::uint64_t start = 0, next_check = 0;
  for (std::uint32_t spins = 0;; ++spins) {
    std::uint64_t holder = 0;
    // Acquire: pairs with the previous holder's release on unlock; we see its records.
    if (h.append_lock.compare_exchange_weak(holder, me, std::memory_order_acquire, std::memory_order_relaxed)) {
      return Locked::yes;
    }
    if (seg.lost()) return Locked::lost;
    if (spins < 128) { detail::cpu_relax(); continue; }
    sched_yield();
    std::uint64_t now = detail::monotonic_ns();
    if (start == 0) start = now, next_check = now;
    if (holder != 0 && now >= next_check) {
      next_check = now + kLivenessCheckNs;
      // A holder whose segment was truncated under it left the lock held in the file (its own
      // stores after the fault went to the guard's zero pages): the segment is lost to us too.
      if (seg.truncated_on_disk()) return Locked::lost;
      if (detail::durable_claimant_dead(static_cast<std::int32_t>(holder >> 32), static_cast<std::uint32_t>(holder)) &&
          h.append_lock.compare_exchange_strong(holder, me, std::memory_order_acquire, std::memory_order_relaxed)) {
        return Locked::taken_over;  // acquire: as above, from what the dead holder released
      }
    }
    if (now - start > kLockGiveUpNs) return Locked::timed_out;
  }
}

void unlock_append(SegmentHeader& h) noexcept {
  h.append_lock.store(0, std::memory_order_release);  // release: pairs with the next holder's acquire
}

// Writes the end record at write_offset and seals (rule 4). Under the lock.
void seal(SegmentHeader& h, DurableSegment& seg, std::uint64_t next_first) noexcept {
  RecordHeader* end = seg.record_at(h.write_offset.load(std::memory_order_relaxed));
  end->length = 0;
  end->sequence = next_first;
  end->time_ns = h.last_time_ns.load(std::memory_order_relaxed);
  end->claimant_pid = 0;
  // seq_cst: a reader that sees it follows to the next segment; pairs with its acquire load,
  // and with sleepers (rule 6).
  end->commit.store(kEndOfSegment, std::memory_order_seq_cst);
  h.sealed.store(1, std::memory_order_release);  // release: pairs with appenders' acquire check
  wake_readers(h);
}

// After taking the lock over from a dead holder: its claim may have stopped between any two
// stores of rule 1. Everything below write_offset is whole, so re-derive next_sequence and
// index_count from the records there. Returns false when the records are inconsistent.
bool repair_after_takeover(SegmentHeader& h, const DurableSegment& seg, std::uint64_t wo) noexcept {
  std::uint64_t ic = std::min(h.index_count.load(std::memory_order_relaxed), h.index_capacity);
  while (ic > 0 && seg.index()[ic - 1].offset >= wo) --ic;
  h.index_count.store(ic, std::memory_order_release);  // release: as on a claim
  std::uint64_t off = ic > 0 ? seg.index()[ic - 1].offset : h.data_offset;
  std::uint64_t next = h.first_sequence;
  if (ic > 0) next = seg.index()[ic - 1].sequence;
  while (off < wo) {
    const RecordHeader* rec = seg.record_at(off);
    if (rec->sequence != next || off + record_stride(rec->length) > wo) return false;
    off += record_stride(rec->length);
    ++next;
  }
  h.next_sequence.store(next, std::memory_order_release);  // release: as on a claim
  return true;
}

// Called from a catch block: the exception in flight as the appender's last error and code.
Status failure_in_flight(std::string& last_error, const std::filesystem::path& log) noexcept {
  try {
    throw;
  } catch (const Error& e) {
    last_error = e.what();
    return e.code();
  } catch (const std::exception& e) {
    last_error = "durable log " + log.string() + ": " + e.what();
    return Errc::system_error;
  }
}

}  // namespace

// Member by member: a loan is moved into its Result and out again at every loan() (through
// operator=, it cost a self-check and an abandon test each time).
DurableLoan::DurableLoan(DurableLoan&& other) noexcept
    : owner_(std::exchange(other.owner_, nullptr)),
      segment_(std::exchange(other.segment_, nullptr)),
      data_(other.data_),
      size_(other.size_),
      record_offset_(other.record_offset_),
      sequence_(other.sequence_),
      time_ns_(other.time_ns_) {}

DurableLoan& DurableLoan::operator=(DurableLoan&& other) noexcept {
  if (this != &other) {
    if (owner_ != nullptr) owner_->abandon(*this);
    owner_ = std::exchange(other.owner_, nullptr);
    segment_ = std::exchange(other.segment_, nullptr);
    data_ = other.data_;
    size_ = other.size_;
    record_offset_ = other.record_offset_;
    sequence_ = other.sequence_;
    time_ns_ = other.time_ns_;
  }
  return *this;
}

DurableLoan::~DurableLoan() {
  if (owner_ != nullptr) owner_->abandon(*this);
}

DurableAppender::DurableAppender(const DurableConfig& config)
    : config_(config), clock_(std::make_unique<detail::StampClock>()) {
  detail::validate_durable_name("durable topic", config.topic);
  if (config.segment_size < kMinSegmentSize || config.segment_size > kMaxSegmentSize) {
    throw Error(Errc::invalid_config, "durable topic '" + config.topic + "': segment size " +
                                          std::to_string(config.segment_size) + " is outside " +
                                          std::to_string(kMinSegmentSize) + ".." + std::to_string(kMaxSegmentSize));
  }
  if (config.flush.mode == FlushPolicy::Mode::every_n && config.flush.every_n == 0) {
    throw Error(Errc::invalid_config, "durable topic '" + config.topic + "': flush every_n needs every_n > 0");
  }
  log_path_ = config.directory / config.topic;
  std::error_code ec;
  std::filesystem::create_directories(log_path_, ec);
  if (ec) throw Error(Errc::system_error, "durable log " + log_path_.string() + ": " + ec.message());
  appenders_lock_ = std::make_unique<detail::AppendersLock>(log_path_, config.exclusive_appender);
  detail::remove_durable_leftovers(log_path_);  // of creators killed mid-create (leftovers.hpp)
  std::filesystem::path schema = log_path_ / "schema";
  if (!std::filesystem::exists(schema)) {
    std::filesystem::path tmp = log_path_ / (".schema.tmp." + std::to_string(getpid()));
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    bool ok = fd >= 0 && ::write(fd, config.schema.data(), config.schema.size()) ==
                             static_cast<ssize_t>(config.schema.size());
    if (fd >= 0) ::close(fd);
    if (!ok || (::link(tmp.c_str(), schema.c_str()) != 0 && errno != EEXIST)) {
      ::unlink(tmp.c_str());
      throw Error(Errc::system_error, "durable log " + log_path_.string() + ": cannot write its schema file");
    }
    ::unlink(tmp.c_str());
  }
  detail::ProcessIdentity me = detail::current_process();
  lock_word_ = (static_cast<std::uint64_t>(static_cast<std::uint32_t>(me.pid)) << 32) |
               static_cast<std::uint32_t>(me.start_time);
  claimant_word_ = (static_cast<std::uint64_t>(static_cast<std::uint32_t>(me.start_time)) << 32) |
                   static_cast<std::uint32_t>(me.pid);  // RecordHeader's claimant_pid, claimant_start
  std::vector<std::uint64_t> firsts = detail::durable_segment_firsts(log_path_);
  if (firsts.empty()) {
    segment_ = DurableSegment::create(log_path_, config.topic, config.segment_size, config.type_id, 0,
                                      detail::realtime_ns());
  } else {
    try {
      segment_ = open_tail();
    } catch (const Error& e) {
      // Truncated: the log goes on after it. A foreign or newer-layout file is refused.
      if (e.code() != Errc::region_too_short) throw;
      segment_ = segment_after_damaged_tail(firsts.back());
    }
  }
  const SegmentHeader& h = segment_->header();
  if (std::strncmp(h.topic, config.topic.c_str(), kMaxTopicName) != 0 || h.type_id != config.type_id) {
    throw Error(Errc::type_mismatch, "durable log " + log_path_.string() + ": its segments are of topic '" +
                                         std::string(h.topic) + "', type id " + std::to_string(h.type_id) +
                                         "; this appender is for '" + config.topic + "', type id " +
                                         std::to_string(config.type_id));
  }
  last_flush_ns_ = detail::monotonic_ns();
}

DurableAppender::~DurableAppender() {
  // An exclusive appender lets go of the append lock it kept (a lost segment's is not ours).
  if (held_ != nullptr && held_ == segment_.get() && !segment_->lost()) unlock_append(segment_->header());
}

// Leaving the current segment's append lock (sealed, rolled, or a claim that failed), whether
// held for one claim or kept by an exclusive appender.
void DurableAppender::let_go_append_lock() noexcept {
  unlock_append(segment_->header());
  held_ = nullptr;
}

std::size_t DurableAppender::max_message_size() const noexcept { return segment_->max_payload(); }

// From a sealed segment to the one its end record names: following the chain, not jumping to
// the newest file, so that a segment a dead roller left unsealed gets sealed by whoever comes.
Status DurableAppender::move_on() noexcept {
  try {
    // Acquire: pairs with the roller's release of sealed; next_sequence names the next file.
    std::uint64_t next = segment_->header().next_sequence.load(std::memory_order_acquire);
    if (next <= segment_->header().first_sequence) {
      last_error_ = "durable segment " + segment_->path().string() + ": sealed without a next segment";
      return Errc::region_corrupt;
    }
    std::filesystem::path file = detail::durable_segment_path(log_path_, next);
    std::error_code ec;
    std::shared_ptr<DurableSegment> left = segment_;
    if (left->loans_out != 0) loaned_segments_.push_back(left);  // keep it mapped for them
    held_ = nullptr;  // sealed: its lock was let go; a new mapping may reuse the address
    if (std::filesystem::exists(file, ec)) {
      segment_ = DurableSegment::open(file);
    } else {  // removed by retention since: we were far behind
      segment_ = open_tail();
    }
    if (left->loans_out == 0) {
      // Acquire: pairs with the claimants' release; only a bound on the pages touched.
      std::uint64_t touched = left->header().write_offset.load(std::memory_order_acquire) + sizeof(RecordHeader);
      if (prefaulted_segment_ == left.get()) touched = std::max(touched, prefaulted_to_);
      retire(std::move(left), touched);
    }
    prefaulted_segment_ = nullptr;  // a new mapping: nothing populated in it yet
    return Errc::ok;
  } catch (...) {
    return failure_in_flight(last_error_, log_path_);
  }
}

// The current segment was truncated under us (the SIGBUS guard replaced its mapping with zero
// pages, or another holder's truncation left its lock held): go on in a new segment after it,
// numbered past every sequence it may have held, so that no sequence is ever used twice.
// Appenders of one log recovering at once agree through an flock on the log directory: the
// first creates the segment, the others find it.
Status DurableAppender::leave_lost_segment() noexcept {
  try {
    const std::uint64_t lost_first = segment_->first_sequence();
    int dir_fd = ::open(log_path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) throw Error(Errc::system_error, "durable log " + log_path_.string() + ": " + std::strerror(errno));
    while (::flock(dir_fd, LOCK_EX) != 0 && errno == EINTR) {
    }
    struct Unlock {
      int fd;
      ~Unlock() { ::close(fd); }  // closing releases the flock
    } unlock{dir_fd};
    std::shared_ptr<DurableSegment> next;
    if (std::uint64_t after = detail::durable_segment_after(log_path_, lost_first); after != 0) {
      next = open_tail();  // another appender recovered first, or the log went on past it
    } else {
      // The file's own header (pread) has the sequences claimed in it, unless the truncation
      // took the header too: then the most records the segment could hold bounds them.
      std::uint64_t on_disk = segment_->next_sequence_on_disk();
      std::uint64_t bound = on_disk > lost_first ? on_disk : lost_first + segment_->size() / sizeof(RecordHeader);
      std::uint64_t first = std::max({bound, next_sequence_seen_, lost_first + 1});
      next = DurableSegment::create(log_path_, config_.topic, config_.segment_size, config_.type_id, first,
                                    std::max(detail::realtime_ns(), last_time_seen_));
    }
    if (segment_->loans_out != 0) loaned_segments_.push_back(segment_);  // keep it mapped for them
    ++segments_lost_;
    held_ = nullptr;  // its lock word went with the file
    last_error_ = "durable segment " + segment_->path().string() + ": truncated under this appender; going on in " +
                  next->path().string();
    segment_ = std::move(next);
    prefaulted_segment_ = nullptr;
    return Errc::ok;
  } catch (...) {
    return failure_in_flight(last_error_, log_path_);
  }
}

// The newest segment file, starting at `first`, was truncated (cannot be opened): a new
// segment after it, numbered past every sequence it may have held (its header's next sequence
// when the header is still in the file, else the most records the largest segment could hold).
std::shared_ptr<DurableSegment> DurableAppender::segment_after_damaged_tail(std::uint64_t first) {
  const std::filesystem::path file = detail::durable_segment_path(log_path_, first);
  std::uint64_t next = 0;
  SegmentHeader identity;
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    constexpr auto kIdentity = static_cast<ssize_t>(offsetof(SegmentHeader, append_lock));
    const bool ours = pread(fd, &identity, kIdentity, 0) == kIdentity &&
                      std::memcmp(identity.magic, kSegmentMagic, sizeof kSegmentMagic) == 0 &&
                      identity.first_sequence == first;
    if (!ours || pread(fd, &next, sizeof next, offsetof(SegmentHeader, next_sequence)) != static_cast<ssize_t>(sizeof next)) {
      next = 0;
    }
    ::close(fd);
  }
  if (next <= first) next = first + kMaxSegmentSize / sizeof(RecordHeader);
  return DurableSegment::create(log_path_, config_.topic, config_.segment_size, config_.type_id, next,
                                detail::realtime_ns());
}

// The segment appends go to: the newest one, unless a roller died between creating it and
// sealing its predecessor; then that predecessor, whose next claim finishes the roll.
std::shared_ptr<DurableSegment> DurableAppender::open_tail() const {
  std::vector<std::uint64_t> firsts = detail::durable_segment_firsts(log_path_);
  if (firsts.empty()) throw Error(Errc::no_such_topic, "durable log " + log_path_.string() + ": no segment left");
  std::shared_ptr<DurableSegment> tail = DurableSegment::open(detail::durable_segment_path(log_path_, firsts.back()));
  for (std::size_t i = firsts.size() - 1; i > 0; --i) {
    std::shared_ptr<DurableSegment> before;
    try {
      before = DurableSegment::open(detail::durable_segment_path(log_path_, firsts[i - 1]));
    } catch (const Error& e) {
      // Removed by retention, or damaged (e.g. truncated): no roll of it to finish.
      if (e.code() == Errc::no_such_topic || detail::durable_segment_damaged(e.code())) break;
      throw;
    }
    if (before->header().sealed.load(std::memory_order_acquire) != 0) break;  // pairs with the roller's release
    tail = std::move(before);
  }
  return tail;
}

// Under the lock: creates the next segment first, then seals this one (rule 4), so a failure
// leaves the log as it was.
Status DurableAppender::roll() noexcept {
  SegmentHeader& h = segment_->header();
  std::uint64_t next_first = h.next_sequence.load(std::memory_order_relaxed);
  std::shared_ptr<DurableSegment> next;
  try {
    next = DurableSegment::create(log_path_, config_.topic, config_.segment_size, config_.type_id, next_first,
                                  std::max(detail::realtime_ns(), h.last_time_ns.load(std::memory_order_relaxed)),
                                  std::move(spare_));
  } catch (...) {
    return failure_in_flight(last_error_, log_path_);
  }
  if (config_.flush.mode != FlushPolicy::Mode::none) ::fdatasync(segment_->fd());
  seal(h, *segment_, next_first);
  return Errc::ok;
}

Result<DurableLoan> DurableAppender::loan(std::size_t size) noexcept {
  if (size > segment_->max_payload_bytes()) return Errc::message_too_large;
  for (;;) {
    DurableSegment* seg = segment_.get();  // valid until move_on(), after which we loop
    SegmentHeader& h = seg->header();
    if (seg->lost()) [[unlikely]] {
      if (Status st = leave_lost_segment(); !st) return st.code();
      continue;
    }
    // Acquire: pairs with the roller's release of sealed; the next segment exists by then.
    if (h.sealed.load(std::memory_order_acquire) != 0) {
      if (Status st = move_on(); !st) return st.code();
      continue;
    }
    // An exclusive appender takes the lock once per segment and keeps it (held_).
    Locked locked = Locked::yes;
    if (seg != held_) {  // every claim of an ordinary appender
      locked = lock_append(*seg, lock_word_);
      if (locked == Locked::lost) {
        if (Status st = leave_lost_segment(); !st) return st.code();
        continue;
      }
      if (locked == Locked::timed_out) {
        last_error_ = "durable log " + log_path_.string() + ": the append lock's live holder kept it over 10 s";
        return Errc::timeout;
      }
      if (config_.exclusive_appender) held_ = seg;
      if (h.sealed.load(std::memory_order_relaxed) != 0) {
        let_go_append_lock();
        continue;
      }
    }
    // Checked on every claim, also a kept lock's: the header is in a file others may write.
    std::uint64_t wo = h.write_offset.load(std::memory_order_relaxed);  // ours under the lock
    if (wo < h.data_offset || wo > seg->size() - sizeof(RecordHeader) || wo % kRecordAlign != 0) [[unlikely]] {
      let_go_append_lock();
      last_error_ = "durable segment " + seg->path().string() + ": write offset " + std::to_string(wo) + " out of bounds";
      return Errc::region_corrupt;
    }
    if (locked == Locked::taken_over) {
      if (!repair_after_takeover(h, *seg, wo)) {
        let_go_append_lock();
        last_error_ = "durable segment " + seg->path().string() + ": records below the write offset are inconsistent";
        return Errc::region_corrupt;
      }
      const std::uint64_t next_seq = h.next_sequence.load(std::memory_order_relaxed);
      std::error_code ec;
      // An empty segment never rolls (any record fits in it), and its own file is not a next one.
      if (next_seq != h.first_sequence && std::filesystem::exists(detail::durable_segment_path(log_path_, next_seq), ec)) {
        seal(h, *seg, next_seq);  // the dead holder had made the next segment: finish its roll
        let_go_append_lock();
        continue;
      }
    }
    std::uint64_t seq = h.next_sequence.load(std::memory_order_relaxed);
    std::uint64_t stride = record_stride(size);
    if (wo + stride + sizeof(RecordHeader) > seg->size()) [[unlikely]] {
      Status st = roll();
      let_go_append_lock();
      if (!st) return st.code();
      continue;
    }
    RecordHeader* rec = seg->record_at(wo);
    std::uint64_t now = std::max(clock_->now(), h.last_time_ns.load(std::memory_order_relaxed));
    rec->length = static_cast<std::uint32_t>(size);
    rec->sequence = seq;
    rec->time_ns = now;
    std::memcpy(&rec->claimant_pid, &claimant_word_, sizeof claimant_word_);  // pid and start: one store
    std::uint64_t ic = h.index_count.load(std::memory_order_relaxed);
    IndexEntry* index = seg->index();
    if (ic < h.index_capacity && (ic == 0 || index[ic - 1].offset / kIndexStride < wo / kIndexStride)) {
      index[ic] = IndexEntry{wo, seq, now};
      h.index_count.store(ic + 1, std::memory_order_release);  // release: pairs with lookups' acquire
    }
    h.last_time_ns.store(now, std::memory_order_relaxed);
    h.next_sequence.store(seq + 1, std::memory_order_release);  // release: tools read it with acquire
    // Release: a reader that sees the new write_offset (acquire) sees the header fields above.
    h.write_offset.store(wo + stride, std::memory_order_release);
    if (held_ == nullptr) unlock_append(h);  // an exclusive appender keeps it
    // The next claim is likely of the same size: ask for its lines now, so that they arrive
    // while this message is built, instead of stalling the next publish()'s commit CAS, which
    // waits for every store before it (measured: 4 KiB 0.68 -> 0.50 us, 64 B 61 -> 51 ns). A
    // prefetch never faults, past the end of the mapping neither.
    const std::uint64_t ahead_end = wo + stride + std::min(stride, kPrefetchMax) + kCacheLine;
    for (std::uint64_t at = wo + stride; at < ahead_end; at += kCacheLine) detail::prefetch_for_write(seg->base() + at);
    // Outside the lock: reserving the next segment's file (posix_fallocate: 45 ms on tmpfs for
    // 64 MiB, measured) must stall neither the roll nor the other appenders.
    // And unmapping the segment left at the last roll, in steps (retire_step()).
    if (wo + stride > upkeep_at_ || seg != spare_for_) [[unlikely]] upkeep(*seg, wo + stride);
    // Outside the lock: a populate call must not stall the other appenders.
    if (config_.prefault_window != 0 &&
        (seg != prefaulted_segment_ || std::min(wo + stride + config_.prefault_window, seg->size()) > prefaulted_to_))
        [[unlikely]] {
      prefault_step(*seg, wo + stride);
    }
    ++seg->loans_out;
    next_sequence_seen_ = seq + 1;
    last_time_seen_ = now;
    last_error_.clear();
    // A prvalue: built in Result's argument, moved once into it (a named loan was moved twice).
    return DurableLoan(this, seg, reinterpret_cast<std::byte*>(rec) + sizeof(RecordHeader), size, wo, seq, now);
  }
}

// The work loan() spreads over the appends of a segment: the next step of reserving the spare,
// of unmapping the segment left behind, whichever is due.
void DurableAppender::upkeep(const DurableSegment& seg, std::uint64_t end) noexcept {
  if (&seg != spare_for_ || end > spare_next_at_) spare_step(seg, end);
  if (end > retire_next_at_) retire_step(end);
  upkeep_at_ = std::min(spare_next_at_, retire_next_at_);
}

// Unmapping a 64 MiB segment whose pages this process touched took 12-14 ms in one munmap
// (strace), the one long stall of a roll. So the segment left at a roll drops its page-table
// entries 1 MiB at a time (0.1-0.4 ms each, measured), the steps spread over the first half of
// the next segment (so that few appends pay one: 256 KiB steps put one in 1.6 % of 4 KiB
// appends and moved their p99), and is unmapped when nothing is left (then cheap).
void DurableAppender::retire_step(std::uint64_t end) noexcept {
  constexpr std::uint64_t kRetireStep = 1 << 20;
  if (retiring_ == nullptr) {
    retire_next_at_ = UINT64_MAX;
    return;
  }
  const std::uint64_t to = std::min(retired_to_ + kRetireStep, retire_end_);
  retiring_->release_pages(retired_to_, to);
  retired_to_ = to;
  if (to >= retire_end_) {
    retiring_ = nullptr;  // munmap: nothing mapped is left
    retire_next_at_ = UINT64_MAX;
  } else {
    const std::uint64_t steps = (retire_end_ + kRetireStep - 1) / kRetireStep;
    retire_next_at_ = end + std::max<std::uint64_t>(segment_->size() / 2 / steps, kRecordAlign);
  }
}

// A segment left at a roll with no loan out in it, and the end of what this process may have
// mapped in it (its records, the end record, what prefault_step() populated ahead of them):
// unmapped in steps from now on. A segment still retiring is unmapped at once (tiny segments).
void DurableAppender::retire(std::shared_ptr<DurableSegment> left, std::uint64_t touched_end) noexcept {
  retiring_ = std::move(left);
  retired_to_ = 0;
  retire_end_ = std::min(touched_end, retiring_->size());
  retire_next_at_ = 0;
  upkeep_at_ = 0;
}

// One step of reserving the spare: none in the first half of a segment, then 1 MiB at a time,
// spaced so that the whole is reserved by three quarters of it.
void DurableAppender::spare_step(const DurableSegment& seg, std::uint64_t end) noexcept {
  constexpr std::uint64_t kSpareStep = 1 << 20;
  const std::uint64_t steps = (config_.segment_size + kSpareStep - 1) / kSpareStep;
  const std::uint64_t spacing = std::max<std::uint64_t>(seg.size() / 4 / steps, kRecordAlign);
  if (&seg != spare_for_) {  // a new segment: start at its half
    spare_for_ = &seg;
    spare_next_at_ = seg.size() / 2;
    return;
  }
  spare_next_at_ = end + spacing;
  try {
    if (spare_ == nullptr || spare_->size != config_.segment_size) {
      spare_ = DurableSegment::reserve_spare(log_path_, config_.segment_size, kSpareStep);
    } else if (int err = spare_->grow(kSpareStep); err != 0) {
      spare_ = nullptr;  // the roll reserves (and reports no_space) itself
    }
  } catch (const std::exception&) {
    spare_ = nullptr;  // as above
  }
  if (spare_ == nullptr || spare_->complete()) spare_next_at_ = UINT64_MAX;
}

// One step of populating ahead of `from` in `seg` (one system call, at most kPrefaultStep), so
// that a window takes a few loans to fill and no single loan waits for all of it.
void DurableAppender::prefault_step(const DurableSegment& seg, std::uint64_t from) noexcept {
  if (!prefault_supported_) return;
  if (&seg != prefaulted_segment_) {  // the first loan in a segment (a new appender's first
    prefaulted_segment_ = &seg;        // message) is not held up: populating starts at the next
    prefaulted_to_ = from;
    return;
  }
  // Other appenders may have written past what we populated: go on from where we write.
  prefaulted_to_ = std::max(prefaulted_to_, from);
  std::uint64_t to = std::min(prefaulted_to_ + kPrefaultStep, seg.size());
  if (to <= prefaulted_to_) return;
  if (int err = seg.populate_write(prefaulted_to_, to); err != 0) {
    // EINVAL: a kernel before 5.14, never again. Otherwise (EFAULT: the file was truncated, the
    // SIGBUS guard reports it; ENOMEM) give up on this segment: writes fault as without it.
    if (err == EINVAL) prefault_supported_ = false;
    prefaulted_to_ = seg.size();
    return;
  }
  prefaulted_to_ = to;
}

Status DurableAppender::prefault(std::uint64_t bytes) noexcept {
  std::shared_ptr<DurableSegment> seg = segment_;
  // Acquire: pairs with the claimants' release of write_offset (a position, nothing read after).
  std::uint64_t from = seg->header().write_offset.load(std::memory_order_acquire);
  std::uint64_t to = std::min(from + std::min(bytes, seg->size()), seg->size());
  if (int err = seg->populate_write(from, to); err != 0) {
    last_error_ = "durable segment " + seg->path().string() + ": cannot populate its pages ahead (madvise " +
                  "MADV_POPULATE_WRITE): " + std::strerror(err);
    return Errc::system_error;
  }
  if (prefaulted_segment_ != seg.get()) prefaulted_segment_ = seg.get(), prefaulted_to_ = 0;
  prefaulted_to_ = std::max(prefaulted_to_, to);
  last_error_.clear();
  return Errc::ok;
}

// The last loan out in a segment the appender has left unmaps it (out of line: publish()'s
// common path is the test alone).
void DurableAppender::drop_left_segment(DurableSegment* seg) noexcept {
  std::erase_if(loaned_segments_, [seg](const std::shared_ptr<DurableSegment>& s) { return s.get() == seg; });
}

inline void DurableAppender::loan_returned(DurableSegment* seg) noexcept {
  if (--seg->loans_out == 0 && seg != segment_.get()) [[unlikely]] drop_left_segment(seg);
}

Status DurableAppender::publish(DurableLoan& loan) noexcept {
  if (loan.owner_ != this) return Errc::misuse;
  DurableSegment* seg = std::exchange(loan.segment_, nullptr);
  loan.owner_ = nullptr;
  RecordHeader* rec = seg->record_at(loan.record_offset_);
  std::uint32_t expected = kClaimed;
  // seq_cst: release for the payload (pairs with the reader's acquire load of commit), and
  // ordered before our sleepers load (rule 6); a CAS because a reader may have tombstoned it.
  bool committed = rec->commit.compare_exchange_strong(expected, kCommitted, std::memory_order_seq_cst);
  bool lost = seg->lost();
  if (committed && !lost) [[likely]] {
    wake_readers(seg->header());
    if (config_.flush.mode != FlushPolicy::Mode::none) [[unlikely]] flush_after(*seg, loan);
  } else if (committed) {  // before loan_returned() may unmap it
    last_error_ = "durable segment " + seg->path().string() + ": truncated under this appender; the message of sequence " +
                  std::to_string(loan.sequence_) + " is lost, the next loan goes on in a new segment";
  }
  loan_returned(seg);  // seg may be unmapped from here on
  if (!committed) return Errc::misuse;
  if (lost) return Errc::region_lost;
  return Errc::ok;
}

// The flush policy, after a commit; `seg` is the loan's segment, still mapped.
void DurableAppender::flush_after(const DurableSegment& seg, const DurableLoan& loan) noexcept {
  switch (config_.flush.mode) {
    case FlushPolicy::Mode::none: break;
    case FlushPolicy::Mode::each_publish: {
      auto page = static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
      std::uint64_t from = loan.record_offset_ / page * page;
      std::uint64_t to = loan.record_offset_ + record_stride(loan.size_);
      ::msync(seg.base() + from, to - from, MS_SYNC);
      break;
    }
    case FlushPolicy::Mode::every_n:
      if (++unflushed_ >= config_.flush.every_n) {
        unflushed_ = 0;
        ::fdatasync(seg.fd());
      }
      break;
    case FlushPolicy::Mode::interval: {
      std::uint64_t now = detail::monotonic_ns();
      if (now - last_flush_ns_ >= static_cast<std::uint64_t>(config_.flush.interval.count()) * 1'000'000ull) {
        last_flush_ns_ = now;
        ::fdatasync(seg.fd());
      }
      break;
    }
  }
}

void DurableAppender::abandon(DurableLoan& loan) noexcept {
  DurableSegment* seg = std::exchange(loan.segment_, nullptr);
  loan.owner_ = nullptr;
  std::uint32_t expected = kClaimed;
  // seq_cst as in publish: readers waiting at this record must see the tombstone.
  if (seg->record_at(loan.record_offset_)->commit.compare_exchange_strong(expected, kTombstone,
                                                                          std::memory_order_seq_cst)) {
    wake_readers(seg->header());
  }
  loan_returned(seg);
}

Status DurableAppender::append(std::span<const std::byte> bytes) noexcept {
  Result<DurableLoan> loan = this->loan(bytes.size());
  if (!loan) return loan.code();
  if (!bytes.empty()) std::memcpy(loan->data().data(), bytes.data(), bytes.size());
  return publish(*loan);
}

}  // namespace shmbus
