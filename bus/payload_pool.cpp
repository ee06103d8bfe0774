#include "payload_pool.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

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

void check_pool_memfd(int fd, std::uint64_t inode, std::size_t size, const std::string& what) {
  struct stat st {};
  if (fstat(fd, &st) != 0) throw_errno("fstat of " + what);
  if (static_cast<std::uint64_t>(st.st_ino) != inode) {
    throw Error(Errc::region_corrupt, what + ": not the memfd the pool slot names (inode " + std::to_string(st.st_ino) +
                                          ", the slot names " + std::to_string(inode) + ")");
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

std::shared_ptr<PoolMapping> open_pool(int fd, std::uint32_t pool, std::uint32_t generation, std::uint64_t inode,
                                       std::size_t size, const std::string& what) {
  raise_fd_limit_once();
  std::shared_ptr<PoolMapping> m = owned_mapping(fd, pool, generation, size);
  check_pool_memfd(fd, inode, size, what);
  m->base = static_cast<std::byte*>(map_shared(fd, size, what, /*writable=*/false));
  return m;
}

}  // namespace shmbus::detail
