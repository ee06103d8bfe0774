// TopicMap's payload pools (layout.hpp, "Payload pools"): building a pool's chunk lists,
// creating this publisher's pool, and this process's views of other publishers' pools.
#include "topic_map.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <mutex>

#include "process_identity.hpp"
#include "region.hpp"

namespace shmbus::detail {

void TopicMap::initialise_pool(std::uint32_t pool) noexcept {
  for (std::size_t ci = 0; ci < classes_.size(); ++ci) {
    const LocalClass& lc = classes_[ci];
    const std::uint32_t first = pool * chunks_per_pool_ + lc.first_chunk;
    for (std::uint32_t i = 0; i < lc.chunk_count; ++i) {
      ChunkHeader& ch = chunks_[first + i];
      ch.size_class = static_cast<std::uint32_t>(ci);
      ch.sequence.store(kNoSequence, std::memory_order_relaxed);
      ch.next_segment.store(kNoChunk, std::memory_order_relaxed);
      ch.next_free.store(i + 1 < lc.chunk_count ? first + i + 1 : kNoChunk, std::memory_order_relaxed);
    }
    // Relaxed: published by the release store of `initialised` below; only the pool's owner
    // pops, and nobody can push a chunk of a pool that never had one.
    free_list(pool, ci).head.store(first, std::memory_order_relaxed);
    free_list(pool, ci).pops.store(0, std::memory_order_relaxed);  // the tag starts at 0 too
    free_list(pool, ci).high_water.store(0, std::memory_order_relaxed);
  }
  // Release: whoever reads initialised == 1 (acquire) sees the headers and lists.
  pool_slots_[pool].initialised.store(1, std::memory_order_release);
}

std::shared_ptr<PoolMapping> TopicMap::own_pool(std::uint32_t slot) {
  std::lock_guard lock(pools_mutex_);
  if (!external_pools_) return current_[0];
  PoolSlot& ps = pool_slots_[slot];
  // We own publisher slot `slot`, so nobody else writes its pool slot. Relaxed: our own word.
  const std::uint32_t generation = ps.generation.load(std::memory_order_relaxed) + 1;
  std::shared_ptr<PoolMapping> m = create_pool(config_.name, slot, generation, pool_bytes_);
  struct stat st {};
  if (fstat(m->fd, &st) != 0) throw_errno("fstat of a new payload pool of " + describe());
  // Sequence lock (see PoolSlot): odd while we rewrite the fields. A previous owner killed
  // mid-write left it odd already; `| 1` keeps the parity right either way.
  const std::uint32_t odd = ps.seq.load(std::memory_order_relaxed) | 1;  // relaxed: our own word
  ps.seq.store(odd, std::memory_order_relaxed);
  // Release fence: a reader that sees any field below also sees the odd sequence.
  std::atomic_thread_fence(std::memory_order_release);
  ps.owner_pid.store(getpid(), std::memory_order_relaxed);
  ps.owner_fd.store(m->fd, std::memory_order_relaxed);
  ps.inode.store(static_cast<std::uint64_t>(st.st_ino), std::memory_order_relaxed);
  record_owner(ps.owner);
  ps.generation.store(generation, std::memory_order_relaxed);
  // Release: a reader that sees the new even sequence (acquire) sees every field above.
  ps.seq.store(odd + 1, std::memory_order_release);
  if (!pool_initialised(slot)) initialise_pool(slot);
  install_view(m);
  return m;
}

void TopicMap::install_view(std::shared_ptr<PoolMapping> m) {
  const std::uint32_t pool = m->pool;
  if (current_[pool]) retired_.push_back(std::move(current_[pool]));
  current_[pool] = std::move(m);
  // Release: the hot path (acquire) sees the mapping's fields.
  views_[pool].store(current_[pool].get(), std::memory_order_release);
  drop_unreferenced_views();
}

void TopicMap::drop_unreferenced_views() {
  // A replaced view may still be read through: a sample taken from it, or a message of its
  // generation still queued for a subscriber of this process that lags behind. Keep it while
  // any chunk of its pool and generation is referenced at all, from any process.
  std::erase_if(retired_, [this](const std::shared_ptr<PoolMapping>& v) {
    const std::uint32_t first = v->pool * chunks_per_pool_;
    for (std::uint32_t i = first; i < first + chunks_per_pool_; ++i) {
      // Acquire: a reference taken before we look is seen here, so its reader keeps the view.
      if (chunks_[i].refs.load(std::memory_order_acquire) != 0 &&
          chunks_[i].pool_generation.load(std::memory_order_relaxed) == v->generation) {
        return false;
      }
    }
    return true;
  });
}

namespace {

// A consistent copy of a PoolSlot, read under its sequence lock; false if it kept changing.
struct PoolSlotCopy {
  std::uint32_t generation;
  std::int32_t pid;
  std::int32_t fd;
  std::uint64_t inode;
};

bool read_pool_slot(const PoolSlot& ps, PoolSlotCopy& out) {
  for (int attempt = 0; attempt < 1000; ++attempt) {
    // Acquire: pairs with the owner's release of the even sequence.
    const std::uint32_t before = ps.seq.load(std::memory_order_acquire);
    if (before & 1) continue;
    out = {ps.generation.load(std::memory_order_relaxed), ps.owner_pid.load(std::memory_order_relaxed),
           ps.owner_fd.load(std::memory_order_relaxed), ps.inode.load(std::memory_order_relaxed)};
    // Acquire fence: the loads above happen before the re-check below.
    std::atomic_thread_fence(std::memory_order_acquire);
    if (ps.seq.load(std::memory_order_relaxed) == before) return true;
  }
  return false;
}

}  // namespace

std::byte* TopicMap::resolve_pool(std::uint32_t pool, std::uint32_t generation) noexcept {
  if (pool >= pool_count_) return nullptr;
  try {
    PoolSlotCopy slot{};
    bool slot_names_it = false;  // the pool slot still names this generation's memfd
    std::shared_ptr<const PoolFdSource> source;
    {
      std::lock_guard lock(pools_mutex_);
      if (current_[pool] && current_[pool]->generation == generation) return current_[pool]->base;
      for (const auto& v : retired_) {
        if (v->pool == pool && v->generation == generation) return v->base;
      }
      if (!external_pools_) return nullptr;  // the region's own pool has generation 0 only
      if (std::find(unreachable_.begin(), unreachable_.end(), std::pair{pool, generation}) != unreachable_.end()) {
        return nullptr;
      }
      slot_names_it = read_pool_slot(pool_slots_[pool], slot) && slot.generation == generation;
      source = pool_source_;
    }
    // Not under pools_mutex_: asking the daemon runs on a client's event loop thread, which
    // takes that mutex itself when it registers pools.
    const std::string what = "payload pool " + std::to_string(pool) + " (generation " + std::to_string(generation) +
                             ") of " + describe();
    // The bus daemon first, whatever the slot says now: it vouched for who created the pool,
    // and keeps generations the slot no longer names while any message of theirs is queued.
    int fd = source ? (*source)(pool, generation) : kPoolUnknownHere;
    std::shared_ptr<PoolMapping> m;
    if (fd >= 0) {
      // The slot's inode is checked when the slot still names this generation; an older
      // generation's memfd is the one the daemon checked against the slot when it took it.
      m = open_pool(fd, pool, generation, slot_names_it ? std::optional(slot.inode) : std::nullopt, pool_bytes_, what);
    } else if (fd == kPoolUnknownHere && slot_names_it) {
      // No daemon: the creator's descriptor, opened anew read-only. Works for processes of our
      // uid (the kernel's ptrace read check); the seals make it read-only for everyone anyway.
      m = open_pool(open_slot_named_pool(slot.pid, slot.fd, slot.inode, pool_bytes_, what), pool, generation,
                    slot.inode, pool_bytes_, what);
    } else if (slot_names_it) {
      return nullptr;  // refused by the daemon for now (a publisher may register late): ask again
    } else {
      // A generation replaced in its slot by a newer publisher's that the daemon refused (or,
      // without one, that this process never mapped while its creator lived): its memfd is out
      // of reach of this process for good.
      std::lock_guard lock(pools_mutex_);
      if (unreachable_.size() >= 64) unreachable_.erase(unreachable_.begin());
      unreachable_.emplace_back(pool, generation);
      return nullptr;
    }
    std::lock_guard lock(pools_mutex_);
    if (current_[pool] && current_[pool]->generation == generation) return current_[pool]->base;  // raced
    // A view older than the one we hold stays retired; a newer one becomes current.
    if (current_[pool] && current_[pool]->generation > generation) {
      retired_.push_back(m);
      return m->base;
    }
    std::byte* base = m->base;
    install_view(std::move(m));
    return base;
  } catch (...) {
    return nullptr;  // an unreadable pool reads as "message lost", never as a crash
  }
}

std::byte* TopicMap::payload(std::uint32_t chunk) noexcept {
  if (!valid_chunk(chunk)) return nullptr;
  std::byte* base = pool_base(pool_of(chunk), chunks_[chunk].pool_generation.load(std::memory_order_relaxed));
  return base == nullptr ? nullptr : payload_at(base, chunk);
}

std::shared_ptr<PoolMapping> TopicMap::current_pool(std::uint32_t pool) {
  std::lock_guard lock(pools_mutex_);
  return pool < pool_count_ ? current_[pool] : nullptr;
}

void TopicMap::check_pool_fd(std::uint32_t pool, std::uint32_t generation, int fd, pid_t creator) const {
  const std::string what = "payload pool " + std::to_string(pool) + " of " + describe();
  if (!external_pools_) throw Error(Errc::invalid_config, what + ": this topic keeps its payload in its region");
  if (pool >= pool_count_) throw Error(Errc::invalid_config, what + ": no such pool");
  PoolSlotCopy slot{};
  if (!read_pool_slot(pool_slots_[pool], slot)) throw Error(Errc::region_corrupt, what + ": pool slot keeps changing");
  if (slot.generation != generation) {
    throw Error(Errc::invalid_config, what + ": generation " + std::to_string(generation) + " is not the pool's current one (" +
                                          std::to_string(slot.generation) + ")");
  }
  if (creator != 0 && slot.pid != creator) {
    throw Error(Errc::invalid_config, what + ": created by pid " + std::to_string(slot.pid) + ", not by pid " +
                                          std::to_string(creator));
  }
  check_pool_memfd(fd, slot.inode, pool_bytes_, what);
}

bool TopicMap::pool_in_use(std::uint32_t pool, std::uint32_t generation) const noexcept {
  if (pool >= pool_count_) return false;
  // Acquire: as in drop_unreferenced_views().
  if (pool_slots_[pool].generation.load(std::memory_order_acquire) == generation) return true;
  const std::uint32_t first = pool * chunks_per_pool_;
  for (std::uint32_t i = first; i < first + chunks_per_pool_; ++i) {
    if (chunks_[i].refs.load(std::memory_order_acquire) != 0 &&
        chunks_[i].pool_generation.load(std::memory_order_relaxed) == generation) {
      return true;
    }
  }
  return false;
}

void TopicMap::set_pool_fd_source(PoolFdSource source) {
  auto shared = std::make_shared<const PoolFdSource>(std::move(source));
  std::lock_guard lock(pools_mutex_);
  pool_source_ = std::move(shared);
}

std::shared_ptr<PoolMapping> TopicMap::mapping_containing(const void* p) {
  std::lock_guard lock(pools_mutex_);
  for (const auto& v : current_) {
    if (v && v->contains(p)) return v;
  }
  for (const auto& v : retired_) {
    if (v->contains(p)) return v;
  }
  return nullptr;
}

}  // namespace shmbus::detail
