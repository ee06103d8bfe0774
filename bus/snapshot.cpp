// Saving and reading snapshot files (see include/shmbus/snapshot.hpp).
#include "shmbus/snapshot.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <sys/mman.h>
#include <unistd.h>

#include "publisher_core.hpp"
#include "reference_walk.hpp"
#include "region.hpp"
#include "sigbus_guard.hpp"
#include "topic_admin.hpp"

namespace shmbus {
namespace {

using detail::kNoChunk;

constexpr std::uint64_t kSnapshotMagic = 0x31'50'4e'53'42'4d'48'53ULL;  // "SHMBSNP1"
constexpr std::uint32_t kSnapshotVersion = 1;

struct SnapshotFileHeader {
  std::uint64_t magic;
  std::uint32_t version;
  std::uint32_t reserved;
  std::uint64_t type_id;
  std::uint64_t created_unix_ns;
  std::uint64_t message_count;
  std::uint64_t schema_bytes;  // the topic's recorded schema follows the header, padded to 8
  char topic[256];
};
static_assert(sizeof(SnapshotFileHeader) == 304);
static_assert(offsetof(SnapshotFileHeader, schema_bytes) == 40);
static_assert(offsetof(SnapshotFileHeader, topic) == 48);

struct SnapshotRecordHeader {
  std::uint64_t sequence;
  std::uint64_t publish_time_ns;
  std::uint32_t flags;          // 1 = typed
  std::uint32_t segment_count;
};
static_assert(sizeof(SnapshotRecordHeader) == 24);

// Buffered writer that reports the first failure with the file's name.
class FileWriter {
 public:
  FileWriter(int fd, std::filesystem::path path) : fd_(fd), path_(std::move(path)) {}
  void put(const void* data, std::size_t n) {
    const auto* p = static_cast<const char*>(data);
    while (n > 0) {
      ssize_t w = ::write(fd_, p, n);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) detail::throw_errno("writing snapshot " + path_.string());
      p += w;
      n -= static_cast<std::size_t>(w);
    }
  }
  void pad_to_8(std::size_t written) {
    static const char zeros[8]{};
    if (written % 8 != 0) put(zeros, 8 - written % 8);
  }

 private:
  int fd_;
  std::filesystem::path path_;
};

// A read-only snapshot mapping registered with the SIGBUS guard.
struct GuardedMapping {
  GuardedMapping(void* p, std::size_t n) : base(p), size(n) {}
  ~GuardedMapping() {
    if (registered) detail::SigbusGuard::unregister_mapping(base);
    munmap(base, size);
  }
  GuardedMapping(const GuardedMapping&) = delete;
  GuardedMapping& operator=(const GuardedMapping&) = delete;
  void* base;
  std::size_t size;
  bool registered = false;
  std::atomic<std::uint32_t> lost{0};
};

struct Held {
  std::uint64_t sequence;
  std::uint32_t chunk;
};

// Takes references to up to the holder's loan capacity of retained messages with sequence
// >= `from`, oldest first. Messages already overwritten are skipped, never half-read.
std::vector<Held> hold_batch(detail::PublisherCore& holder, std::uint64_t from, std::uint64_t tail) {
  detail::TopicMap& m = holder.map();
  std::map<std::uint64_t, std::uint32_t> found;
  auto take = [&](std::uint64_t seq, std::uint32_t chunk) {
    if (found.count(seq) || !holder.hold_existing(chunk)) return false;
    // Acquire: pairs with the release that published the sequence (see subscriber take).
    if (m.chunk(chunk).sequence.load(std::memory_order_acquire) != seq) {
      holder.return_chunk(chunk);  // reused meanwhile
      return true;
    }
    found.emplace(seq, chunk);
    return true;
  };
  // Messages subscribers still hold, older than the ring. Pinned entries hold no counted
  // reference and are left alone; a subscriber's remaining rows are skipped once one fails.
  struct Holds {
    detail::TopicMap& m;
    std::uint64_t from, tail;
    decltype(take)& take_held;
    std::uint32_t given_up = ~0u;  // the subscriber whose remaining rows we skip
    void operator()(const detail::HoldReference& r) {
      if (r.pinned || r.subscriber == given_up) return;
      std::uint64_t seq = m.chunk(r.chunk).sequence.load(std::memory_order_relaxed);
      if (seq >= from && seq < tail && seq < tail - std::min(tail, m.ring_capacity())) {
        if (!take_held(seq, r.chunk)) given_up = r.subscriber;
      }
    }
  };
  detail::walk_references(m, detail::SlotsWalked::active, Holds{m, from, tail, take});
  for (std::uint64_t seq = std::max(from, tail - std::min(tail, m.ring_capacity())); seq < tail; ++seq) {
    detail::RingSlot& rs = m.ring_slot(seq);
    if (rs.commit.load(std::memory_order_acquire) != seq + 1) continue;
    std::uint32_t chunk = rs.chunk.load(std::memory_order_acquire);
    if (!m.valid_chunk(chunk)) continue;
    if (!take(seq, chunk)) break;
  }
  std::vector<Held> out;
  for (auto [seq, chunk] : found) out.push_back({seq, chunk});
  return out;
}

// Writes one held message; false (and nothing written) when its payload pool cannot be mapped
// in this process (its publisher died before we mapped it, or is not ours to open).
bool write_message(FileWriter& w, detail::TopicMap& m, const Held& h) {
  detail::ChunkHeader& head = m.chunk(h.chunk);
  bool typed = (head.flags.load(std::memory_order_relaxed) & detail::kChunkFlagTyped) != 0;
  std::vector<std::uint32_t> chain;
  std::uint32_t c = h.chunk;
  std::uint32_t count = typed ? head.segment_count.load(std::memory_order_relaxed) : 1;
  for (std::uint32_t i = 0; i < count && i < m.config().max_segments && m.valid_chunk(c); ++i) {
    chain.push_back(c);
    c = m.chunk(c).next_segment.load(std::memory_order_relaxed);
  }
  std::vector<const std::byte*> data;
  std::vector<std::uint64_t> sizes;
  for (std::uint32_t chunk : chain) {
    data.push_back(m.payload(chunk));
    if (data.back() == nullptr) return false;
    sizes.push_back(std::min(m.chunk(chunk).used_bytes.load(std::memory_order_relaxed), m.capacity(chunk)));
  }
  SnapshotRecordHeader rec{h.sequence, head.publish_ns.load(std::memory_order_relaxed), typed ? 1u : 0u,
                           static_cast<std::uint32_t>(chain.size())};
  w.put(&rec, sizeof rec);
  w.put(sizes.data(), sizes.size() * sizeof(std::uint64_t));
  for (std::size_t i = 0; i < chain.size(); ++i) {
    w.put(data[i], sizes[i]);
    w.pad_to_8(sizes[i]);
  }
  return true;
}

}  // namespace

std::size_t save_snapshot(const Topic& topic, const std::filesystem::path& file) {
  detail::TopicMap& m = detail::TopicAccess::map(topic);
  std::filesystem::path tmp = file;
  tmp += ".partial";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) detail::throw_errno("creating snapshot " + tmp.string());
  std::size_t saved = 0;
  try {
    FileWriter w(fd, tmp);
    SnapshotFileHeader hdr{};
    hdr.magic = kSnapshotMagic;
    hdr.version = kSnapshotVersion;
    hdr.type_id = m.config().type_id;
    hdr.created_unix_ns = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
    std::strncpy(hdr.topic, m.config().name.c_str(), sizeof(hdr.topic) - 1);
    hdr.schema_bytes = m.config().schema.size();
    w.put(&hdr, sizeof hdr);  // message_count is patched at the end
    w.put(m.config().schema.data(), m.config().schema.size());
    w.pad_to_8(m.config().schema.size());
    detail::PublisherCore holder(topic, /*with_pool=*/false);
    // Relaxed: the ring's commit words (acquire) are what make each message visible.
    const std::uint64_t tail = m.control().tail.load(std::memory_order_relaxed);
    std::uint64_t from = 0;
    // At most what the topic can retain at once (ring plus every hold row): sequences read
    // from shared memory must not keep us here, however they are rewritten meanwhile.
    std::uint64_t budget = m.ring_capacity() + std::uint64_t{m.config().max_subscribers} * m.config().max_held_per_subscriber;
    for (;;) {
      std::vector<Held> batch = hold_batch(holder, from, tail);
      if (batch.empty()) break;
      if (batch.size() > budget) {
        for (const Held& h : batch) holder.return_chunk(h.chunk);
        break;
      }
      budget -= batch.size();
      for (const Held& h : batch) {
        if (write_message(w, m, h)) ++saved;
        holder.return_chunk(h.chunk);
      }
      from = batch.back().sequence + 1;
    }
    if (m.unusable()) throw Error(Errc::region_lost, m.describe() + ": region truncated during the snapshot");
    hdr.message_count = saved;
    if (pwrite(fd, &hdr, sizeof hdr, 0) != static_cast<ssize_t>(sizeof hdr) || fsync(fd) != 0) {
      detail::throw_errno("finishing snapshot " + tmp.string());
    }
  } catch (...) {
    close(fd);
    unlink(tmp.c_str());
    throw;
  }
  close(fd);
  if (rename(tmp.c_str(), file.c_str()) != 0) {
    unlink(tmp.c_str());
    detail::throw_errno("renaming snapshot into " + file.string());
  }
  return saved;
}

Snapshot Snapshot::open(const std::filesystem::path& file) {
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) detail::throw_errno("opening snapshot " + file.string());
  std::size_t size = detail::file_size(fd, file.string());
  const std::string what = "snapshot " + file.string();
  if (size < sizeof(SnapshotFileHeader)) {
    close(fd);
    throw Error(Errc::region_too_short, what + ": shorter than a snapshot header");
  }
  void* p = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (p == MAP_FAILED) detail::throw_errno("mapping " + what);
  // Under the SIGBUS guard like a region: a snapshot file truncated while we read it then
  // reads as zeros (and fails its checks) instead of killing the tool.
  auto guarded = std::make_shared<GuardedMapping>(p, size);
  detail::SigbusGuard::register_mapping(p, size, &guarded->lost);
  guarded->registered = true;
  Snapshot s;
  s.mapping_ = std::shared_ptr<void>(guarded, p);
  const auto* base = static_cast<const std::byte*>(p);
  SnapshotFileHeader hdr;
  std::memcpy(&hdr, base, sizeof hdr);
  if (hdr.magic != kSnapshotMagic) throw Error(Errc::not_a_region, what + ": not a shmbus snapshot (bad magic)");
  if (hdr.version != kSnapshotVersion) {
    throw Error(Errc::unknown_layout_version, what + ": snapshot format version " + std::to_string(hdr.version) +
                                                  ", this library reads version " + std::to_string(kSnapshotVersion));
  }
  if (std::memchr(hdr.topic, 0, sizeof hdr.topic) == nullptr) throw Error(Errc::region_corrupt, what + ": bad topic name");
  s.topic_name_ = hdr.topic;
  s.type_id_ = hdr.type_id;
  s.created_unix_ns_ = hdr.created_unix_ns;
  std::size_t off = sizeof hdr;
  auto need = [&](std::size_t n) {
    if (n > size - off) throw Error(Errc::region_too_short, what + ": truncated at byte " + std::to_string(off));
  };
  if (hdr.schema_bytes > size) throw Error(Errc::region_corrupt, what + ": schema larger than the file");
  need(detail::round_up(hdr.schema_bytes, 8));
  s.schema_.assign(reinterpret_cast<const char*>(base + off), hdr.schema_bytes);
  off += detail::round_up(hdr.schema_bytes, 8);
  for (std::uint64_t i = 0; i < hdr.message_count; ++i) {
    need(sizeof(SnapshotRecordHeader));
    SnapshotRecordHeader rec;
    std::memcpy(&rec, base + off, sizeof rec);
    off += sizeof rec;
    if (rec.segment_count == 0 || rec.segment_count > 1024) throw Error(Errc::region_corrupt, what + ": bad segment count");
    need(rec.segment_count * sizeof(std::uint64_t));
    std::vector<std::uint64_t> sizes(rec.segment_count);
    std::memcpy(sizes.data(), base + off, sizes.size() * sizeof(std::uint64_t));
    off += sizes.size() * sizeof(std::uint64_t);
    SnapshotMessage msg{rec.sequence, rec.publish_time_ns, rec.flags == 1, {}};
    for (std::uint64_t seg : sizes) {
      if (seg > size) throw Error(Errc::region_corrupt, what + ": segment larger than the file");
      need(detail::round_up(seg, 8));
      msg.segments.emplace_back(base + off, seg);
      off += detail::round_up(seg, 8);
    }
    s.messages_.push_back(std::move(msg));
  }
  return s;
}

}  // namespace shmbus
