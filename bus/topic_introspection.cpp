// shmbus::Topic's introspection for tools: the region header and sections (region_info,
// read_region_header), where each busy chunk is (busy_chunks), and usage statistics (stats,
// describe_pool). Best-effort pictures of a moving system; none of it takes a lock.
#include "shmbus/topic.hpp"

#include <algorithm>
#include <cstring>
#include <fcntl.h>
#include <sstream>
#include <string>
#include <vector>
#include <unistd.h>

#include "open_region.hpp"
#include "reference_walk.hpp"
#include "region.hpp"
#include "topic_map.hpp"

namespace shmbus {

using namespace detail;

namespace {

const char* const kSectionNames[kSectionCount] = {"control", "classes", "publishers", "subscribers",
                                                  "loans",   "holds",   "ring",       "chunks",
                                                  "payload", "schema",  "pools",      "free lists"};

}  // namespace

Topic::RegionInfo Topic::read_region_header(const std::filesystem::path& path, std::chrono::milliseconds lease_wait) {
  int fd = open_region_path(path, O_RDONLY, lease_wait);
  RegionHeader h;  // a plain buffer here: read, never mapped, so a truncated file cannot fault
  ssize_t n = pread(fd, &h, sizeof h, 0);
  int saved = errno;
  close(fd);
  if (n < 0) {
    errno = saved;
    throw_errno("reading the header of region file " + path.string());
  }
  if (static_cast<std::size_t>(n) < sizeof h) {
    throw Error(Errc::region_too_short, "region file " + path.string() + ": " + std::to_string(n) +
                                           " bytes, shorter than the " + std::to_string(sizeof h) + "-byte region header");
  }
  RegionInfo info;
  info.layout_version = h.layout_version.load(std::memory_order_relaxed);
  info.anonymous = h.kind == RegionKind::kAnonymous;
  info.size = h.region_size;
  info.bus_name = std::string(h.bus_name, strnlen(h.bus_name, sizeof h.bus_name));
  info.bus_epoch = h.bus_epoch;
  info.healthy = false;
  info.revoked = h.health.load(std::memory_order_relaxed) == kRegionRevoked;
  info.seals = -1;
  for (std::uint32_t i = 0; i < kSectionCount; ++i) info.sections.push_back({kSectionNames[i], h.sections[i].offset, h.sections[i].size});
  return info;
}

Topic::RegionInfo Topic::region_info() const {
  // The header's immutable facts from the copy validated at open; layout_version is a live word.
  const HeaderFacts& h = map_->facts().header;
  RegionInfo info;
  info.layout_version = map_->header().layout_version.load(std::memory_order_acquire);
  info.anonymous = h.kind == RegionKind::kAnonymous;
  info.size = h.region_size;
  info.bus_name = std::string(h.bus_name, strnlen(h.bus_name, sizeof h.bus_name));
  info.bus_epoch = h.bus_epoch;
  info.healthy = !map_->unusable();
  info.revoked = revoked();
  info.seals = fcntl(map_->fd(), F_GET_SEALS);
  for (std::uint32_t i = 0; i < kSectionCount; ++i) info.sections.push_back({kSectionNames[i], h.sections[i].offset, h.sections[i].size});
  for (std::uint32_t p = 0; p < map_->pool_count(); ++p) {
    if (!map_->pool_initialised(p)) continue;
    const PoolSlot& ps = map_->pool_slot(p);
    // Relaxed: a snapshot for tools; a torn read shows a mix of two owners, nothing worse.
    info.pools.push_back({p, ps.generation.load(std::memory_order_relaxed),
                          map_->external_pools() ? ps.owner_pid.load(std::memory_order_relaxed) : 0,
                          map_->pool_bytes(), map_->external_pools()});
  }
  return info;
}

std::vector<Topic::ChunkInfo> Topic::busy_chunks() const {
  TopicMap& m = *map_;
  std::vector<std::string> where(m.total_chunks());
  // Relaxed pids and counts: a best-effort picture of a moving system, never a lock.
  struct Where {
    TopicMap& m;
    std::vector<std::string>& where;
    void operator()(const RingReference& r) const {
      if (r.commit != 0) where[r.chunk] = "in queue/history as seq " + std::to_string(r.commit - 1);
    }
    void operator()(const LoanReference& r) const {
      where[r.chunk] = (r.kept ? "kept for the next loan of publisher slot " : "loaned by publisher slot ") +
                       std::to_string(r.publisher) + " (pid " +
                       std::to_string(m.publisher(r.publisher).pid.load(std::memory_order_relaxed)) + ")";
    }
    void operator()(const HoldReference& r) const {
      std::string holder = "held by subscriber slot " + std::to_string(r.subscriber) + " (pid " +
                           std::to_string(m.subscriber(r.subscriber).pid.load(std::memory_order_relaxed)) + ")";
      if (r.pinned) holder += " pinned by its cursor";
      where[r.chunk] = where[r.chunk].empty() ? holder : where[r.chunk] + ", " + holder;
    }
  };
  walk_references(m, SlotsWalked::active, Where{m, where});
  std::vector<ChunkInfo> out;
  for (std::uint32_t i = 0; i < m.total_chunks(); ++i) {
    std::uint32_t word = m.chunk(i).refs.load(std::memory_order_relaxed);
    if (word == 0) continue;
    std::uint32_t refs = (word & ~kRingRef) + ((word & kRingRef) ? 1 : 0);  // the ring's counts as one
    std::uint64_t seq = m.chunk(i).sequence.load(std::memory_order_relaxed);
    out.push_back({i, m.class_of(i).chunk_size, refs, seq, where[i].empty() ? "referenced (segment of a message, or in flight)" : where[i]});
  }
  return out;
}

TopicStats Topic::stats() const {
  TopicMap& m = *map_;
  TopicStats st;
  // Relaxed counters (the walk's own loads are acquire): statistics are a best-effort
  // picture of a moving system.
  std::uint64_t tail = m.control().tail.load(std::memory_order_relaxed);
  st.published = tail;
  // 0 free/unknown, 1 ring, 2 loaned, 3 held, 4 kept by a publisher for its next loan (free)
  std::vector<int> owner(m.total_chunks(), 0);
  struct Usage {
    TopicMap& m;
    std::uint64_t tail;
    std::vector<int>& owner;
    std::vector<ClientSlotInfo>& clients;
    void operator()(const RingReference& r) const {
      if (r.commit != 0) owner[r.chunk] = 1;
    }
    void operator()(const SlotReference& r) const {
      if (r.role == SlotReference::Role::publisher) {
        const PublisherSlot& s = m.publisher(r.slot);
        clients.push_back({ClientSlotInfo::Role::publisher, r.slot, s.pid.load(std::memory_order_relaxed),
                           s.published.load(std::memory_order_relaxed), 0, 0, {}, {}});
        ClientSlotInfo::Counters& c = clients.back().counters;
        c.bytes = s.published_bytes.load(std::memory_order_relaxed);
        c.refused = s.refused.load(std::memory_order_relaxed);
        c.timed_out = s.timed_out.load(std::memory_order_relaxed);
        c.loan_pool_exhausted = s.loan_pool_exhausted.load(std::memory_order_relaxed);
        c.loan_too_many_loans = s.loan_too_many_loans.load(std::memory_order_relaxed);
        c.loan_too_large = s.loan_too_large.load(std::memory_order_relaxed);
      } else {
        const SubscriberSlot& s = m.subscriber(r.slot);
        const std::uint64_t cursor = s.cursor.load(std::memory_order_relaxed);
        clients.push_back({ClientSlotInfo::Role::subscriber, r.slot, s.pid.load(std::memory_order_relaxed),
                           s.taken.load(std::memory_order_relaxed), s.lost.load(std::memory_order_relaxed),
                           tail - std::min(tail, cursor), {}, {}});
        clients.back().counters.malformed = s.malformed.load(std::memory_order_relaxed);
      }
    }
    // Rows come right after their slot: they belong to the client pushed last.
    void operator()(const LoanReference& r) const {
      if (r.kept) {
        owner[r.chunk] = 4;  // only its publisher loans from its pool: as good as free
      } else {
        owner[r.chunk] = 2;
        clients.back().chunks.push_back(r.chunk);
      }
    }
    void operator()(const HoldReference& r) const {
      owner[r.chunk] = 3;
      clients.back().chunks.push_back(r.chunk);
    }
  };
  walk_references(m, SlotsWalked::active, Usage{m, tail, owner, st.clients});
  // Summed over the pools that exist (one per publisher that ever registered, in an
  // anonymous region; the file's one pool otherwise).
  st.high_water_kept = m.external_pools();
  for (std::size_t ci = 0; ci < m.classes().size(); ++ci) {
    const LocalClass& lc = m.classes()[ci];
    SizeClassUsage u{lc.chunk_size, 0, 0, 0, 0, 0, 0};
    for (std::uint32_t p = 0; p < m.pool_count(); ++p) {
      if (!m.pool_initialised(p)) continue;
      u.total += lc.chunk_count;
      if (st.high_water_kept) {
        // Written by the pool's owner, so untrusted here: clamped to the class's size.
        const std::uint32_t hw = m.pool_high_water(p, ci);
        u.high_water = std::max(u.high_water, std::min(hw, lc.chunk_count));
      }
      const std::uint32_t first = p * m.chunks_per_pool() + lc.first_chunk;
      for (std::uint32_t i = first; i < first + lc.chunk_count; ++i) {
        if (m.chunk(i).refs.load(std::memory_order_relaxed) == 0 || owner[i] == 4) ++u.free;
        else if (owner[i] == 1) ++u.in_ring;
        else if (owner[i] == 2) ++u.loaned;
        else if (owner[i] == 3) ++u.held;
      }
    }
    st.classes.push_back(u);
  }
  return st;
}

std::string Topic::describe_pool() const {
  TopicStats st = stats();
  std::ostringstream o;
  o << map_->describe() << " pool:";
  for (const SizeClassUsage& u : st.classes) {
    o << "\n  class " << u.chunk_size << " B: " << u.total << " chunks, " << u.free << " free, " << u.in_ring
      << " in queue/history, " << u.loaned << " loaned by publishers, " << u.held << " held by subscribers";
  }
  for (const ClientSlotInfo& ci : st.clients) {
    if (ci.chunks.empty()) continue;
    o << "\n  " << (ci.role == ClientSlotInfo::Role::publisher ? "publisher" : "subscriber") << " slot " << ci.slot
      << " (pid " << ci.pid << ") holds " << ci.chunks.size() << " chunks";
  }
  return o.str();
}

}  // namespace shmbus
