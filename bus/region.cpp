#include "region.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "shmbus/error.hpp"

#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U  // Linux 6.3; glibc 2.36 headers predate it
#endif

namespace shmbus::detail {

void throw_errno(const std::string& what) {
  int err = errno;
  throw Error(err == ENOSPC ? Errc::no_space : Errc::system_error,
              what + ": " + std::strerror(err));
}

int create_reserved_memfd(const std::string& label, std::size_t size, const std::string& what) {
  int fd = memfd_create(label.c_str(), MFD_ALLOW_SEALING | MFD_CLOEXEC | MFD_NOEXEC_SEAL);
  if (fd < 0 && errno == EINVAL) {  // kernel older than 6.3
    fd = memfd_create(label.c_str(), MFD_ALLOW_SEALING | MFD_CLOEXEC);
  }
  if (fd < 0) throw_errno("memfd_create for " + what);
  if (ftruncate(fd, static_cast<off_t>(size)) != 0) {
    close(fd);
    throw_errno("ftruncate of memfd for " + what);
  }
  // Reserve the pages now: a memfd is charged to our memory cgroup and must not fail later
  // (as a SIGBUS while writing).
  if (int rc = posix_fallocate(fd, 0, static_cast<off_t>(size)); rc != 0) {
    close(fd);
    errno = rc;
    throw_errno("reserving " + std::to_string(size) + " bytes of memfd for " + what);
  }
  return fd;
}

int create_sealed_memfd(const std::string& name, std::size_t size) {
  int fd = create_reserved_memfd("shmbus:" + name.substr(0, 200), size, name);
  if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    close(fd);
    throw_errno("sealing memfd for " + name);
  }
  return fd;
}

int create_reserved_file(const std::filesystem::path& path, std::size_t size, unsigned mode) {
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) throw_errno("creating region file " + path.string());
  if (int rc = posix_fallocate(fd, 0, static_cast<off_t>(size)); rc != 0) {
    // ext4 keeps what a failed fallocate managed to allocate (docs/linux-facts.md §5): remove it.
    struct statvfs vfs {};
    std::string avail = "unknown";
    if (fstatvfs(fd, &vfs) == 0) {
      avail = std::to_string(static_cast<unsigned long long>(vfs.f_bavail) * vfs.f_frsize);
    }
    close(fd);
    unlink(path.c_str());
    throw Error(rc == ENOSPC ? Errc::no_space : Errc::system_error,
                "cannot reserve " + std::to_string(size) + " bytes for region file " +
                    path.string() + " in " + path.parent_path().string() + " (" +
                    avail + " bytes available): " + std::strerror(rc));
  }
  return fd;
}

void check_seals(int fd, const std::string& what) {
  int seals = fcntl(fd, F_GET_SEALS);
  const int required = F_SEAL_SHRINK | F_SEAL_GROW;
  if (seals < 0 || (seals & required) != required) {
    throw Error(Errc::region_unsealed,
                what + ": anonymous region is not sealed against shrinking and growing; "
                       "refusing to map it (it could be truncated under this process)");
  }
}

void* map_shared(int fd, std::size_t size, const std::string& what, bool writable) {
  void* p = mmap(nullptr, size, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) throw_errno("mmap of " + what);
  madvise(p, size, MADV_HUGEPAGE);  // harmless where THP for shmem is off (docs/linux-facts.md §9)
  return p;
}

std::size_t file_size(int fd, const std::string& what) {
  struct stat st {};
  if (fstat(fd, &st) != 0) throw_errno("fstat of " + what);
  return static_cast<std::size_t>(st.st_size);
}

}  // namespace shmbus::detail
