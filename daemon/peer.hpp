// Who is on the other end of an accepted Unix socket, as the kernel says (docs/linux-facts.md §8):
// SO_PEERCRED (pid/uid/gid frozen at connect; never SCM_CREDENTIALS, which root can forge),
// SO_PEERGROUPS (supplementary groups) and SO_PEERPIDFD (Linux >= 6.5) to follow its life.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace shmbusd {

struct Peer {
  pid_t pid = 0;  // 0 when the client is in another pid namespace; informational only
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
  int pidfd = -1;  // owned by the caller; -1 when the kernel lacks SO_PEERPIDFD
  std::string describe() const;  // "pid 123 uid 1000 gid 1000"
};

// Throws std::system_error when SO_PEERCRED fails (which means the fd is not a Unix socket).
Peer read_peer(int socket_fd);

}  // namespace shmbusd
