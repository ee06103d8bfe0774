// Finding the process behind a lease break from /proc (see lease_breaker.hpp).
#include "lease_breaker.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <climits>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#ifdef __has_include
#if __has_include(<linux/openat2.h>)
#include <linux/openat2.h>
#endif
#endif

namespace shmbusd {

namespace {

struct Call {
  long nr = -1;
  unsigned long args[6] = {};
};

// /proc/<pid>/task/<tid>/syscall: "nr a0 a1 a2 a3 a4 a5 sp pc" while blocked in a call,
// "running" or "-1 sp pc" otherwise.
std::optional<Call> read_call(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::string nr;
  if (!(in >> nr) || nr == "running" || nr == "-1") return std::nullopt;
  Call c;
  c.nr = std::strtol(nr.c_str(), nullptr, 10);
  for (unsigned long& a : c.args) {
    std::string v;
    if (!(in >> v)) return std::nullopt;
    a = std::strtoul(v.c_str(), nullptr, 16);
  }
  return c;
}

bool read_remote(pid_t pid, unsigned long addr, void* out, std::size_t len, std::size_t* got) {
  iovec local{out, len};
  iovec remote{reinterpret_cast<void*>(addr), len};
  ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
  if (n <= 0) return false;
  *got = static_cast<std::size_t>(n);
  return true;
}

// The NUL-terminated path at `addr` in `pid`; nullopt when we may not read its memory.
std::optional<std::string> read_path(pid_t pid, unsigned long addr) {
  char buf[PATH_MAX];
  std::size_t got = 0;
  // One page at a time: a single read stops short at an unmapped page, and the string may end
  // just before one.
  std::size_t first = 4096 - (addr % 4096);
  if (!read_remote(pid, addr, buf, std::min(first, sizeof buf), &got)) return std::nullopt;
  std::size_t total = got;
  while (total < sizeof buf && std::memchr(buf, 0, total) == nullptr) {
    std::size_t more = 0;
    if (!read_remote(pid, addr + total, buf + total, std::min<std::size_t>(4096, sizeof buf - total), &more)) break;
    total += more;
  }
  const void* end = std::memchr(buf, 0, total);
  if (!end) return std::nullopt;
  return std::string(buf, static_cast<std::size_t>(static_cast<const char*>(end) - buf));
}

std::string comm_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
  std::string s;
  std::getline(in, s);
  return s;
}

std::string flag_names(int flags) {
  std::string s = (flags & O_ACCMODE) == O_RDONLY ? "O_RDONLY" : (flags & O_ACCMODE) == O_WRONLY ? "O_WRONLY" : "O_RDWR";
  if (flags & O_TRUNC) s += "|O_TRUNC";
  if (flags & O_CREAT) s += "|O_CREAT";
  return s;
}

}  // namespace

std::vector<LeaseBreaker> find_lease_breakers(dev_t dev, ino_t ino) {
  std::vector<LeaseBreaker> out;
  std::error_code ec;
  const pid_t self = getpid();
  for (const auto& proc : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string pid_s = proc.path().filename().string();
    if (pid_s.empty() || pid_s.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(pid_s));
    if (pid == self) continue;  // the daemon never opens its own leased files by path
    std::error_code task_ec;
    for (const auto& task : std::filesystem::directory_iterator(proc.path() / "task", task_ec)) {
      std::optional<Call> c = read_call(task.path() / "syscall");
      if (!c) continue;
      LeaseBreaker b;
      b.pid = pid;
      b.tid = static_cast<pid_t>(std::stol(task.path().filename().string()));
      int dirfd = AT_FDCWD;
      unsigned long path_addr = 0;
      switch (c->nr) {
#ifdef SYS_open
        case SYS_open: b.call = "open"; path_addr = c->args[0]; b.open_flags = static_cast<int>(c->args[1]); break;
#endif
#ifdef SYS_creat
        case SYS_creat: b.call = "creat"; path_addr = c->args[0]; b.open_flags = O_WRONLY | O_CREAT | O_TRUNC; break;
#endif
        case SYS_openat:
          b.call = "openat";
          dirfd = static_cast<int>(c->args[0]);
          path_addr = c->args[1];
          b.open_flags = static_cast<int>(c->args[2]);
          break;
#ifdef SYS_openat2
        case SYS_openat2: {
          b.call = "openat2";
          dirfd = static_cast<int>(c->args[0]);
          path_addr = c->args[1];
          std::uint64_t flags = 0;  // struct open_how starts with its u64 flags
          std::size_t got = 0;
          if (read_remote(pid, c->args[2], &flags, sizeof flags, &got) && got == sizeof flags) {
            b.open_flags = static_cast<int>(flags);
          }
          break;
        }
#endif
        case SYS_truncate: b.call = "truncate"; path_addr = c->args[0]; b.truncates = true; break;
        default: continue;
      }
      b.truncates = b.truncates || (b.open_flags & O_TRUNC) != 0;
      b.comm = comm_of(pid);
      std::optional<std::string> path = read_path(pid, path_addr);
      if (!path) {
        out.push_back(b);  // a candidate: blocked in such a call, path unreadable to us
        continue;
      }
      std::filesystem::path full = *path;
      if (full.is_relative()) {
        std::string base = dirfd == AT_FDCWD ? "/proc/" + pid_s + "/cwd" : "/proc/" + pid_s + "/fd/" + std::to_string(dirfd);
        full = std::filesystem::path(base) / full;
      }
      struct stat st {};
      // stat(2) breaks no lease.
      if (stat(full.c_str(), &st) == 0 && st.st_dev == dev && st.st_ino == ino) {
        b.confirmed = true;
        out.push_back(b);
      }
    }
  }
  return out;
}

std::string describe_lease_breakers(const std::vector<LeaseBreaker>& found) {
  std::ostringstream s;
  bool any_confirmed = false;
  for (const LeaseBreaker& b : found) any_confirmed |= b.confirmed;
  const char* sep = "";
  for (const LeaseBreaker& b : found) {
    if (any_confirmed && !b.confirmed) continue;
    s << sep << "pid " << b.pid << " (" << b.comm << ") in " << b.call;
    if (b.call != "truncate") s << "(" << flag_names(b.open_flags) << ")";
    if (!b.confirmed) s << " [candidate: its path could not be read]";
    sep = "; ";
  }
  if (found.empty() || s.str().empty()) {
    return "unknown: the kernel does not say, and no process is blocked opening or truncating the file (a "
           "non-blocking open, or one that was already let through)";
  }
  return s.str();
}

}  // namespace shmbusd
