// Who may publish or subscribe on which topics.
//
// Rules are checked in order; the first whose topic pattern (fnmatch glob, '*' also matches
// '/') matches the topic decides, for both roles. When none matches, the default applies: only
// root and the daemon's own uid. Identities come from SO_PEERCRED/SO_PEERGROUPS at connect time
// (docs/linux-facts.md §8), never from anything the client says.
#pragma once

#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace shmbusd {

struct Principal {
  enum class Kind { anyone, uid, gid } kind = Kind::anyone;
  unsigned id = 0;
  std::string text;  // as written in the config ("user:alice", "gid:44", "*")
};

// Parses "*", "uid:N", "user:NAME", "gid:N", "group:NAME" (a bare name means user:NAME).
// Throws std::runtime_error for an unknown user or group.
Principal parse_principal(const std::string& text);

struct AccessRule {
  std::string topic_pattern;
  std::vector<Principal> publishers;
  std::vector<Principal> subscribers;
  std::string origin;  // "rule #2 (topic \"cam/*\") in /etc/shmbus/shmbusd.toml"
};

struct PeerIdentity {
  uid_t uid;
  gid_t gid;
  std::vector<gid_t> groups;  // supplementary groups
};

struct AccessRules {
  std::vector<AccessRule> rules;
  std::string source = "built-in default";
  uid_t daemon_uid = 0;
  // Empty when allowed, else the reason naming the rule that refused.
  std::string check(const std::string& topic, bool publish, const PeerIdentity& peer) const;
};

}  // namespace shmbusd
