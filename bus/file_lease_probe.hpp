// Whether some open file description holds a file lease on a file, read from /proc/locks
// without opening the file (an open would itself break the lease). A region file that still
// carries a lease after a daemon restart is held by the killed daemon's clients, who share
// that daemon's file description: they hand it back on reconnecting, and adopting it through
// their descriptor takes the lease over at once (opening the path would stall for
// /proc/sys/fs/lease-break-time instead).
#pragma once

#include <filesystem>

namespace shmbus::detail {

// True when /proc/locks lists a LEASE (or DELEG) on the inode behind `file`. False when it
// does not, or when the file or /proc/locks cannot be read.
bool file_has_lease(const std::filesystem::path& file);

}  // namespace shmbus::detail
