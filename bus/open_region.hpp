// detail::open_region_path: opening a region file by path without blocking on the daemon's
// file lease. Shared by Topic's openers (topic.cpp) and read_region_header
// (topic_introspection.cpp).
#pragma once

#include <chrono>
#include <filesystem>

namespace shmbus::detail {

// Opens `path` with `access` (O_RDONLY or O_RDWR), retrying while a lease holder releases, up
// to `wait`; throws Errc::lease_held after that, or the errno of any other failure.
int open_region_path(const std::filesystem::path& path, int access, std::chrono::milliseconds wait);

}  // namespace shmbus::detail
