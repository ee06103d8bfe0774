// DurableReader: in-order reads in place, lookups through the segment index, following
// segments, tombstoning dead claimants, and named positions (durable layout rules 2-6).
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>

#include "durable/segment.hpp"
#include "futex.hpp"
#include "shmbus/durable.hpp"

namespace shmbus {

using namespace detail::durable;
using detail::DurableSegment;

namespace {
constexpr std::uint64_t kLivenessCheckNs = 1'000'000;
constexpr std::uint64_t kClaimSpinNs = 2'000;  // a build and commit take well under this
constexpr std::chrono::milliseconds kWaitSlice{10};  // re-check dead claimants while waiting

// A named reader's position file, mapped shared so its stores survive the reader's kill -9.
class PositionMap {
 public:
  PositionMap(const std::filesystem::path& file, bool& created) {
    std::filesystem::create_directories(file.parent_path());
    const std::string name = "durable reader position " + file.string();
    created = false;
    if (!std::filesystem::exists(file)) {
      std::filesystem::path tmp = file.string() + ".tmp." + std::to_string(getpid());
      int fd = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      PositionFile p{};
      std::memcpy(p.magic, kPositionMagic, sizeof p.magic);
      p.layout_version = kPositionLayoutVersion;
      p.abi_word = kDurableAbiWord;
      bool ok = fd >= 0 && posix_fallocate(fd, 0, 4096) == 0 && pwrite(fd, &p, sizeof p, 0) == sizeof p;
      if (fd >= 0) ::close(fd);
      if (!ok || (::link(tmp.c_str(), file.c_str()) != 0 && errno != EEXIST)) {
        ::unlink(tmp.c_str());
        throw Error(Errc::system_error, name + ": cannot create it");
      }
      ::unlink(tmp.c_str());
      created = true;
    }
    fd_ = ::open(file.c_str(), O_RDWR | O_CLOEXEC);
    if (fd_ < 0) throw Error(Errc::system_error, name + ": " + std::strerror(errno));
    PositionFile p{};
    if (pread(fd_, &p, sizeof p, 0) != sizeof p) throw Error(Errc::region_too_short, name + ": shorter than its header");
    if (std::memcmp(p.magic, kPositionMagic, sizeof p.magic) != 0) throw Error(Errc::not_a_region, name + ": wrong magic");
    if (p.layout_version != kPositionLayoutVersion) {
      throw Error(Errc::unknown_layout_version, name + ": layout version " + std::to_string(p.layout_version));
    }
    if (p.abi_word != kDurableAbiWord) throw Error(Errc::abi_mismatch, name + ": written on another ABI");
    void* base = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (base == MAP_FAILED) throw Error(Errc::system_error, name + ": mmap: " + std::strerror(errno));
    map_ = static_cast<PositionFile*>(base);
  }
  ~PositionMap() {
    if (map_ != nullptr) munmap(map_, 4096);
    if (fd_ >= 0) ::close(fd_);
  }
  PositionFile& get() { return *map_; }

 private:
  int fd_ = -1;
  PositionFile* map_ = nullptr;
};

}  // namespace

struct DurableReader::State {
  std::filesystem::path log_path;
  std::shared_ptr<DurableSegment> seg;
  std::uint64_t offset = 0;    // of the next record in seg
  std::uint64_t sequence = 0;  // the next record's sequence
  std::uint64_t lost_total = 0;
  std::uint64_t pending_lost = 0;  // reported by the next call
  // The claimed record last found alive, and when to look again: a new one is judged at once.
  const RecordHeader* alive_record = nullptr;
  std::uint64_t next_liveness_check = 0;
  std::string error;
  std::unique_ptr<PositionMap> position;
  std::string damaged_skipped;  // the error of the damaged segment open_at_or_after() skipped

  // Positions at the oldest retained segment's first record; returns its first sequence.
  // Damaged segments (truncated, foreign) are skipped: the newest one is never skipped, so its
  // error is the reader's when nothing readable is left.
  void to_oldest() {
    std::vector<std::uint64_t> firsts = detail::durable_segment_firsts(log_path);
    if (firsts.empty()) throw Error(Errc::no_such_topic, "no durable log at " + log_path.string() + " (no segment)");
    open_at_or_after(firsts, 0);
    if (!damaged_skipped.empty()) pending_lost = sequence - firsts.front();  // reported by next()
  }

  // Opens firsts[i], or the first readable one after it; sets damaged_skipped to the file
  // skipped last (empty when none).
  void open_at_or_after(const std::vector<std::uint64_t>& firsts, std::size_t i) {
    damaged_skipped.clear();
    for (;; ++i) {
      try {
        seg = DurableSegment::open(detail::durable_segment_path(log_path, firsts[i]));
        break;
      } catch (const Error& e) {
        if (i + 1 == firsts.size() || !detail::durable_segment_damaged(e.code())) throw;
        damaged_skipped = e.what();
      }
    }
    offset = seg->header().data_offset;
    sequence = seg->header().first_sequence;
  }

  // The segment under this reader was truncated: go on in the one after it, counting what the
  // skip loses. region_lost either way; when no segment follows yet, the position stays.
  Errc leave_lost_segment(const std::string& why) {
    const std::string lost_file = seg->path().string();
    const std::uint64_t lost_first = seg->first_sequence();
    std::vector<std::uint64_t> firsts = detail::durable_segment_firsts(log_path);
    auto it = std::upper_bound(firsts.begin(), firsts.end(), lost_first);
    if (it == firsts.end()) {
      error = "durable segment " + lost_file + ": " + why + "; no segment follows it yet (position " +
              std::to_string(sequence) + ")";
      return Errc::region_lost;
    }
    const std::uint64_t from = sequence;
    open_at_or_after(firsts, static_cast<std::size_t>(it - firsts.begin()));
    const std::uint64_t skipped = sequence > from ? sequence - from : 0;
    lost_total += skipped;
    alive_record = nullptr;
    error = "durable segment " + lost_file + ": " + why + "; " + std::to_string(skipped) +
            " messages lost (sequences " + std::to_string(from) + ".." + std::to_string(sequence) +
            "), going on in " + seg->path().string();
    return Errc::region_lost;
  }

  // Walks from `offset` while `before(record)` holds, stopping at the write offset or end record.
  template <typename Before>
  void walk(Before before) {
    const SegmentHeader& h = seg->header();
    // Acquire: pairs with the claimant's release; the records below it have their lengths.
    std::uint64_t wo = std::min(h.write_offset.load(std::memory_order_acquire), seg->size() - sizeof(RecordHeader));
    while (offset < wo) {
      const RecordHeader* rec = seg->record_at(offset);
      if (!before(*rec)) break;
      std::uint64_t stride = record_stride(rec->length);
      if (offset + stride > wo) break;
      offset += stride;
      sequence = rec->sequence + 1;
    }
    if (offset < wo) sequence = seg->record_at(offset)->sequence;
    else sequence = h.next_sequence.load(std::memory_order_acquire);  // pairs with the claimant's release
  }

  void seek_sequence(std::uint64_t wanted) {
    std::vector<std::uint64_t> firsts = detail::durable_segment_firsts(log_path);
    if (firsts.empty()) throw Error(Errc::no_such_topic, "no durable log at " + log_path.string() + " (no segment)");
    if (wanted < firsts.front()) {
      to_oldest();
      pending_lost = sequence - wanted;
      return;
    }
    auto it = std::upper_bound(firsts.begin(), firsts.end(), wanted) - 1;
    open_at_or_after(firsts, static_cast<std::size_t>(it - firsts.begin()));
    if (!damaged_skipped.empty()) {  // the wanted sequence was in a damaged segment
      if (sequence > wanted) pending_lost = sequence - wanted;
      return;
    }
    offset = seg->index_floor_by_sequence(wanted);
    walk([&](const RecordHeader& r) { return r.sequence < wanted; });
  }

  void seek_time(std::uint64_t time_ns) {
    std::vector<std::uint64_t> firsts = detail::durable_segment_firsts(log_path);
    if (firsts.empty()) throw Error(Errc::no_such_topic, "no durable log at " + log_path.string() + " (no segment)");
    // Binary search for the last segment whose first time is before time_ns (times ascend).
    std::size_t lo = 0, hi = firsts.size();
    std::shared_ptr<DurableSegment> found;
    while (lo < hi) {
      std::size_t mid = lo + (hi - lo) / 2;
      auto s = DurableSegment::open(detail::durable_segment_path(log_path, firsts[mid]));
      if (s->header().first_time_ns < time_ns) {
        found = std::move(s);
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    seg = found ? found : DurableSegment::open(detail::durable_segment_path(log_path, firsts.front()));
    offset = seg->index_floor_by_time(time_ns);
    walk([&](const RecordHeader& r) { return r.time_ns < time_ns; });
  }

  // At an end record: go on in the segment that starts at `next_first`.
  Errc follow(std::uint64_t next_first) {
    std::filesystem::path next = detail::durable_segment_path(log_path, next_first);
    try {
      seg = DurableSegment::open(next);
      offset = seg->header().data_offset;
      sequence = next_first;
      if (seg->header().first_sequence != next_first) {
        error = "durable segment " + next.string() + ": its header names another first sequence";
        return Errc::region_corrupt;
      }
      return Errc::ok;
    } catch (const Error& e) {
      if (detail::durable_segment_damaged(e.code())) {  // e.g. truncated: skip it, counting the loss
        std::vector<std::uint64_t> firsts = detail::durable_segment_firsts(log_path);
        auto it = std::upper_bound(firsts.begin(), firsts.end(), next_first);
        if (it == firsts.end()) {
          error = std::string(e.what()) + "; no segment follows it yet";
          return Errc::region_lost;
        }
        open_at_or_after(firsts, static_cast<std::size_t>(it - firsts.begin()));
        const std::uint64_t skipped = sequence > next_first ? sequence - next_first : 0;
        lost_total += skipped;
        error = std::string(e.what()) + "; " + std::to_string(skipped) + " messages lost, going on in " +
                seg->path().string();
        return Errc::region_lost;
      }
      if (e.code() != Errc::no_such_topic) throw;
    }
    to_oldest();  // removed by retention: everything before the oldest retained is lost
    if (sequence > next_first) {
      pending_lost = sequence - next_first;
      return report_lost();
    }
    return Errc::ok;
  }

  Errc report_lost() {
    lost_total += pending_lost;
    error = (damaged_skipped.empty() ? "durable log " + log_path.string() + ": retention removed "
                                     : damaged_skipped + "; skipping it loses ") +
            std::to_string(pending_lost) + " messages before this reader read them; going on at sequence " +
            std::to_string(sequence);
    pending_lost = 0;
    return Errc::lost_history;
  }

  Result<DurableSample> next() {
    if (pending_lost != 0) return report_lost();
    if (position) {
      // Release: a restarted reader (acquire) resumes after everything returned so far.
      position->get().next_sequence.store(sequence, std::memory_order_release);
    }
    for (;;) {
      if (seg->lost()) return lost_error();
      const SegmentHeader& h = seg->header();
      if (offset < h.data_offset || offset + sizeof(RecordHeader) > seg->size() || offset % kRecordAlign != 0) {
        return corrupt("record offset " + std::to_string(offset) + " out of bounds");
      }
      RecordHeader* rec = seg->record_at(offset);
      // Acquire: pairs with the committer's seq_cst CAS; the payload is complete.
      std::uint32_t commit = rec->commit.load(std::memory_order_acquire);
      if (commit == kClaimed) {
        if (seg->lost()) return lost_error();  // the load faulted: the guard gave us a zero page
        // Free space, where a reader at the live end waits: no claim has stamped its pid here
        // yet. Looking at the record's own line spares the appenders' header line, which a
        // poll of write_offset would pull from their core at every claim. Relaxed: a stale 0
        // only means no_data now; what is read beyond is ordered by write_offset below.
        if (std::atomic_ref<std::int32_t>(rec->claimant_pid).load(std::memory_order_relaxed) == 0) {
          return Errc::no_data;
        }
        // Acquire: pairs with the claimant's release; the header below it is complete.
        if (offset >= h.write_offset.load(std::memory_order_acquire)) return Errc::no_data;
        std::uint64_t now = detail::monotonic_ns();
        if (rec == alive_record && now < next_liveness_check) return Errc::no_data;
        if (rec != alive_record) {
          // A claim newly met is almost always a live publisher a few stores from its commit:
          // wait for that briefly before judging its claimant through /proc (system calls).
          for (const std::uint64_t until = now + kClaimSpinNs; detail::monotonic_ns() < until;) {
            detail::cpu_relax();
            // Acquire: as the commit load above.
            if (rec->commit.load(std::memory_order_acquire) != kClaimed) break;
          }
          if (rec->commit.load(std::memory_order_acquire) != kClaimed) continue;  // as above
        }
        if (!detail::durable_claimant_dead(rec->claimant_pid, rec->claimant_start)) {
          alive_record = rec;
          next_liveness_check = now + kLivenessCheckNs;
          return Errc::no_data;
        }
        std::uint32_t expected = kClaimed;
        // seq_cst: pairs with the claimant's own CAS (rule 3); one of them wins.
        rec->commit.compare_exchange_strong(expected, kTombstone, std::memory_order_seq_cst);
        continue;
      }
      if (commit == kEndOfSegment) {
        if (rec->sequence != sequence || sequence <= h.first_sequence) {
          return corrupt("end record names sequence " + std::to_string(rec->sequence));
        }
        if (Errc e = follow(sequence); e != Errc::ok) return e;
        continue;
      }
      if (commit != kCommitted && commit != kTombstone) return corrupt("unknown commit word " + std::to_string(commit));
      std::uint64_t stride = record_stride(rec->length);
      if (rec->length > seg->size() || offset + stride + sizeof(RecordHeader) > seg->size()) {
        return corrupt("record length " + std::to_string(rec->length) + " runs past the segment");
      }
      if (rec->sequence != sequence) {
        return corrupt("record sequence " + std::to_string(rec->sequence) + " where " + std::to_string(sequence) +
                       " was due");
      }
      offset += stride;
      ++sequence;
      if (commit == kTombstone) continue;
      DurableSample sample;
      sample.data = {reinterpret_cast<const std::byte*>(rec) + sizeof(RecordHeader), rec->length};
      sample.sequence = rec->sequence;
      sample.time_ns = rec->time_ns;
      if (seg->lost()) return lost_error();
      return sample;
    }
  }

  Errc corrupt(const std::string& what) {
    error = "durable segment " + seg->path().string() + ": " + what;
    return Errc::region_corrupt;
  }
  Errc lost_error() { return leave_lost_segment("truncated under this reader"); }
};

DurableReader::DurableReader(std::unique_ptr<State> state) noexcept : s_(std::move(state)) {}
DurableReader::DurableReader(DurableReader&&) noexcept = default;
DurableReader& DurableReader::operator=(DurableReader&&) noexcept = default;
DurableReader::~DurableReader() = default;

DurableReader DurableReader::oldest(const std::filesystem::path& directory, const std::string& topic) {
  detail::validate_durable_name("durable topic", topic);
  auto s = std::make_unique<State>();
  s->log_path = directory / topic;
  s->to_oldest();
  return DurableReader(std::move(s));
}

DurableReader DurableReader::at_sequence(const std::filesystem::path& directory, const std::string& topic,
                                         std::uint64_t sequence) {
  detail::validate_durable_name("durable topic", topic);
  auto s = std::make_unique<State>();
  s->log_path = directory / topic;
  s->seek_sequence(sequence);
  return DurableReader(std::move(s));
}

DurableReader DurableReader::at_time(const std::filesystem::path& directory, const std::string& topic,
                                     std::uint64_t time_ns) {
  detail::validate_durable_name("durable topic", topic);
  auto s = std::make_unique<State>();
  s->log_path = directory / topic;
  s->seek_time(time_ns);
  return DurableReader(std::move(s));
}

DurableReader DurableReader::named(const std::filesystem::path& directory, const std::string& topic,
                                   const std::string& name) {
  detail::validate_durable_name("durable topic", topic);
  detail::validate_durable_name("durable reader name", name);
  auto s = std::make_unique<State>();
  s->log_path = directory / topic;
  bool created = false;
  s->position = std::make_unique<PositionMap>(s->log_path / "readers" / (name + ".pos"), created);
  if (created) {
    s->to_oldest();
  } else {
    // Acquire: pairs with the reader's release store before it was killed or closed.
    s->seek_sequence(s->position->get().next_sequence.load(std::memory_order_acquire));
  }
  return DurableReader(std::move(s));
}

Result<DurableSample> DurableReader::next() noexcept {
  try {
    return s_->next();
  } catch (const Error& e) {
    s_->error = e.what();
    return e.code();
  } catch (const std::exception& e) {
    s_->error = e.what();
    return Errc::system_error;
  }
}

Result<DurableSample> DurableReader::next_wait(std::chrono::nanoseconds timeout) noexcept {
  const std::uint64_t deadline = detail::monotonic_ns() + detail::bounded_wait_ns(timeout);
  for (;;) {
    Result<DurableSample> r = next();
    if (r.ok() || r.code() != Errc::no_data) return r;
    std::shared_ptr<DurableSegment> seg = s_->seg;
    SegmentHeader& h = seg->header();
    std::uint32_t word = h.wake_word.load(std::memory_order_acquire);  // pairs with the waker's release
    h.sleepers.fetch_add(1, std::memory_order_seq_cst);  // seq_cst: before the re-check (rule 6)
    r = next();
    if (r.ok() || r.code() != Errc::no_data || s_->seg != seg) {
      h.sleepers.fetch_sub(1, std::memory_order_relaxed);
      if (r.ok() || r.code() != Errc::no_data) return r;
      continue;
    }
    std::uint64_t now = detail::monotonic_ns();
    if (now >= deadline) {
      h.sleepers.fetch_sub(1, std::memory_order_relaxed);
      return Errc::timeout;
    }
    auto slice = std::min<std::uint64_t>(deadline - now, std::chrono::nanoseconds(kWaitSlice).count());
    detail::futex_wait(&h.wake_word, word, std::chrono::nanoseconds(slice));
    h.sleepers.fetch_sub(1, std::memory_order_relaxed);  // relaxed: only a hint for wakers
  }
}

std::uint64_t DurableReader::position() const noexcept { return s_->pending_lost ? s_->sequence - s_->pending_lost : s_->sequence; }
std::uint64_t DurableReader::lost() const noexcept { return s_->lost_total; }
const std::string& DurableReader::last_error() const noexcept { return s_->error; }

}  // namespace shmbus
