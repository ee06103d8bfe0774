// TOML -> BridgeConfig. Strict like shmbusd's options: a typo must not silently export nothing.
#include "config.hpp"

#include <unistd.h>

#include <set>
#include <stdexcept>
#include <toml++/toml.h>

#include "shmbus/client.hpp"
#include "subjects.hpp"

namespace shmbus::bridge {
namespace {

struct Reader {
  std::string file;
  [[noreturn]] void fail(const toml::node& n, const std::string& what) const {
    throw std::runtime_error(file + ":" + std::to_string(n.source().begin.line) + ": " + what);
  }
  void only_keys(const toml::table& t, const std::set<std::string>& allowed, const std::string& where) const {
    for (auto&& [k, v] : t) {
      if (!allowed.count(std::string(k.str()))) fail(v, "unknown key '" + std::string(k.str()) + "' in " + where);
    }
  }
  void get(const toml::table& t, const char* key, std::string& out) const {
    if (const toml::node* n = t.get(key)) {
      auto v = n->value<std::string>();
      if (!v) fail(*n, std::string("'") + key + "' must be a string");
      out = *v;
    }
  }
  void get(const toml::table& t, const char* key, bool& out) const {
    if (const toml::node* n = t.get(key)) {
      auto v = n->value<bool>();
      if (!v) fail(*n, std::string("'") + key + "' must be true or false");
      out = *v;
    }
  }
  void get(const toml::table& t, const char* key, int& out) const {
    if (const toml::node* n = t.get(key)) {
      auto v = n->value<std::int64_t>();
      if (!v || *v < 0 || *v > INT32_MAX) fail(*n, std::string("'") + key + "' must be a non-negative integer");
      out = static_cast<int>(*v);
    }
  }
  void get(const toml::table& t, const char* key, std::vector<std::string>& out) const {
    if (const toml::node* n = t.get(key)) {
      const toml::array* a = n->as_array();
      if (!a) fail(*n, std::string("'") + key + "' must be an array of strings");
      out.clear();
      for (const toml::node& e : *a) {
        auto s = e.value<std::string>();
        if (!s) fail(e, std::string("'") + key + "' must be an array of strings");
        out.push_back(*s);
      }
    }
  }
  void get(const toml::table& t, const char* key, std::vector<SizeClass>& out) const {
    const toml::node* n = t.get(key);
    if (!n) return;
    const toml::array* a = n->as_array();
    if (!a || a->empty()) fail(*n, std::string("'") + key + "' must be a non-empty array of [chunk_size, count]");
    out.clear();
    for (const toml::node& e : *a) {
      const toml::array* pair = e.as_array();
      auto size = pair && pair->size() == 2 ? (*pair)[0].value<std::int64_t>() : std::nullopt;
      auto count = pair && pair->size() == 2 ? (*pair)[1].value<std::int64_t>() : std::nullopt;
      if (!size || !count || *size <= 0 || *count <= 0) fail(e, std::string("'") + key + "' entries must be [chunk_size, count], both positive");
      out.push_back({static_cast<std::uint64_t>(*size), static_cast<std::uint32_t>(*count)});
    }
  }
  const toml::table& table_of(const toml::node& n, const std::string& what) const {
    const toml::table* t = n.as_table();
    if (!t) fail(n, what + " must be a table");
    return *t;
  }
};

}  // namespace

BridgeConfig load_config(const std::filesystem::path& path) {
  Reader r{path.string()};
  toml::table root;
  try {
    root = toml::parse_file(path.string());
  } catch (const toml::parse_error& e) {
    throw std::runtime_error(path.string() + ":" + std::to_string(e.source().begin.line) + ": " + std::string(e.description()));
  }
  BridgeConfig c;
  r.only_keys(root, {"bus", "socket", "bus_id", "subject_prefix", "status_file", "nats", "export", "import"}, "the top level");
  r.get(root, "bus", c.bus);
  std::string s;
  r.get(root, "socket", s);
  c.socket = s;
  r.get(root, "bus_id", c.bus_id);
  r.get(root, "subject_prefix", c.subject_prefix);
  s.clear();
  r.get(root, "status_file", s);
  c.status_file = s;
  if (const toml::node* p = root.get("subject_prefix"); p && !valid_subject_prefix(c.subject_prefix)) {
    r.fail(*p, "'subject_prefix' must be NATS subject tokens (no spaces, '*' or '>', no empty token)");
  }
  if (const toml::node* b = root.get("bus_id"); b && !valid_bus_id(c.bus_id)) {
    r.fail(*b, "'bus_id' must be 1..128 printable characters without spaces");
  }
  if (const toml::node* n = root.get("nats")) {
    const toml::table& t = r.table_of(*n, "[nats]");
    r.only_keys(t, {"servers", "user", "password", "token", "credentials", "tls", "tls_ca", "tls_cert", "tls_key",
                    "tls_skip_verify", "reconnect_wait_ms", "reconnect_buffer_bytes", "connect_timeout_ms"}, "[nats]");
    NatsSettings& ns = c.nats;
    r.get(t, "servers", ns.servers);
    if (ns.servers.empty()) r.fail(*n, "[nats] 'servers' must name at least one server");
    r.get(t, "user", ns.user);
    r.get(t, "password", ns.password);
    r.get(t, "token", ns.token);
    r.get(t, "credentials", ns.credentials);
    r.get(t, "tls", ns.tls);
    r.get(t, "tls_ca", ns.tls_ca);
    r.get(t, "tls_cert", ns.tls_cert);
    r.get(t, "tls_key", ns.tls_key);
    r.get(t, "tls_skip_verify", ns.tls_skip_verify);
    r.get(t, "reconnect_wait_ms", ns.reconnect_wait_ms);
    r.get(t, "reconnect_buffer_bytes", ns.reconnect_buffer_bytes);
    r.get(t, "connect_timeout_ms", ns.connect_timeout_ms);
    if (ns.tls_cert.empty() != ns.tls_key.empty()) r.fail(*n, "[nats] 'tls_cert' and 'tls_key' go together");
  }
  auto rules = [&](const char* key, auto&& each) {
    const toml::node* n = root.get(key);
    if (!n) return;
    const toml::array* a = n->as_array();
    if (!a) r.fail(*n, std::string("'") + key + "' must be an array of tables: [[" + key + "]]");
    for (const toml::node& e : *a) each(r.table_of(e, std::string("[[") + key + "]]"), e);
  };
  rules("export", [&](const toml::table& t, const toml::node& n) {
    r.only_keys(t, {"topics"}, "[[export]]");
    ExportRule rule;
    r.get(t, "topics", rule.topics);
    if (rule.topics.empty()) r.fail(n, "[[export]] needs 'topics' (a topic name or glob)");
    c.exports.push_back(rule);
  });
  rules("import", [&](const toml::table& t, const toml::node& n) {
    r.only_keys(t, {"topics", "prefix", "size_classes", "queue_depth"}, "[[import]]");
    ImportRule rule;
    r.get(t, "topics", rule.topics);
    r.get(t, "prefix", rule.prefix);
    r.get(t, "size_classes", rule.size_classes);
    int depth = static_cast<int>(rule.queue_depth);
    r.get(t, "queue_depth", depth);
    if (depth == 0) r.fail(n, "[[import]] 'queue_depth' must be positive");
    rule.queue_depth = static_cast<std::uint32_t>(depth);
    if (rule.topics.empty()) r.fail(n, "[[import]] needs 'topics' (a topic name or glob)");
    if (!rule.prefix.empty() && !valid_subject_prefix(rule.prefix)) r.fail(n, "[[import]] 'prefix' must be NATS subject tokens");
    if (rule.prefix.empty()) rule.prefix = c.subject_prefix;
    c.imports.push_back(rule);
  });
  return c;
}

void resolve_defaults(BridgeConfig& c) {
  if (c.bus_id.empty()) {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    c.bus_id = std::string(host) + "." + c.bus;
  }
  // Next to the bus's socket: `shmbus topic info`/`clients` look for bridges' status files there.
  if (c.status_file.empty()) {
    c.status_file = (c.socket.empty() ? default_runtime_dir() : c.socket.parent_path()) / ("bridge-" + c.bus + ".status.json");
  }
  for (ImportRule& rule : c.imports) {
    if (rule.prefix.empty()) rule.prefix = c.subject_prefix;
  }
}

}  // namespace shmbus::bridge
