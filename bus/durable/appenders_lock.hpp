// Who may append to a durable log at once. Every appender holds <log>/appenders.lock with an
// flock for its lifetime: shared by ordinary appenders, exclusive by an exclusive one
// (DurableConfig::exclusive_appender), so an exclusive appender is alone while it lives, and the
// kernel lets go when its holder dies (no stale lock after a kill -9). An exclusive holder
// writes its pid into the file, so that the refused can name it.
#pragma once

#include <filesystem>

namespace shmbus::detail {

class AppendersLock {
 public:
  // Throws Error(too_many_publishers) when refused, naming the exclusive holder's pid, or saying
  // that ordinary appenders are open; Error(system_error) when the file cannot be opened.
  AppendersLock(const std::filesystem::path& log_path, bool exclusive);
  ~AppendersLock();  // closing the file releases the flock
  AppendersLock(const AppendersLock&) = delete;
  AppendersLock& operator=(const AppendersLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace shmbus::detail
