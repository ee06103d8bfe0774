// detail::PoolMapping: one process's mapping of one payload pool (see layout.hpp, "Payload
// pools"), and the two ways to get one: create a pool as its publisher, or open another
// process's pool read-only as a subscriber.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace shmbus::detail {

struct PoolMapping {
  std::uint32_t pool = 0;
  std::uint32_t generation = 0;
  std::byte* base = nullptr;      // the pool's first payload byte in this process
  std::size_t size = 0;           // bytes of payload
  int fd = -1;                    // for copy-on-write views: mmap(fd, file_offset + offset)
  std::uint64_t file_offset = 0;  // of `base` within fd's file (non-zero for in-region pools)
  bool writable = false;
  bool owned = false;             // munmap and close in the destructor
  ~PoolMapping();
  bool contains(const void* p) const noexcept {
    auto* b = static_cast<const std::byte*>(p);
    return b >= base && b < base + size;
  }
};

// Seals that make a pool read-only for everyone but the mapping its creator made before
// sealing: F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL.
int pool_seals() noexcept;

// Creates pool `pool` of `size` bytes for `topic`: a memfd with its space reserved, mapped
// writable, then sealed (pool_seals()). Throws Error(no_space / system_error).
std::shared_ptr<PoolMapping> create_pool(const std::string& topic, std::uint32_t pool, std::uint32_t generation,
                                         std::size_t size);

// Throws Error(region_corrupt / region_unsealed) naming the check that failed unless `fd` is a
// memfd (a regular file) with inode `inode` (any, when nullopt), `size` bytes, carrying
// pool_seals().
void check_pool_memfd(int fd, std::optional<std::uint64_t> inode, std::size_t size, const std::string& what);

// Opens, read-only, the pool memfd a pool slot names: fd `fd_number` of process `pid`, through
// /proc/<pid>/fd. The slot is shared memory any participant can rewrite, so the path may name
// anything: it is stat-ed first (a regular file with the slot's inode and the pool's size,
// else refused without opening it, so no FIFO or device is ever opened), then opened with
// O_RDONLY | O_NONBLOCK | O_CLOEXEC (which cannot block, should it have been swapped since).
// Returns the fd (the caller checks it with check_pool_memfd() before mapping). Throws
// Error(region_corrupt) naming what the slot got wrong, Error(system_error) when the path
// cannot be reached (the process exited, or is not ours to read).
int open_slot_named_pool(std::int32_t pid, std::int32_t fd_number, std::uint64_t inode, std::size_t size,
                         const std::string& what);

// Maps `fd` (owned by the result) read-only as pool `pool` after checking that it is the
// memfd the pool slot names (inode; nullopt when the daemon vouched for it instead), of the
// expected size, and carries pool_seals(). Throws Error(region_unsealed / region_corrupt /
// system_error) saying which check failed.
std::shared_ptr<PoolMapping> open_pool(int fd, std::uint32_t pool, std::uint32_t generation,
                                       std::optional<std::uint64_t> inode, std::size_t size, const std::string& what);

}  // namespace shmbus::detail
