#include "process_identity.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

namespace shmbus::detail {
namespace {

// Field 22 of /proc/<pid>/stat; 0 when the process does not exist or is a zombie (exited, not
// yet reaped: it runs no code and touches no memory any more). The command name (field 2) may
// hold spaces and parentheses, so parse from the last ')'. A zombie is state Z (or X) with at
// most one thread: a process whose main thread alone exited also shows Z, with its live
// threads counted in field 20 (docs/linux-facts.md section 7).
std::uint64_t start_time_of(pid_t pid) noexcept {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  FILE* f = std::fopen(path, "re");
  if (f == nullptr) return 0;
  char buf[1024];
  std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = 0;
  const char* p = std::strrchr(buf, ')');
  if (p == nullptr || p[1] != ' ' || p[2] == 0) return 0;
  const char state = p[2];  // field 3
  // After ") " come fields 3..; threads are field 20, start time field 22.
  unsigned long long threads = 0, value = 0;
  int field = 2;
  for (const char* q = p + 1; *q != 0; ++q) {
    if (*q == ' ') {
      ++field;
      if (field == 20) threads = std::strtoull(q + 1, nullptr, 10);
      if (field == 22) {
        value = std::strtoull(q + 1, nullptr, 10);
        break;
      }
    }
  }
  if ((state == 'Z' || state == 'X') && threads <= 1) return 0;
  return value;
}

std::uint64_t pid_ns_of(const char* proc_path) noexcept {
  struct stat st {};
  return ::stat(proc_path, &st) == 0 ? static_cast<std::uint64_t>(st.st_ino) : 0;
}

}  // namespace

std::uint64_t process_start_time(pid_t pid) noexcept { return start_time_of(pid); }

ProcessIdentity current_process() noexcept {
  ProcessIdentity id;
  id.pid = getpid();
  id.start_time = start_time_of(id.pid);
  id.pid_ns = pid_ns_of("/proc/self/ns/pid");
  return id;
}

void record_owner(OwnerIdentity& owner) noexcept {
  ProcessIdentity id = current_process();
  // Relaxed: published together with the slot's state (release) by the caller.
  owner.start_time.store(id.start_time, std::memory_order_relaxed);
  owner.pid_ns.store(id.pid_ns, std::memory_order_relaxed);
}

Liveness owner_liveness(pid_t pid, const OwnerIdentity& owner) noexcept {
  std::uint64_t ns = owner.pid_ns.load(std::memory_order_relaxed);
  std::uint64_t start = owner.start_time.load(std::memory_order_relaxed);
  if (pid <= 0 || ns == 0 || start == 0 || ns != pid_ns_of("/proc/self/ns/pid")) return Liveness::unknown;
  std::uint64_t now = start_time_of(pid);
  return now == start ? Liveness::alive : Liveness::dead;  // gone (0), or the pid was reused
}

}  // namespace shmbus::detail
