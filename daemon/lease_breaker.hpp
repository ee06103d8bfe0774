// Who is breaking a file lease. The kernel's lease-break signal names the file (si_fd), never
// the process: this finds it from /proc. An open(2) or truncate(2) that breaks a lease stays
// inside that system call until the holder lets go, so /proc/<pid>/task/<tid>/syscall shows
// it with its arguments; reading the path argument out of its memory (process_vm_readv, which
// needs ptrace rights over it: same uid without Yama restrictions, or CAP_SYS_PTRACE) and
// comparing device and inode with ours tells for sure that it is our file, and its open flags
// tell whether it truncates (O_TRUNC breaks a write lease only as a reader would: the kernel
// looks at the access mode). A non-blocking opener (O_NONBLOCK) has already left with
// EWOULDBLOCK and cannot be found.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace shmbusd {

struct LeaseBreaker {
  pid_t pid = 0;
  pid_t tid = 0;
  std::string comm;        // /proc/<pid>/comm
  std::string call;        // "open", "openat", "openat2", "creat", "truncate"
  int open_flags = 0;      // for the open calls, when known
  bool truncates = false;  // truncate(2), creat(2) or O_TRUNC
  bool confirmed = false;  // its path argument was read and is our file; else only a candidate
};

// Threads of other processes blocked in an open/creat/truncate call: those whose path is the
// inode (dev, ino) come back confirmed; those whose path could not be read come back as
// candidates; the rest are left out. Costs a walk of /proc: call it on a lease break only.
std::vector<LeaseBreaker> find_lease_breakers(dev_t dev, ino_t ino);

// "pid 123 (cat) in openat(O_RDWR)", several joined with "; ", candidates marked as such, or a
// sentence saying nobody could be found (a non-blocking opener, or no right to look).
std::string describe_lease_breakers(const std::vector<LeaseBreaker>& found);

}  // namespace shmbusd
