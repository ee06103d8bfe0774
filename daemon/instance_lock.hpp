// One shmbusd per bus: an exclusive flock() on <runtime_dir>/<bus>.lock, held for the daemon's
// life. The kernel drops it when the process dies (even kill -9), so a stale file never blocks
// a restart; the file holds the owner's pid only so that the refusal can name it.
#pragma once

#include <filesystem>

namespace shmbusd {

class InstanceLock {
 public:
  // Throws std::runtime_error("bus 'x' is already served by shmbusd pid N (lock ...)") when
  // another process holds it.
  InstanceLock(const std::filesystem::path& path, const std::string& bus);
  ~InstanceLock();
  InstanceLock(const InstanceLock&) = delete;
  InstanceLock& operator=(const InstanceLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace shmbusd
