#include "durable/leftovers.hpp"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>

namespace shmbus::detail {

namespace {

// The creator's pid of a temporary file name "...tmp.<pid>", or 0 when it is not one.
pid_t creator_of(const std::string& name) {
  const std::size_t at = name.rfind(".tmp.");
  if (at == std::string::npos || at + 5 >= name.size()) return 0;
  const std::string digits = name.substr(at + 5);
  if (digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) return 0;
  return static_cast<pid_t>(std::strtol(digits.c_str(), nullptr, 10));
}

bool gone(pid_t pid) { return pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH; }

std::size_t sweep(const std::filesystem::path& dir) noexcept {
  std::size_t removed = 0;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const bool ours = (name.starts_with(".") && name.find(".log.tmp.") != std::string::npos) ||
                      name.starts_with(".schema.tmp.") || name.find(".pos.tmp.") != std::string::npos;
    if (ours && gone(creator_of(name)) && ::unlink(it->path().c_str()) == 0) ++removed;
  }
  return removed;
}

}  // namespace

std::size_t remove_durable_leftovers(const std::filesystem::path& log_path) noexcept {
  try {
    return sweep(log_path) + sweep(log_path / "readers");
  } catch (...) {  // out of memory for a path: leave them for the next call
    return 0;
  }
}

}  // namespace shmbus::detail
