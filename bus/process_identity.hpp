// Telling whether the process that owns a slot is still alive, from /proc, robustly against
// pid reuse (start time) and pid namespaces (a pid from another namespace is never judged).
#pragma once

#include <sys/types.h>

#include <cstdint>

#include "layout.hpp"

namespace shmbus::detail {

struct ProcessIdentity {
  pid_t pid = 0;
  std::uint64_t start_time = 0;
  std::uint64_t pid_ns = 0;
};

// /proc/<pid>/stat start time (clock ticks since boot); 0 when no such process is visible.
std::uint64_t process_start_time(pid_t pid) noexcept;
// This process (re-read after fork()).
ProcessIdentity current_process() noexcept;
// Records this process as a slot's owner.
void record_owner(OwnerIdentity& owner) noexcept;

enum class Liveness { alive, dead, unknown };
// `unknown` when the owner's pid namespace is not ours or was not recorded: then nothing may
// be concluded from /proc here.
Liveness owner_liveness(pid_t pid, const OwnerIdentity& owner) noexcept;

}  // namespace shmbus::detail
