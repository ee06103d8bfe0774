#include "durable/appenders_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "shmbus/error.hpp"

namespace shmbus::detail {

namespace {
constexpr int kPidField = 20;  // "<pid>" padded with blanks and a newline: one pwrite, never a torn read

bool try_flock(int fd, int op) {
  for (;;) {
    if (::flock(fd, op | LOCK_NB) == 0) return true;
    if (errno == EINTR) continue;
    if (errno == EWOULDBLOCK) return false;
    throw Error(Errc::system_error, std::string("flock: ") + std::strerror(errno));
  }
}

std::string holder_pid(int fd) {
  char field[kPidField + 1] = {};
  if (::pread(fd, field, kPidField, 0) <= 0) return "unknown";
  const long pid = std::strtol(field, nullptr, 10);
  return pid > 0 ? std::to_string(pid) : "unknown";
}
}  // namespace

AppendersLock::AppendersLock(const std::filesystem::path& log_path, bool exclusive) {
  const std::filesystem::path file = log_path / "appenders.lock";
  fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  // An flock needs no write access: another user's file (e.g. the daemon's) is locked read-only;
  // only naming an exclusive holder's pid in it is lost then.
  if (fd_ < 0 && errno == EACCES) fd_ = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) throw Error(Errc::system_error, "durable log " + log_path.string() + ": cannot open " + file.string() + ": " + std::strerror(errno));
  try {
    if (try_flock(fd_, exclusive ? LOCK_EX : LOCK_SH)) {
      if (exclusive) {
        char field[kPidField + 1];
        std::snprintf(field, sizeof field, "%-*d\n", kPidField - 1, static_cast<int>(::getpid()));
        (void)!::pwrite(fd_, field, kPidField, 0);  // only to name us to the refused
      }
      return;
    }
    // Refused. A shared lock we can take says the holders are ordinary appenders.
    if (exclusive && try_flock(fd_, LOCK_SH)) {
      throw Error(Errc::too_many_publishers, "durable log " + log_path.string() +
                                                 ": other appenders are open on it; an exclusive appender must be alone");
    }
    throw Error(Errc::too_many_publishers, "durable log " + log_path.string() + ": its exclusive appender (pid " +
                                               holder_pid(fd_) + ") holds it; no other appender may open it");
  } catch (const Error& e) {
    ::close(fd_);
    if (e.code() == Errc::system_error) {
      throw Error(Errc::system_error, "durable log " + log_path.string() + ": " + file.string() + ": " + e.what());
    }
    throw;
  }
}

AppendersLock::~AppendersLock() { ::close(fd_); }

}  // namespace shmbus::detail
