// What the library itself, the bus daemon (daemon/) and the control client (bus/control/)
// do with a shmbus::Topic beyond its public surface: reach its TopicMap, hand pools to and
// check them at the daemon, revoke, reclaim one slot, audit references and judge damage.
// Internal: not installed (cmake/install.cmake), so applications cannot depend on it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

#include "shmbus/raw.hpp"
#include "shmbus/topic.hpp"

namespace shmbus::detail {

class TopicMap;
class PublisherCore;
class SubscriberCore;

// The way in to a Topic's region and a publisher's or subscriber's core (friends of Topic,
// RawPublisher and RawSubscriber).
struct TopicAccess {
  static TopicMap& map(const Topic& topic) noexcept { return *topic.map_; }
  static const std::shared_ptr<TopicMap>& shared_map(const Topic& topic) noexcept { return topic.map_; }
  // The current core; for a resumable publisher whose region is lost, first moves to the
  // fresh region (typed loans come through here).
  static PublisherCore& core(RawPublisher& publisher) noexcept { return publisher.core(); }
  static SubscriberCore& core(RawSubscriber& subscriber) noexcept { return subscriber.core(); }
};

// ---- payload pools and the bus daemon (docs/internals.md, "Least privilege") ----

// The memfd of pool `pool` when this process created it (one of its publishers owns the
// pool's slot) and it is still the pool's current generation; for handing to the daemon.
struct PoolHandle {
  int fd;
  std::uint32_t generation;
};
std::optional<PoolHandle> own_pool(const Topic& topic, std::uint32_t pool);
// Daemon: throws Error naming the mismatch unless `fd` is the memfd pool slot `pool` names
// at `generation` (inode), created by process `creator` (0: not checked), of the topic's
// pool size, sealed read-only.
void check_pool_fd(const Topic& topic, std::uint32_t pool, std::uint32_t generation, int fd, pid_t creator);
// Daemon: whether pool `pool` at `generation` may still be read: it is the pool's current
// generation, or a chunk of it is still referenced (queued, held).
bool pool_in_use(const Topic& topic, std::uint32_t pool, std::uint32_t generation);

// Bus daemon only: marks the region revoked in its header, for every process that maps it.
// From then on every call on it fails with Errc::region_lost (region_info().revoked says
// why). Called when another process opens the backing file for writing or truncates it.
void revoke(const Topic& topic) noexcept;

// ---- recovery (bus/topic_recovery.cpp) ----

// Topic::reclaim_process() for one publisher or subscriber slot (as reported by
// RawPublisher::slot() / RawSubscriber::slot()), when the registration `generation` still
// matches (so a slot already freed and taken by someone else is left alone). Returns false
// when it did not match or the slot was not active. For the daemon, which knows each
// connection's slots.
bool reclaim_slot(const Topic& topic, ClientSlotInfo::Role role, std::uint32_t slot, std::uint64_t generation);
// After a crash inside a loan or take, a chunk reference may be held that no row records.
// The reclaims audit the counts and release such references, but only when no live process
// is mid-operation; this retries that audit (the daemon's sweep calls it). Returns false
// when the topic was too busy to audit now.
bool audit_references(const Topic& topic);
// Registration generation of a slot (see reclaim_slot()). Throws Error(misuse) for a slot
// index out of range.
std::uint64_t publisher_generation(const Topic& topic, std::uint32_t slot);
std::uint64_t subscriber_generation(const Topic& topic, std::uint32_t slot);

// ---- damage (bus/damage.cpp) ----

// The first broken invariant of the region's mutable words that no honest participant can
// leave (a tail far beyond every commit, a commit word in the wrong ring slot, a ring slot,
// loan or hold entry naming no chunk, a slot state out of range...), named with the field;
// nullopt when it finds none. Transient states of live or killed participants (holes, claims
// in flight) are not damage. Reads only; O(ring + slots + rows). The daemon's sweep revokes
// a damaged topic and serves a fresh one. With `immutable_baseline` (immutable_words() of
// the region when it was sound), a changed configuration word is damage too.
std::optional<std::string> find_damage(const Topic& topic, const std::vector<std::byte>& immutable_baseline = {});
// The bytes of the region's configuration words, which nobody writes after creation: the
// header up to its health word and the topic configuration at the head of the control
// section. Located through this process's validated view, not the header's offsets.
std::vector<std::byte> immutable_words(const Topic& topic);

}  // namespace shmbus::detail
