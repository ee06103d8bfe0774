// TOML config file -> Options. Unknown keys are errors: a typo in an access rule must not
// silently widen or narrow who may do what.
#include "options.hpp"

#include <fnmatch.h>
#include <grp.h>
#include <set>
#include <stdexcept>
#include <toml++/toml.h>
#include <unistd.h>

#include "shmbus/client.hpp"

namespace shmbusd {

std::filesystem::path Options::resolved_runtime_dir() const {
  return runtime_dir.empty() ? shmbus::default_runtime_dir() : runtime_dir;
}
std::filesystem::path Options::resolved_region_dir() const {
  return region_dir.empty() ? resolved_runtime_dir() / (bus + ".regions") : region_dir;
}
std::filesystem::path Options::socket_path() const { return shmbus::bus_socket_path(bus, resolved_runtime_dir()); }
std::filesystem::path Options::lock_path() const { return resolved_runtime_dir() / (bus + ".lock"); }

unsigned Options::resolved_socket_dir_mode() const {
  if (socket_dir_mode) return *socket_dir_mode;
  if (socket_group) return 0750;
  std::error_code ec;
  const bool system = std::filesystem::weakly_canonical(resolved_runtime_dir(), ec) ==
                      std::filesystem::weakly_canonical(shmbus::system_runtime_dir(), ec);
  return system ? 0755 : 0700;
}

namespace {

struct Ctx {
  std::string file;
  [[noreturn]] void fail(const toml::node& n, const std::string& what) const {
    throw std::runtime_error(file + ":" + std::to_string(n.source().begin.line) + ": " + what);
  }
  [[noreturn]] void fail(const std::string& what) const { throw std::runtime_error(file + ": " + what); }
  void only_keys(const toml::table& t, std::set<std::string> allowed, const std::string& where) const {
    for (auto&& [k, v] : t) {
      if (!allowed.count(std::string(k.str()))) fail(v, "unknown key '" + std::string(k.str()) + "' in " + where);
    }
  }
  template <typename T>
  std::optional<T> get(const toml::table& t, const char* key) const {
    const toml::node* n = t.get(key);
    if (!n) return std::nullopt;
    if constexpr (std::is_same_v<T, std::string>) {
      if (auto v = n->value<std::string>()) return *v;
      fail(*n, std::string("'") + key + "' must be a string");
    } else if constexpr (std::is_same_v<T, bool>) {
      if (auto v = n->value<bool>()) return *v;
      fail(*n, std::string("'") + key + "' must be true or false");
    } else {
      auto v = n->value<std::int64_t>();
      if (!v || *v < 0) fail(*n, std::string("'") + key + "' must be a non-negative integer");
      return static_cast<T>(*v);
    }
  }
  std::vector<std::string> strings(const toml::table& t, const char* key) const {
    std::vector<std::string> out;
    const toml::node* n = t.get(key);
    if (!n) return out;
    const toml::array* a = n->as_array();
    if (!a) fail(*n, std::string("'") + key + "' must be an array of strings");
    for (const toml::node& e : *a) {
      auto s = e.value<std::string>();
      if (!s) fail(e, std::string("'") + key + "' must be an array of strings");
      out.push_back(*s);
    }
    return out;
  }
};

const std::set<std::string> kTopicKeys = {"size_classes", "queue_depth", "history_depth", "policy",
                                          "block_timeout_ms", "max_publishers", "max_subscribers",
                                          "max_loans_per_publisher", "max_held_per_subscriber",
                                          "max_segments", "max_message_size", "backing"};

shmbus::RegionOptions::Backing parse_backing(const Ctx& cx, const toml::table& t, const std::string& v) {
  if (v == "anonymous" || v == "memfd") return shmbus::RegionOptions::Backing::anonymous;
  if (v == "file") return shmbus::RegionOptions::Backing::file;
  cx.fail(*t.get("backing"), "backing must be \"anonymous\" or \"file\"");
}

TopicSettings parse_topic_settings(const Ctx& cx, const toml::table& t) {
  TopicSettings s;
  if (const toml::node* n = t.get("size_classes")) {
    const toml::array* a = n->as_array();
    if (!a || a->empty()) cx.fail(*n, "size_classes must be a non-empty array of [chunk_size, count]");
    std::vector<shmbus::SizeClass> classes;
    for (const toml::node& e : *a) {
      const toml::array* pair = e.as_array();
      if (!pair || pair->size() != 2) cx.fail(e, "each size class is [chunk_size, count]");
      auto size = (*pair)[0].value<std::int64_t>();
      auto count = (*pair)[1].value<std::int64_t>();
      if (!size || !count || *size <= 0 || *count <= 0) cx.fail(e, "size class values must be positive integers");
      classes.push_back({static_cast<std::uint64_t>(*size), static_cast<std::uint32_t>(*count)});
    }
    s.size_classes = classes;
  }
  s.queue_depth = cx.get<std::uint32_t>(t, "queue_depth");
  s.history_depth = cx.get<std::uint32_t>(t, "history_depth");
  s.max_publishers = cx.get<std::uint32_t>(t, "max_publishers");
  s.max_subscribers = cx.get<std::uint32_t>(t, "max_subscribers");
  s.max_loans_per_publisher = cx.get<std::uint32_t>(t, "max_loans_per_publisher");
  s.max_held_per_subscriber = cx.get<std::uint32_t>(t, "max_held_per_subscriber");
  s.max_segments = cx.get<std::uint32_t>(t, "max_segments");
  s.max_message_size = cx.get<std::uint64_t>(t, "max_message_size");
  if (auto ms = cx.get<std::uint64_t>(t, "block_timeout_ms")) s.block_timeout = std::chrono::milliseconds(*ms);
  if (auto p = cx.get<std::string>(t, "policy")) {
    if (*p == "block") s.policy = shmbus::SlowSubscriberPolicy::block;
    else if (*p == "drop_oldest") s.policy = shmbus::SlowSubscriberPolicy::drop_oldest;
    else if (*p == "fail_publish") s.policy = shmbus::SlowSubscriberPolicy::fail_publish;
    else cx.fail(*t.get("policy"), "policy must be \"block\", \"drop_oldest\" or \"fail_publish\"");
  }
  if (auto b = cx.get<std::string>(t, "backing")) s.backing = parse_backing(cx, t, *b);
  return s;
}

}  // namespace

void apply(const TopicSettings& s, shmbus::TopicConfig& c) {
  if (s.size_classes) c.size_classes = *s.size_classes;
  if (s.queue_depth) c.queue_depth = *s.queue_depth;
  if (s.history_depth) c.history_depth = *s.history_depth;
  if (s.max_publishers) c.max_publishers = *s.max_publishers;
  if (s.max_subscribers) c.max_subscribers = *s.max_subscribers;
  if (s.max_loans_per_publisher) c.max_loans_per_publisher = *s.max_loans_per_publisher;
  if (s.max_held_per_subscriber) c.max_held_per_subscriber = *s.max_held_per_subscriber;
  if (s.max_segments) c.max_segments = *s.max_segments;
  if (s.max_message_size) c.max_message_size = *s.max_message_size;
  if (s.policy) c.policy = *s.policy;
  if (s.block_timeout) c.block_timeout = *s.block_timeout;
}

const TopicSettings* settings_for(const Options& o, const std::string& name) {
  for (const TopicSettings& s : o.topics) {
    if (fnmatch(s.pattern.c_str(), name.c_str(), 0) == 0) return &s;
  }
  return nullptr;
}

void load_config_file(const std::filesystem::path& path, Options& o) {
  Ctx cx{path.string()};
  toml::table root;
  try {
    root = toml::parse_file(path.string());
  } catch (const toml::parse_error& e) {
    throw std::runtime_error(path.string() + ":" + std::to_string(e.source().begin.line) + ": " +
                             std::string(e.description()));
  }
  cx.only_keys(root, {"bus", "runtime_dir", "region_dir", "socket_group", "socket_dir_mode", "default_backing",
                      "handshake_timeout_ms", "max_requests_per_second", "request_burst", "max_connections_per_uid",
                      "metrics_port", "defaults", "topic", "access", "durable"},
               "the top level");
  if (auto v = cx.get<std::string>(root, "bus")) o.bus = *v;
  if (auto v = cx.get<std::string>(root, "runtime_dir")) o.runtime_dir = *v;
  if (auto v = cx.get<std::string>(root, "region_dir")) o.region_dir = *v;
  if (auto v = cx.get<std::string>(root, "socket_group")) {
    group* gr = getgrnam(v->c_str());
    if (!gr) cx.fail(*root.get("socket_group"), "no such group '" + *v + "'");
    o.socket_group = gr->gr_gid;
  }
  if (auto v = cx.get<unsigned>(root, "socket_dir_mode")) o.socket_dir_mode = *v;
  if (auto v = cx.get<std::uint64_t>(root, "handshake_timeout_ms")) o.handshake_timeout = std::chrono::milliseconds(*v);
  if (auto v = cx.get<std::uint32_t>(root, "max_requests_per_second")) o.request_limits.per_second = *v;
  if (auto v = cx.get<std::uint32_t>(root, "max_connections_per_uid")) o.max_connections_per_uid = *v;
  if (auto v = cx.get<std::uint32_t>(root, "metrics_port")) {
    if (*v > 65535) cx.fail(*root.get("metrics_port"), "metrics_port must be 0 (off) or a TCP port, 1..65535");
    o.metrics_port = static_cast<std::uint16_t>(*v);
  }
  if (auto v = cx.get<std::uint32_t>(root, "request_burst")) {
    if (*v == 0) cx.fail(*root.get("request_burst"), "request_burst must be at least 1");
    o.request_limits.burst = *v;
  }
  if (auto v = cx.get<std::string>(root, "default_backing")) o.default_backing = parse_backing(cx, root, *v);
  if (const toml::node* n = root.get("defaults")) {
    const toml::table* t = n->as_table();
    if (!t) cx.fail(*n, "[defaults] must be a table");
    cx.only_keys(*t, kTopicKeys, "[defaults]");
    TopicSettings d = parse_topic_settings(cx, *t);
    apply(d, o.defaults);
    if (d.backing) o.default_backing = *d.backing;
  }
  if (const toml::node* n = root.get("topic")) {
    const toml::array* a = n->as_array();
    if (!a) cx.fail(*n, "use [[topic]] tables for per-topic settings");
    o.topics.clear();
    for (const toml::node& e : *a) {
      const toml::table* t = e.as_table();
      if (!t) cx.fail(e, "[[topic]] entries must be tables");
      auto keys = kTopicKeys;
      keys.insert("name");
      cx.only_keys(*t, keys, "[[topic]]");
      TopicSettings s = parse_topic_settings(cx, *t);
      auto name = cx.get<std::string>(*t, "name");
      if (!name) cx.fail(e, "[[topic]] needs a name (a glob pattern)");
      s.pattern = *name;
      o.topics.push_back(std::move(s));
    }
  }
  AccessRules rules;
  rules.daemon_uid = geteuid();
  rules.source = path.string();
  if (const toml::node* n = root.get("access")) {
    const toml::array* a = n->as_array();
    if (!a) cx.fail(*n, "use [[access]] tables for access rules");
    int index = 0;
    for (const toml::node& e : *a) {
      ++index;
      const toml::table* t = e.as_table();
      if (!t) cx.fail(e, "[[access]] entries must be tables");
      cx.only_keys(*t, {"topic", "publish", "subscribe", "create", "call", "serve"}, "[[access]]");
      AccessRule r;
      auto pattern = cx.get<std::string>(*t, "topic");
      if (!pattern) cx.fail(e, "[[access]] needs topic = \"<glob>\"");
      r.topic_pattern = *pattern;
      try {
        for (const std::string& s : cx.strings(*t, "publish")) r.publishers.push_back(parse_principal(s));
        for (const std::string& s : cx.strings(*t, "subscribe")) r.subscribers.push_back(parse_principal(s));
        if (t->get("create")) {
          r.creators.emplace();
          for (const std::string& s : cx.strings(*t, "create")) r.creators->push_back(parse_principal(s));
        }
        // Services (docs/services.md): a rule with a call or serve list governs the services
        // its pattern matches as "service/NAME".
        if (t->get("call")) {
          r.callers.emplace();
          for (const std::string& s : cx.strings(*t, "call")) r.callers->push_back(parse_principal(s));
        }
        if (t->get("serve")) {
          r.servers.emplace();
          for (const std::string& s : cx.strings(*t, "serve")) r.servers->push_back(parse_principal(s));
        }
      } catch (const std::runtime_error& err) {
        cx.fail(e, err.what());
      }
      r.origin = "rule #" + std::to_string(index) + " (topic \"" + r.topic_pattern + "\") at " + path.string() + ":" +
                 std::to_string(e.source().begin.line);
      rules.rules.push_back(std::move(r));
    }
  }
  o.rules = std::move(rules);
  o.durable = parse_durable_topics(path);
  o.config_file = path;
}

}  // namespace shmbusd
