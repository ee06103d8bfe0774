#include "file_lease_probe.hpp"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

namespace shmbus::detail {

bool file_has_lease(const std::filesystem::path& file) {
  struct stat st {};
  if (stat(file.c_str(), &st) != 0) return false;
  // Lines look like "3: LEASE  ACTIVE    WRITE 1234 fd:01:131090 0 EOF" (type, state, mode,
  // pid, major:minor:inode with the device numbers in hex; fs/locks.c lock_get_status()).
  std::ifstream locks("/proc/locks");
  std::string line;
  while (std::getline(locks, line)) {
    std::istringstream in(line);
    std::string index, kind;
    in >> index >> kind;
    if (kind != "LEASE" && kind != "DELEG") continue;
    std::string word;
    while (in >> word) {
      unsigned major = 0, minor = 0;
      unsigned long inode = 0;
      if (std::sscanf(word.c_str(), "%x:%x:%lu", &major, &minor, &inode) == 3) {
        if (inode == st.st_ino && major == ::major(st.st_dev) && minor == ::minor(st.st_dev)) return true;
        break;
      }
    }
  }
  return false;
}

}  // namespace shmbus::detail
