// shmbus::Topic: a process's handle to one topic's shared region.
//
// A topic lives in one shared region: a sealed memfd (anonymous) or a file in the bus
// directory. Topic::create() makes and initialises it (the daemon does this for clients);
// Topic::open_fd()/open_file() map an existing one after checking its header: magic, layout
// version, ABI, size, section table and, for memfds, seals.
//
// Thread safety: a Topic is a cheap, copyable, shared handle; all methods are thread-safe.
// The mapping stays valid while any Topic, publisher, subscriber, loan or sample refers to it.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

#include "shmbus/config.hpp"
#include "shmbus/error.hpp"

namespace shmbus {

namespace detail {
class TopicMap;
struct TopicAccess;  // bus/topic_admin.hpp: the library's and the daemon's way in
}

// A snapshot of one client slot, for tools and clean-up.
struct ClientSlotInfo {
  enum class Role { publisher, subscriber } role;
  std::uint32_t slot;
  pid_t pid;
  std::uint64_t messages;   // published, or taken
  std::uint64_t lost;       // subscriber only
  std::uint64_t backlog;    // subscriber only: messages published but not yet taken
  std::vector<std::uint32_t> chunks;  // chunks it holds (loaned or taken)
  // The slot's metrics counters (docs/metrics.md), since it registered. Read from shared
  // memory that any client may write: a statistic, never a fact to act on.
  struct Counters {
    std::uint64_t bytes = 0;                // publisher: payload bytes published
    std::uint64_t refused = 0;              // publisher: publishes refused (fail_publish, queue full)
    std::uint64_t timed_out = 0;            // publisher: publishes timed out (block)
    std::uint64_t loan_pool_exhausted = 0;  // publisher: loans failing for want of a free chunk
    std::uint64_t loan_too_many_loans = 0;  // publisher: loans failing, loan row full
    std::uint64_t loan_too_large = 0;       // publisher: loans failing, above every size class
    std::uint64_t malformed = 0;            // subscriber: taken messages that failed validation
  } counters;
};

struct SizeClassUsage {
  std::uint64_t chunk_size;
  std::uint32_t total;
  std::uint32_t free;
  std::uint32_t in_ring;    // referenced by the queue/history
  std::uint32_t loaned;     // held by publishers
  std::uint32_t held;       // held by subscribers
  // The most chunks of this class one pool had out at once (the highest over the pools: each
  // is one publisher's, and a loan fails when its own pool runs out). Kept only with external
  // pools (TopicStats::high_water_kept); at most `total` of one pool.
  std::uint32_t high_water = 0;
};

struct TopicStats {
  std::uint64_t published;  // sequence of the next message
  std::vector<SizeClassUsage> classes;
  std::vector<ClientSlotInfo> clients;
  // False for a region whose one pool all publishers share (payload in the region, file
  // regions): several poppers, so no pop count is kept and high_water stays 0.
  bool high_water_kept = false;
};

class Topic {
 public:
  // Creates and initialises a new topic region. Throws Error (invalid_config, no_space,
  // system_error) naming what was wrong.
  static Topic create(const TopicConfig& config, const RegionOptions& options = {});
  // Maps the region behind `fd` (the fd is duplicated; the caller keeps its own). `file`:
  // the path of a file-backed region's file, when known (for messages and Topic::path()).
  static Topic open_fd(int fd, const std::filesystem::path& file = {});
  // Maps a file-backed region. Throws not_a_region, unknown_layout_version, abi_mismatch,
  // region_too_short or region_corrupt, with the path in the message.
  // The bus daemon holds a write lease on the files it serves; opening one breaks that lease.
  // The open never blocks on it: it is non-blocking and retried every 10 ms for up to
  // `lease_wait` (a live daemon answers in milliseconds). When the holder does not answer (a
  // daemon killed while clients still map the file: its lease stays on their shared file
  // description until /proc/sys/fs/lease-break-time runs out) it throws lease_held saying so.
  static Topic open_file(const std::filesystem::path& path,
                         std::chrono::milliseconds lease_wait = std::chrono::milliseconds(2000));
  // True when a file lease is held on region file `path`: a bus daemon serves it (or a killed
  // one's clients still share it). Use such a topic through the daemon (Client::open_topic):
  // opening the file for writing breaks the daemon's lease, and the daemon then revokes the
  // region for everybody. Reads /proc/locks; never opens the file.
  static bool file_is_served(const std::filesystem::path& path);
  // Maps a region file read-only, for inspection (stats(), describe_pool()): it never writes
  // to the bus. Publishers, subscribers and snapshots refuse such a Topic. Lease waiting as for
  // open_file(); a read-only open does not revoke the region, the daemon re-arms its lease
  // once this mapping is gone.
  static Topic inspect_file(const std::filesystem::path& path,
                            std::chrono::milliseconds lease_wait = std::chrono::milliseconds(2000));
  // Header facts of the region, for tools.
  struct RegionInfo {
    std::uint32_t layout_version;
    bool anonymous;
    std::uint64_t size;
    std::string bus_name;
    std::uint64_t bus_epoch;
    bool healthy;      // not revoked or lost
    bool revoked;      // the bus daemon revoked it: its file is being rewritten or truncated
    int seals;         // F_GET_SEALS, or -1 for a file
    struct SectionInfo { std::string name; std::uint64_t offset, size; };
    std::vector<SectionInfo> sections;
    // Payload pools that exist: one per publisher slot that was ever used (a sealed memfd its
    // publisher created, pid = that publisher), or, with RegionOptions::payload_in_region,
    // the one pool inside the region (pid 0).
    struct PoolInfo { std::uint32_t index; std::uint32_t generation; pid_t owner_pid; std::uint64_t size; bool external; };
    std::vector<PoolInfo> pools;
  };
  RegionInfo region_info() const;
  // What the header of region file `path` says, read as it is (one pread, no mapping, nothing
  // validated: a damaged region's fields may be anything), for tools that show a region
  // open/inspect_file refused. `healthy` is false; sections as the table lists them, even out
  // of range; no pools. Throws Error(region_too_short) for a file shorter than a header.
  static RegionInfo read_region_header(const std::filesystem::path& path,
                                       std::chrono::milliseconds lease_wait = std::chrono::milliseconds(2000));
  // Every chunk that is not free, with where it is, for tools: "in queue/history as seq N",
  // "loaned by publisher slot S (pid P)", "held by subscriber slot S (pid P)" (several may
  // apply, comma-separated), or "referenced (segment of a message, or in flight)".
  struct ChunkInfo { std::uint32_t index; std::uint64_t size_class; std::uint32_t refs; std::uint64_t sequence; std::string state; };
  std::vector<ChunkInfo> busy_chunks() const;

  const std::string& name() const noexcept;
  const TopicConfig& config() const noexcept;
  // The region's file descriptor, to hand to another process (fork, SCM_RIGHTS).
  int fd() const noexcept;
  // The backing file, or empty for an anonymous region.
  const std::filesystem::path& path() const noexcept;
  // Base address and size of this process's mapping of the region (diagnostics). Payload
  // lives in per-publisher pools, not here (unless RegionOptions::payload_in_region): see
  // locate_payload().
  const void* mapping_base() const noexcept;
  std::size_t mapping_size() const noexcept;
  // Where a payload address of this process lies: which pool, at which offset, in which
  // mapping (read-only for subscribers: writable only in the pool's own publisher). For
  // zero-copy checks and diagnostics; nullopt when `p` is in no payload mapping of this topic.
  struct PayloadLocation {
    std::uint32_t pool;
    std::uint32_t generation;
    std::uint64_t offset;          // from the pool's first payload byte
    const void* mapping_base;
    std::size_t mapping_size;
    int fd;                        // the pool's memfd (or the region file) in this process
    bool writable;                 // this process's mapping of it is writable
  };
  std::optional<PayloadLocation> locate_payload(const void* p) const;

  // True when payload lives in per-publisher pools outside the region (the default; false
  // for a region created with RegionOptions::payload_in_region; docs/internals.md, "Least
  // privilege").
  bool external_pools() const noexcept;

  // The bus daemon revoked the region (region_info().revoked): every call on it fails with
  // Errc::region_lost. Also true once the daemon renamed a truncated file aside.
  bool revoked() const noexcept;

  TopicStats stats() const;
  // Human-readable account of who holds the pool's chunks, per size class and per client.
  std::string describe_pool() const;

  // Gives back everything held by the publisher/subscriber slots registered by `pid`: loaned
  // chunks, held samples, claimed-but-uncommitted ring slots; frees the slots. Only for a
  // process known to be dead (a reaped child, or a client whose connection the daemon saw
  // close): calling it for a live process corrupts that process's view. Returns the number of
  // slots reclaimed.
  std::size_t reclaim_process(pid_t pid);
  // Reclaims every slot whose owner is provably dead: its pid (in this process's pid
  // namespace) no longer exists, or now belongs to a process with another start time. Slots
  // of live processes, and of processes in other pid namespaces, are left alone. Safe to call
  // at any time, from any process; the daemon sweeps with it. Returns slots reclaimed.
  // Bounded whatever the region says: it starts no reclaim after `budget` (at most a minute)
  // and waits for the recovery lock, or a live publisher's claim, no longer than that; what
  // is left waits for the next call.
  std::size_t reclaim_dead_owners(std::chrono::nanoseconds budget = std::chrono::seconds(2));

 private:
  friend struct detail::TopicAccess;
  explicit Topic(std::shared_ptr<detail::TopicMap> map) : map_(std::move(map)) {}
  std::shared_ptr<detail::TopicMap> map_;
};

}  // namespace shmbus
