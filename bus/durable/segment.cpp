#include "durable/segment.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "process_identity.hpp"
#include "shmbus/error.hpp"
#include "sigbus_guard.hpp"

namespace shmbus::detail {

using namespace durable;

namespace {

std::string errno_text(int err) { return std::strerror(err); }

std::uint64_t align_up(std::uint64_t v, std::uint64_t a) { return (v + a - 1) / a * a; }

struct Geometry {
  std::uint64_t index_capacity;
  std::uint64_t data_offset;
};
Geometry geometry_for(std::uint64_t segment_size) {
  std::uint64_t capacity = segment_size / kIndexStride + 1;
  return {capacity, align_up(kSegmentHeaderSize + capacity * sizeof(IndexEntry), 4096)};
}

}  // namespace

std::uint64_t realtime_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);  // vDSO: no system call
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

bool durable_claimant_dead(std::int32_t pid, std::uint32_t start_low) noexcept {
  if (pid <= 0) return true;
  std::uint64_t start = process_start_time(pid);
  return start == 0 || static_cast<std::uint32_t>(start) != start_low;
}

std::filesystem::path durable_segment_path(const std::filesystem::path& log_path, std::uint64_t first_sequence) {
  char name[32];
  std::snprintf(name, sizeof name, "%020llu.log", static_cast<unsigned long long>(first_sequence));
  return log_path / name;
}

std::vector<std::uint64_t> durable_segment_firsts(const std::filesystem::path& log_path) {
  std::vector<std::uint64_t> firsts;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(log_path, ec)) {
    std::string name = entry.path().filename().string();
    if (name.size() != 24 || name.compare(20, 4, ".log") != 0) continue;
    if (!std::all_of(name.begin(), name.begin() + 20, [](char c) { return c >= '0' && c <= '9'; })) continue;
    firsts.push_back(std::strtoull(name.c_str(), nullptr, 10));
  }
  if (ec) throw Error(Errc::system_error, "durable log " + log_path.string() + ": cannot list: " + ec.message());
  std::sort(firsts.begin(), firsts.end());
  return firsts;
}

std::uint64_t durable_segment_after(const std::filesystem::path& log_path, std::uint64_t first) {
  std::vector<std::uint64_t> firsts = durable_segment_firsts(log_path);
  auto it = std::upper_bound(firsts.begin(), firsts.end(), first);
  return it == firsts.end() ? 0 : *it;
}

bool durable_segment_damaged(Errc code) noexcept {
  return code == Errc::region_too_short || code == Errc::not_a_region || code == Errc::unknown_layout_version ||
         code == Errc::abi_mismatch || code == Errc::region_corrupt;
}

void validate_durable_name(const std::string& what, const std::string& name) {
  bool ok = !name.empty() && name.size() <= kMaxTopicName && name != "." && name != ".." &&
            std::all_of(name.begin(), name.end(), [](char c) {
              return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                     c == '_' || c == '-';
            });
  if (!ok) {
    throw Error(Errc::invalid_config, what + " '" + name + "' is not 1.." + std::to_string(kMaxTopicName) +
                                          " characters of [A-Za-z0-9._-] (nor . or ..)");
  }
}

std::shared_ptr<DurableSegment> DurableSegment::open(const std::filesystem::path& file) {
  std::shared_ptr<DurableSegment> seg(new DurableSegment());
  seg->path_ = file;
  const std::string name = "durable segment " + file.string();
  seg->fd_ = ::open(file.c_str(), O_RDWR | O_CLOEXEC);
  if (seg->fd_ < 0) {
    int err = errno;
    throw Error(err == ENOENT ? Errc::no_such_topic : Errc::system_error, name + ": " + errno_text(err));
  }
  struct stat st {};
  if (fstat(seg->fd_, &st) != 0) throw Error(Errc::system_error, name + ": fstat: " + errno_text(errno));
  auto file_size = static_cast<std::uint64_t>(st.st_size);
  if (file_size < kSegmentHeaderSize) {
    throw Error(Errc::region_too_short, name + ": " + std::to_string(file_size) + " bytes, shorter than its " +
                                            std::to_string(kSegmentHeaderSize) + "-byte header (truncated?)");
  }
  SegmentHeader identity;
  static_assert(std::is_trivially_copyable_v<std::uint64_t>);
  if (pread(seg->fd_, &identity, offsetof(SegmentHeader, append_lock), 0) !=
      static_cast<ssize_t>(offsetof(SegmentHeader, append_lock))) {
    throw Error(Errc::system_error, name + ": cannot read its header: " + errno_text(errno));
  }
  if (std::memcmp(identity.magic, kSegmentMagic, sizeof kSegmentMagic) != 0) {
    throw Error(Errc::not_a_region, name + ": not a shmbus durable segment (wrong magic)");
  }
  if (identity.layout_version != kSegmentLayoutVersion) {
    throw Error(Errc::unknown_layout_version,
                name + ": segment layout version " + std::to_string(identity.layout_version) + ", this library reads " +
                    std::to_string(kSegmentLayoutVersion) +
                    (identity.layout_version > kSegmentLayoutVersion ? " (written by a newer shmbus)" : ""));
  }
  if (identity.abi_word != kDurableAbiWord) {
    throw Error(Errc::abi_mismatch, name + ": written on another ABI (pointer width or byte order)");
  }
  if (file_size < identity.segment_size) {
    throw Error(Errc::region_too_short, name + ": " + std::to_string(file_size) + " bytes, its header says " +
                                            std::to_string(identity.segment_size) + " (truncated)");
  }
  Geometry g = geometry_for(identity.segment_size);
  if (identity.segment_size < kMinSegmentSize || identity.segment_size > kMaxSegmentSize ||
      identity.index_offset != kSegmentHeaderSize || identity.index_capacity != g.index_capacity ||
      identity.data_offset != g.data_offset || identity.data_offset + 2 * sizeof(RecordHeader) > identity.segment_size ||
      identity.topic[kMaxTopicName] != '\0') {
    throw Error(Errc::region_corrupt, name + ": inconsistent header (size, index or data offsets, topic name)");
  }
  seg->size_ = identity.segment_size;
  seg->first_sequence_ = identity.first_sequence;
  void* base = mmap(nullptr, seg->size_, PROT_READ | PROT_WRITE, MAP_SHARED, seg->fd_, 0);
  if (base == MAP_FAILED) throw Error(Errc::system_error, name + ": mmap: " + errno_text(errno));
  seg->base_ = static_cast<std::byte*>(base);
  seg->max_payload_ = seg->max_payload();
  SigbusGuard::register_mapping(base, seg->size_, &seg->lost_);
  return seg;
}

SpareSegment::~SpareSegment() {
  if (fd >= 0) {
    ::close(fd);
    ::unlink(tmp.c_str());
  }
}

int SpareSegment::grow(std::uint64_t step) noexcept {
  const std::uint64_t to = std::min(size, reserved + step);
  if (to <= reserved) return 0;
  if (int err = posix_fallocate(fd, static_cast<off_t>(reserved), static_cast<off_t>(to - reserved)); err != 0) return err;
  reserved = to;
  return 0;
}

std::unique_ptr<SpareSegment> DurableSegment::reserve_spare(const std::filesystem::path& log_path,
                                                            std::uint64_t segment_size, std::uint64_t reserve_now) {
  static std::atomic<std::uint32_t> counter{0};  // several appenders in one process
  auto spare = std::make_unique<SpareSegment>();
  spare->tmp = log_path / (".spare-" + std::to_string(counter.fetch_add(1, std::memory_order_relaxed)) + ".log.tmp." +
                           std::to_string(getpid()));  // relaxed: only a unique number
  spare->fd = ::open(spare->tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (spare->fd < 0) {
    throw Error(Errc::system_error, "durable log " + log_path.string() + ": creating a segment: " + errno_text(errno));
  }
  spare->size = segment_size;
  if (int err = spare->grow(reserve_now); err != 0) {
    throw Error(err == ENOSPC ? Errc::no_space : Errc::system_error,  // the destructor unlinks it
                "durable log " + log_path.string() + ": cannot reserve a segment of " + std::to_string(segment_size) +
                    " bytes: " + errno_text(err));
  }
  return spare;
}

std::shared_ptr<DurableSegment> DurableSegment::create(const std::filesystem::path& log_path, const std::string& topic,
                                                       std::uint64_t segment_size, std::uint64_t type_id,
                                                       std::uint64_t first_sequence, std::uint64_t first_time_ns,
                                                       std::unique_ptr<SpareSegment> spare) {
  std::filesystem::path final_path = durable_segment_path(log_path, first_sequence);
  if (spare == nullptr || spare->size != segment_size) spare = reserve_spare(log_path, segment_size, segment_size);
  if (int err = spare->grow(segment_size); err != 0) {  // the rest of a spare reserved in steps
    throw Error(err == ENOSPC ? Errc::no_space : Errc::system_error,  // its destructor unlinks it
                "durable log " + log_path.string() + ": cannot reserve a segment of " + std::to_string(segment_size) +
                    " bytes: " + errno_text(err));
  }
  const int fd = spare->fd;
  const std::filesystem::path tmp = spare->tmp;
  spare->fd = -1;  // ours from here: closed and unlinked below
  auto fail = [&](Errc code, const std::string& what) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw Error(code, "durable log " + log_path.string() + ": " + what);
  };
  Geometry g = geometry_for(segment_size);
  SegmentHeader h;
  std::memset(static_cast<void*>(&h), 0, sizeof h);
  std::memcpy(h.magic, kSegmentMagic, sizeof h.magic);
  h.abi_word = kDurableAbiWord;
  h.segment_size = segment_size;
  h.first_sequence = first_sequence;
  h.first_time_ns = first_time_ns;
  h.type_id = type_id;
  h.index_offset = kSegmentHeaderSize;
  h.index_capacity = g.index_capacity;
  h.data_offset = g.data_offset;
  std::strncpy(h.topic, topic.c_str(), kMaxTopicName);
  // Plain stores are fine: no other process can see the file before link() names it.
  h.write_offset.store(g.data_offset, std::memory_order_relaxed);
  h.next_sequence.store(first_sequence, std::memory_order_relaxed);
  h.last_time_ns.store(first_time_ns, std::memory_order_relaxed);
  h.layout_version = kSegmentLayoutVersion;
  if (pwrite(fd, &h, sizeof h, 0) != static_cast<ssize_t>(sizeof h)) fail(Errc::system_error, "writing a segment header: " + errno_text(errno));
  ::close(fd);
  // link() fails with EEXIST when another appender (maybe one that died since) made it first:
  // then that file is the segment, complete since it got its name.
  if (::link(tmp.c_str(), final_path.c_str()) != 0 && errno != EEXIST) {
    int err = errno;
    ::unlink(tmp.c_str());
    throw Error(Errc::system_error, "durable log " + log_path.string() + ": naming a segment: " + errno_text(err));
  }
  ::unlink(tmp.c_str());
  return open(final_path);
}

DurableSegment::~DurableSegment() {
  if (base_ != nullptr) {
    SigbusGuard::unregister_mapping(base_);
    munmap(base_, size_);
  }
  if (fd_ >= 0) ::close(fd_);
}

void DurableSegment::release_pages(std::uint64_t from, std::uint64_t to) const noexcept {
  constexpr std::uint64_t kPage = 4096;  // as in populate_write
  from = from / kPage * kPage;
  to = std::min((to + kPage - 1) / kPage * kPage, size_);
  if (to > from) ::madvise(base_ + from, to - from, MADV_DONTNEED);  // a failure leaves it to munmap
}

int DurableSegment::populate_write(std::uint64_t from, std::uint64_t to) const noexcept {
#ifndef MADV_POPULATE_WRITE
  constexpr int MADV_POPULATE_WRITE = 23;  // Linux 5.14; older headers lack the name
#endif
  constexpr std::uint64_t kPage = 4096;  // the mapping is at a page boundary; 4 KiB divides every page size
  from = from / kPage * kPage;
  to = std::min(align_up(to, kPage), size_);
  if (from >= to) return 0;
  return ::madvise(base_ + from, to - from, MADV_POPULATE_WRITE) == 0 ? 0 : errno;
}

bool DurableSegment::truncated_on_disk() const noexcept {
  struct stat st {};
  return fstat(fd_, &st) == 0 && static_cast<std::uint64_t>(st.st_size) < size_;
}

std::uint64_t DurableSegment::next_sequence_on_disk() const noexcept {
  std::uint64_t next = 0;
  if (pread(fd_, &next, sizeof next, offsetof(SegmentHeader, next_sequence)) != static_cast<ssize_t>(sizeof next)) return 0;
  return next;
}

std::uint64_t DurableSegment::max_payload() const noexcept {
  const SegmentHeader& h = header();
  std::uint64_t room = size_ - h.data_offset - 2 * sizeof(RecordHeader);
  return std::min<std::uint64_t>(room & ~(kRecordAlign - 1), UINT32_MAX);
}

namespace {
// Largest i in [0, count) with key(entries[i]) <= `key` (entries ascend), or count when none.
template <typename Key>
std::uint64_t floor_entry(const IndexEntry* entries, std::uint64_t count, Key key) {
  std::uint64_t lo = 0, hi = count;  // first entry with key > wanted
  while (lo < hi) {
    std::uint64_t mid = lo + (hi - lo) / 2;
    if (key(entries[mid])) lo = mid + 1; else hi = mid;
  }
  return lo == 0 ? count : lo - 1;
}
}  // namespace

std::uint64_t DurableSegment::index_floor_by_sequence(std::uint64_t sequence) const noexcept {
  const SegmentHeader& h = header();
  // Acquire: pairs with the claimant's release of index_count after writing the entry.
  std::uint64_t count = std::min(h.index_count.load(std::memory_order_acquire), h.index_capacity);
  std::uint64_t i = floor_entry(index(), count, [&](const IndexEntry& e) { return e.sequence <= sequence; });
  if (i == count) return h.data_offset;
  std::uint64_t off = index()[i].offset;
  return off >= h.data_offset && off < size_ ? off : h.data_offset;
}

std::uint64_t DurableSegment::index_floor_by_time(std::uint64_t time_ns) const noexcept {
  const SegmentHeader& h = header();
  std::uint64_t count = std::min(h.index_count.load(std::memory_order_acquire), h.index_capacity);  // as above
  std::uint64_t i = floor_entry(index(), count, [&](const IndexEntry& e) { return e.time_ns < time_ns; });
  if (i == count) return h.data_offset;
  std::uint64_t off = index()[i].offset;
  return off >= h.data_offset && off < size_ ? off : h.data_offset;
}

}  // namespace shmbus::detail
