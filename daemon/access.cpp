#include "access.hpp"

#include <fnmatch.h>
#include <grp.h>
#include <pwd.h>
#include <optional>
#include <stdexcept>
#include <utility>

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
    case Right::call: return "call";
    case Right::serve: return "serve";
  }
  return "?";
}

namespace {

// "service/NAME/request" -> {NAME, true}; "service/NAME/response" -> {NAME, false}.
std::optional<std::pair<std::string, bool>> service_topic(const std::string& topic) {
  static const std::string prefix = "service/", request = "/request", response = "/response";
  if (topic.rfind(prefix, 0) != 0) return std::nullopt;
  auto ends = [&](const std::string& suffix) {
    return topic.size() > prefix.size() + suffix.size() && topic.compare(topic.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (ends(request)) return std::pair{topic.substr(prefix.size(), topic.size() - prefix.size() - request.size()), true};
  if (ends(response)) return std::pair{topic.substr(prefix.size(), topic.size() - prefix.size() - response.size()), false};
  return std::nullopt;
}

}  // namespace

std::string AccessRules::check_service(const std::string& service, Right right, const PeerIdentity& peer) const {
  const std::string who = "uid " + std::to_string(peer.uid) + " gid " + std::to_string(peer.gid);
  const std::string what = std::string(right_name(right)) + " service '" + service + "'";
  const std::string subject = "service/" + service;
  for (const AccessRule& r : rules) {
    if (!r.callers && !r.servers) continue;  // a topic rule: not about services
    if (fnmatch(r.topic_pattern.c_str(), subject.c_str(), 0) != 0) continue;
    static const std::vector<Principal> none;
    const bool create_by_serve = right == Right::create && !r.creators;
    const std::vector<Principal>& allowed = right == Right::call ? (r.callers ? *r.callers : none)
                                            : right == Right::serve || create_by_serve ? (r.servers ? *r.servers : none)
                                                                                       : *r.creators;
    for (const Principal& p : allowed) {
      if (matches(p, peer)) return {};
    }
    const std::string list = create_by_serve ? "its 'serve' list (the rule has no 'create' list, so servers create)"
                                             : std::string("its '") + right_name(right) + "' list";
    return who + " may not " + what + ": refused by " + r.origin + ": " + list + " has neither uid " +
           std::to_string(peer.uid) + " nor any of its groups";
  }
  if (peer.uid == 0 || peer.uid == daemon_uid) return {};
  return who + " may not " + what + ": refused by the default rule (no [[access]] rule with a 'call' or 'serve' list in " +
         source + " matches \"" + subject + "\"; only root and the daemon's uid " + std::to_string(daemon_uid) + " may)";
}

std::string AccessRules::check(const std::string& topic, Right right, const PeerIdentity& peer) const {
  if (auto svc = service_topic(topic); svc && (right == Right::publish || right == Right::subscribe)) {
    // Requests: callers publish, servers subscribe; responses the reverse.
    const bool calls = (right == Right::publish) == svc->second;
    return check_service(svc->first, calls ? Right::call : Right::serve, peer);
  } else if (svc && right == Right::create) {
    return check_service(svc->first, Right::create, peer);
  }
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
