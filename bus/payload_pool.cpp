#include "payload_pool.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "region.hpp"
#include "shmbus/error.hpp"

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010  // Linux 5.1
#endif

namespace shmbus::detail {

PoolMapping::~PoolMapping() {
  if (!owned) return;
  if (base != nullptr) munmap(base, size);
  if (fd >= 0) close(fd);
}

int pool_seals() noexcept { return F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL; }

namespace {

// Every publisher and every subscriber of an anonymous topic keeps one pool fd per pool it
// maps, on top of its region fds: a process with a thousand topics needs more than the usual
// soft limit of 1024. Raise the soft limit to the hard one once, as the Go runtime does.
void raise_fd_limit_once() {
  static const bool done = [] {
    rlimit r{};
    if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
      r.rlim_cur = r.rlim_max;
      setrlimit(RLIMIT_NOFILE, &r);
    }
    return true;
  }();
  (void)done;
}

// A mapping record for `fd` (owned from here on: closed, and unmapped once mapped, by the
// record's destructor whatever happens next).
std::shared_ptr<PoolMapping> owned_mapping(int fd, std::uint32_t pool, std::uint32_t generation, std::size_t size) {
  auto m = std::make_shared<PoolMapping>();
  m->pool = pool;
  m->generation = generation;
  m->fd = fd;
  m->size = size;
  m->owned = true;
  return m;
}

}  // namespace

std::shared_ptr<PoolMapping> create_pool(const std::string& topic, std::uint32_t pool, std::uint32_t generation,
                                         std::size_t size) {
  raise_fd_limit_once();
  const std::string what = "payload pool " + std::to_string(pool) + " of topic '" + topic + "'";
  int fd = create_reserved_memfd("shmbus-pool:" + topic.substr(0, 180) + "#" + std::to_string(pool), size, what);
  std::shared_ptr<PoolMapping> m = owned_mapping(fd, pool, generation, size);
  m->writable = true;
  m->base = static_cast<std::byte*>(map_shared(fd, size, what, /*writable=*/true));
  // From here on no new writable shared mapping of this memfd can be made, by anyone: ours,
  // made above, is the only one there will ever be (docs/linux-facts.md §3).
  if (fcntl(fd, F_ADD_SEALS, pool_seals()) != 0) throw_errno("sealing " + what);
  return m;
}

void check_pool_memfd(int fd, std::optional<std::uint64_t> inode, std::size_t size, const std::string& what) {
  struct stat st {};
  if (fstat(fd, &st) != 0) throw_errno("fstat of " + what);
  if (!S_ISREG(st.st_mode)) throw Error(Errc::region_corrupt, what + ": not a memfd (not a regular file)");
  if (inode && static_cast<std::uint64_t>(st.st_ino) != *inode) {
    throw Error(Errc::region_corrupt, what + ": not the memfd the pool slot names (inode " + std::to_string(st.st_ino) +
                                          ", the slot names " + std::to_string(*inode) + ")");
  }
  if (static_cast<std::uint64_t>(st.st_size) != size) {
    throw Error(Errc::region_corrupt, what + ": " + std::to_string(st.st_size) + " bytes, the topic's pools have " +
                                          std::to_string(size));
  }
  int seals = fcntl(fd, F_GET_SEALS);
  if (seals < 0 || (seals & pool_seals()) != pool_seals()) {
    throw Error(Errc::region_unsealed, what + ": not sealed against writing, shrinking and growing");
  }
}

int open_slot_named_pool(std::int32_t pid, std::int32_t fd_number, std::uint64_t inode, std::size_t size,
                         const std::string& what) {
  // pid 1 is not refused here: in a container the publisher may well be pid 1; the checks
  // below refuse whatever init's fd is unless it is the very memfd the slot names.
  if (pid <= 0 || fd_number < 0) {
    throw Error(Errc::region_corrupt, what + ": the pool slot names pid " + std::to_string(pid) + " fd " +
                                          std::to_string(fd_number) + ", which no process has");
  }
  const std::string path = "/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd_number);
  // stat() follows the /proc link to the file itself without opening it: a FIFO, socket or
  // device is refused here, before an open() that could block or act on a device.
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) throw_errno("stat of " + path + " for " + what);
  if (!S_ISREG(st.st_mode) || static_cast<std::uint64_t>(st.st_ino) != inode ||
      static_cast<std::uint64_t>(st.st_size) != size) {
    throw Error(Errc::region_corrupt, what + ": the pool slot names " + path + ", which is not the pool's memfd (" +
                                          (S_ISREG(st.st_mode) ? "inode " + std::to_string(st.st_ino) + ", " +
                                                                     std::to_string(st.st_size) + " bytes"
                                                               : std::string("not a regular file")) +
                                          "; the slot names inode " + std::to_string(inode) + ", " +
                                          std::to_string(size) + " bytes)");
  }
  // The creator may swap fd_number for something else after our stat: O_NONBLOCK keeps even a
  // FIFO's open from waiting, and the caller's fstat checks refuse what it got. A few tries
  // for EINTR only; any other failure is final.
  for (int attempt = 0; attempt < 3; ++attempt) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd >= 0) return fd;
    if (errno != EINTR) break;
  }
  throw_errno("opening " + path + " for " + what);
}

std::shared_ptr<PoolMapping> open_pool(int fd, std::uint32_t pool, std::uint32_t generation,
                                       std::optional<std::uint64_t> inode, std::size_t size, const std::string& what) {
  raise_fd_limit_once();
  std::shared_ptr<PoolMapping> m = owned_mapping(fd, pool, generation, size);
  check_pool_memfd(fd, inode, size, what);
  m->base = static_cast<std::byte*>(map_shared(fd, size, what, /*writable=*/false));
  return m;
}

}  // namespace shmbus::detail
