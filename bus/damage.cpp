// detail::find_damage(): invariants of a topic region's mutable words that every honest
// participant keeps, whatever it was doing when it was killed. The daemon's sweep revokes a
// region that breaks one (daemon/daemon.cpp); the data path itself never relies on them (it
// bounds every value it reads instead), so this only decides when to start afresh. The
// metrics counters (PublisherSlot line 1, SubscriberSlot::malformed, FreeList::pops and
// high_water) have no invariant to check: any value is one an honest client could write, and
// readers clamp what they use (Topic::stats()).
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <optional>
#include <string>

#include "shmbus/topic.hpp"
#include "topic_admin.hpp"
#include "topic_map.hpp"

namespace shmbus {
namespace {

using detail::kHoldPinned;
using detail::kNoChunk;

std::string num(std::uint64_t v) { return std::to_string(v); }

// How far `tail` may run ahead of the newest commit. Honest publishers leave at most one
// claim each uncommitted, plus the sequences they gave up on after a bounded wait behind a
// wedged claimant (PublisherCore::wait_for_previous_lap(), one per second at most): the slack
// is generous, so that only a forged tail, not a stopped publisher, trips it.
std::uint64_t tail_slack(const detail::TopicMap& m) {
  return 4 * m.ring_capacity() + 4 * std::uint64_t{m.config().max_publishers} + 64;
}

}  // namespace

// The header up to `health`, then TopicControl up to `tail` (the configuration words).
constexpr std::size_t kHeaderConfigBytes = offsetof(detail::RegionHeader, health);
constexpr std::size_t kControlConfigBytes = offsetof(detail::TopicControl, tail);

namespace detail {

std::vector<std::byte> immutable_words(const Topic& topic) {
  const TopicMap& m = TopicAccess::map(topic);
  std::vector<std::byte> words(kHeaderConfigBytes + kControlConfigBytes);
  // Plain copies: nobody writes these words after creation; a scribbler that does is what the
  // comparison in find_damage() is for, and a torn copy of its write is damage all the same.
  std::memcpy(words.data(), &m.header(), kHeaderConfigBytes);
  std::memcpy(words.data() + kHeaderConfigBytes, &m.control(), kControlConfigBytes);
  return words;
}

std::optional<std::string> find_damage(const Topic& topic, const std::vector<std::byte>& immutable_baseline) {
  const TopicMap& m = TopicAccess::map(topic);
  const TopicConfig& c = m.config();
  // Lost (truncated under us): the SIGBUS guard's zero pages are nothing to judge. A health
  // word set by somebody else than the daemon that serves the region is a forged revoke.
  if (TopicAccess::map(topic).lost_flag()->load(std::memory_order_acquire) != 0) return std::nullopt;
  if (!immutable_baseline.empty()) {
    const std::vector<std::byte> now = immutable_words(topic);
    const auto [at, _] = std::mismatch(now.begin(), now.end(), immutable_baseline.begin(), immutable_baseline.end());
    if (at != now.end()) {
      const std::size_t i = static_cast<std::size_t>(at - now.begin());
      return i < kHeaderConfigBytes ? "header: configuration byte " + num(i) + " changed after creation"
                                    : "topic configuration: byte " + num(i - kHeaderConfigBytes) +
                                          " of the control section changed after creation";
    }
  }
  if (const std::uint32_t health = m.header().health.load(std::memory_order_acquire); health != detail::kRegionHealthy) {
    return "header: health word " + num(health) + " (marked revoked, but not by the daemon that serves it)";
  }
  // Acquire, every load below: what a slot recorded before its state, claim or cursor store
  // (release) is seen with it. Claims and cursors first, commit words next, `tail` last: each
  // is at most the tail read after it.
  std::uint64_t highest_claim = 0;  // sequence + 1
  std::uint64_t highest_cursor = 0;
  for (std::uint32_t p = 0; p < c.max_publishers; ++p) {
    const detail::PublisherSlot& s = m.publisher(p);
    const std::uint32_t state = s.state.load(std::memory_order_acquire);
    if (state > detail::kSlotReclaiming) return "publisher slot " + num(p) + ": state " + num(state) + " out of range";
    for (std::uint32_t l = 0; l < c.max_loans_per_publisher; ++l) {
      const std::uint32_t e = m.loans_of(p)[l].load(std::memory_order_acquire);
      if (e != kNoChunk && !m.valid_chunk(e)) {
        return "publisher slot " + num(p) + ": loan entry " + num(l) + " names chunk " + num(e) + " of " +
               num(m.total_chunks());
      }
    }
    const std::uint32_t kept = s.kept_chunk.load(std::memory_order_acquire);
    if (kept != kNoChunk && !m.valid_chunk(kept)) return "publisher slot " + num(p) + ": kept chunk " + num(kept) + " out of range";
    if (state == detail::kSlotFree) continue;
    const std::uint64_t claim = s.claimed_plus1.load(std::memory_order_acquire);
    if (claim != ~0ULL) highest_claim = std::max(highest_claim, claim);
  }
  for (std::uint32_t i = 0; i < c.max_subscribers; ++i) {
    const detail::SubscriberSlot& s = m.subscriber(i);
    const std::uint32_t state = s.state.load(std::memory_order_acquire);
    if (state > detail::kSlotReclaiming) return "subscriber slot " + num(i) + ": state " + num(state) + " out of range";
    for (std::uint32_t h = 0; h < c.max_held_per_subscriber; ++h) {
      const std::uint32_t e = m.holds_of(i)[h].load(std::memory_order_acquire);
      if (e != kNoChunk && !m.valid_chunk(e & ~kHoldPinned)) {
        return "subscriber slot " + num(i) + ": hold entry " + num(h) + " names chunk " + num(e & ~kHoldPinned) +
               " of " + num(m.total_chunks());
      }
    }
    if (state == detail::kSlotActive) highest_cursor = std::max(highest_cursor, s.cursor.load(std::memory_order_acquire));
  }
  const std::uint64_t capacity = m.ring_capacity();
  std::uint64_t highest_commit = 0;  // sequence + 1
  for (std::uint64_t i = 0; i < capacity; ++i) {
    const detail::RingSlot& rs = m.ring_slot(i);
    const std::uint64_t commit = rs.commit.load(std::memory_order_acquire);
    if (commit != 0 && ((commit - 1) & (capacity - 1)) != i) {
      return "ring slot " + num(i) + ": commit word names sequence " + num(commit - 1) + ", which belongs to slot " +
             num((commit - 1) & (capacity - 1));
    }
    const std::uint32_t chunk = rs.chunk.load(std::memory_order_acquire);
    if (chunk != kNoChunk && !m.valid_chunk(chunk)) {
      return "ring slot " + num(i) + ": chunk index " + num(chunk) + " of " + num(m.total_chunks());
    }
    highest_commit = std::max(highest_commit, commit);
  }
  const std::uint64_t tail = m.control().tail.load(std::memory_order_acquire);
  if (highest_commit > tail) return "tail " + num(tail) + " is below committed sequence " + num(highest_commit - 1);
  if (highest_claim > tail) return "tail " + num(tail) + " is below claimed sequence " + num(highest_claim - 1);
  if (highest_cursor > tail) return "tail " + num(tail) + " is below subscriber cursor " + num(highest_cursor);
  if (tail - highest_commit > tail_slack(m)) {
    return "tail " + num(tail) + " is " + num(tail - highest_commit) + " sequences beyond the newest commit (" +
           num(highest_commit) + "), more than honest publishers leave (" + num(tail_slack(m)) + ")";
  }
  return std::nullopt;
}

}  // namespace detail
}  // namespace shmbus
