// Temporary files a creator killed mid-create leaves in a durable log directory: a segment
// (".<first>.log.tmp.<pid>", reserved in full, so it holds a whole segment of disk), the schema
// (".schema.tmp.<pid>") and named reader positions ("readers/<name>.pos.tmp.<pid>"). Each is
// made by one process and named after its pid; once that pid is gone nobody will link or
// unlink it any more.
#pragma once

#include <cstddef>
#include <filesystem>

namespace shmbus::detail {

// Unlinks the leftovers in `log_path` (and its readers/) whose creating pid no longer exists
// in our pid namespace. A live pid (the creator at work, or an unrelated process that reused
// the pid) keeps its file. Returns how many were removed; never throws.
std::size_t remove_durable_leftovers(const std::filesystem::path& log_path) noexcept;

}  // namespace shmbus::detail
