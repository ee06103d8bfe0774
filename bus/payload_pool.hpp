// detail::PoolMapping: one process's mapping of one payload pool (see layout.hpp, "Payload
// pools"), and the two ways to get one: create a pool as its publisher, or open another
// process's pool read-only as a subscriber.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
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
// memfd with inode `inode`, `size` bytes, carrying pool_seals().
void check_pool_memfd(int fd, std::uint64_t inode, std::size_t size, const std::string& what);

// Maps `fd` (owned by the result) read-only as pool `pool` after checking that it is the
// memfd the pool slot names (inode), of the expected size, and carries pool_seals(). Throws
// Error(region_unsealed / region_corrupt / system_error) saying which check failed.
std::shared_ptr<PoolMapping> open_pool(int fd, std::uint32_t pool, std::uint32_t generation, std::uint64_t inode,
                                       std::size_t size, const std::string& what);

}  // namespace shmbus::detail
