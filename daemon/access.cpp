#include "access.hpp"

#include <fnmatch.h>
#include <grp.h>
#include <pwd.h>
#include <stdexcept>

namespace shmbusd {

Principal parse_principal(const std::string& text) {
  Principal p;
  p.text = text;
  if (text == "*") return p;
  auto colon = text.find(':');
  std::string kind = colon == std::string::npos ? "user" : text.substr(0, colon);
  std::string value = colon == std::string::npos ? text : text.substr(colon + 1);
  auto number = [&]() -> unsigned {
    try {
      std::size_t used = 0;
      unsigned long v = std::stoul(value, &used);
      if (used == value.size()) return static_cast<unsigned>(v);
    } catch (const std::exception&) {
    }
    throw std::runtime_error("'" + text + "': not a number");
  };
  if (kind == "uid") {
    p.kind = Principal::Kind::uid;
    p.id = number();
  } else if (kind == "gid") {
    p.kind = Principal::Kind::gid;
    p.id = number();
  } else if (kind == "user") {
    passwd* pw = getpwnam(value.c_str());
    if (!pw) throw std::runtime_error("'" + text + "': no such user");
    p.kind = Principal::Kind::uid;
    p.id = pw->pw_uid;
  } else if (kind == "group") {
    group* gr = getgrnam(value.c_str());
    if (!gr) throw std::runtime_error("'" + text + "': no such group");
    p.kind = Principal::Kind::gid;
    p.id = gr->gr_gid;
  } else {
    throw std::runtime_error("'" + text + "': expected *, uid:N, user:NAME, gid:N or group:NAME");
  }
  return p;
}

namespace {

bool matches(const Principal& p, const PeerIdentity& peer) {
  switch (p.kind) {
    case Principal::Kind::anyone: return true;
    case Principal::Kind::uid: return peer.uid == p.id;
    case Principal::Kind::gid:
      if (peer.gid == p.id) return true;
      for (gid_t g : peer.groups) {
        if (g == p.id) return true;
      }
      return false;
  }
  return false;
}

}  // namespace

const char* right_name(Right right) {
  switch (right) {
    case Right::publish: return "publish";
    case Right::subscribe: return "subscribe";
    case Right::create: return "create";
  }
  return "?";
}

std::string AccessRules::check(const std::string& topic, Right right, const PeerIdentity& peer) const {
  const std::string who = "uid " + std::to_string(peer.uid) + " gid " + std::to_string(peer.gid);
  const std::string what = right == Right::create ? "create topic '" + topic + "'"
                                                  : std::string(right_name(right)) + " on topic '" + topic + "'";
  for (const AccessRule& r : rules) {
    if (fnmatch(r.topic_pattern.c_str(), topic.c_str(), 0) != 0) continue;
    const bool create_by_publish = right == Right::create && !r.creators;
    const std::vector<Principal>& allowed = right == Right::publish     ? r.publishers
                                            : right == Right::subscribe ? r.subscribers
                                            : create_by_publish         ? r.publishers
                                                                        : *r.creators;
    for (const Principal& p : allowed) {
      if (matches(p, peer)) return {};
    }
    // Which list left the peer out, never who is on it: the rule's principals are the operator's business.
    const std::string list = create_by_publish ? "its 'publish' list (the rule has no 'create' list, so publishers create)"
                                               : std::string("its '") + right_name(right) + "' list";
    return who + " may not " + what + ": refused by " + r.origin + ": " + list + " has neither uid " +
           std::to_string(peer.uid) + " nor any of its groups";
  }
  if (peer.uid == 0 || peer.uid == daemon_uid) return {};
  return who + " may not " + what + ": refused by the default rule (no [[access]] rule in " + source +
         " matches the topic; only root and the daemon's uid " + std::to_string(daemon_uid) + " may)";
}

}  // namespace shmbusd
