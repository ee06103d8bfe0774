// Creating, sizing, sealing and mapping the file behind a region. Knows nothing of topics.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>

namespace shmbus::detail {

// A memfd of `size` bytes named `label`, its space reserved (posix_fallocate), unsealed but
// created with MFD_ALLOW_SEALING. `what` names it in errors. Throws Error(no_space /
// system_error).
int create_reserved_memfd(const std::string& label, std::size_t size, const std::string& what);

// A memfd of `size` bytes, space reserved, sealed against shrinking, growing and further
// sealing (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL): it can never be truncated under a
// reader. Throws Error(no_space / system_error).
int create_sealed_memfd(const std::string& name, std::size_t size);

// A new file `path` (O_EXCL) of `size` bytes, all of it reserved with posix_fallocate so that
// a full filesystem fails here and not as a SIGBUS later. On failure nothing is left behind.
// Throws Error(no_space) naming the directory and sizes.
int create_reserved_file(const std::filesystem::path& path, std::size_t size, unsigned mode);

// For regions whose header says anonymous: refuses an fd that lacks F_SEAL_SHRINK and
// F_SEAL_GROW (Error(region_unsealed)). File-backed regions cannot be sealed; they are
// protected by the daemon's lease and the SIGBUS guard instead.
void check_seals(int fd, const std::string& what);

// MAP_SHARED mapping of the whole fd (read-write, or read-only for inspection), with
// MADV_HUGEPAGE advice.
void* map_shared(int fd, std::size_t size, const std::string& what, bool writable = true);

std::size_t file_size(int fd, const std::string& what);

// "name: strerror(errno)" as Error(system_error).
[[noreturn]] void throw_errno(const std::string& what);

}  // namespace shmbus::detail
