// Who may publish on, subscribe to, or create which topics.
//
// Rules are checked in order; the first whose topic pattern (fnmatch glob, '*' also matches
// '/') matches the topic decides, for every right. When none matches, the default applies: only
// root and the daemon's own uid. Identities come from SO_PEERCRED/SO_PEERGROUPS at connect time
// (docs/linux-facts.md §8; docs/usage.md, "Which daemon, and who may do what"), never from anything the client says.
//
// Creating a topic the bus does not have (with a configuration of the creator's choosing) is a
// right of its own: a rule's `create` list, or, when the rule has none, its `publish` list. So
// a subscriber never creates topics, and configs written before the right existed keep letting
// their publishers create.
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

enum class Right { publish, subscribe, create, call, serve };
const char* right_name(Right right);  // "publish", "subscribe", "create", "call", "serve": the config's keys

// Request/response services (docs/services.md) are checked by their two topics
// "service/NAME/request" and "service/NAME/response", against the rules that have a `call` or
// `serve` list (rules with neither do not apply to services, so topic rules like "*" never
// grant them). Calling = publishing requests and subscribing to responses; serving = the
// reverse; creating a service's topics = the rule's `create` list, or else its `serve` list.
// A rule's pattern is matched against "service/NAME".

struct AccessRule {
  std::string topic_pattern;
  std::vector<Principal> publishers;
  std::vector<Principal> subscribers;
  std::string origin;  // "rule #2 (topic \"cam/*\") at /etc/shmbus/shmbusd.toml:12"
  std::optional<std::vector<Principal>> creators;  // unset: `publishers` may create
  std::optional<std::vector<Principal>> callers;   // services: set on rules that govern them
  std::optional<std::vector<Principal>> servers;
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
  // Empty when allowed, else the reason naming the rule that refused, the right and the uid.
  // A service topic's publish/subscribe/create become the service's call/serve (see above).
  std::string check(const std::string& topic, Right right, const PeerIdentity& peer) const;
  // Right::call, serve or create on service `service` (its name, without "service/").
  std::string check_service(const std::string& service, Right right, const PeerIdentity& peer) const;
  std::string check(const std::string& topic, bool publish, const PeerIdentity& peer) const {
    return check(topic, publish ? Right::publish : Right::subscribe, peer);
  }
};

}  // namespace shmbusd
