// TOML -> BridgeConfig. Strict like shmbusd's options: a typo must not silently export nothing.
#include "config.hpp"

#include <unistd.h>

#include <ctime>
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

// A JetStream stream name: no spaces, '.', '*', '>', '/' or '\\' (the server's rule).
bool valid_stream_name(const std::string& s) {
  if (s.empty() || s.size() > 255) return false;
  for (char ch : s) {
    if (ch <= ' ' || ch == '.' || ch == '*' || ch == '>' || ch == '/' || ch == '\\' || ch == 127) return false;
  }
  return true;
}

template <typename Rules>
void read_jetstream_rules(const Reader& r, Rules&& rules, BridgeConfig& c) {
  rules("jetstream_export", [&](const toml::table& t, const toml::node& n) {
    r.only_keys(t, {"directory", "topics", "stream", "subject_prefix", "window", "ack_timeout_ms", "duplicate_window_s"},
                "[[jetstream_export]]");
    JetStreamExportRule rule;
    std::string dir;
    r.get(t, "directory", dir);
    rule.directory = dir;
    r.get(t, "topics", rule.topics);
    r.get(t, "stream", rule.stream);
    r.get(t, "subject_prefix", rule.subject_prefix);
    int window = static_cast<int>(rule.window);
    r.get(t, "window", window);
    r.get(t, "ack_timeout_ms", rule.ack_timeout_ms);
    r.get(t, "duplicate_window_s", rule.duplicate_window_s);
    if (dir.empty()) r.fail(n, "[[jetstream_export]] needs 'directory' (the durable logs' directory)");
    if (rule.topics.empty()) r.fail(n, "[[jetstream_export]] needs 'topics' (a log name or glob)");
    if (!valid_stream_name(rule.stream)) r.fail(n, "[[jetstream_export]] needs 'stream', a JetStream stream name (no spaces, '.', '*', '>', '/')");
    if (!rule.subject_prefix.empty() && !valid_subject_prefix(rule.subject_prefix)) {
      r.fail(n, "[[jetstream_export]] 'subject_prefix' must be NATS subject tokens");
    }
    if (window < 1 || window > 65536) r.fail(n, "[[jetstream_export]] 'window' must be 1..65536");
    if (rule.ack_timeout_ms < 100) r.fail(n, "[[jetstream_export]] 'ack_timeout_ms' must be at least 100");
    if (rule.duplicate_window_s < 1) r.fail(n, "[[jetstream_export]] 'duplicate_window_s' must be positive");
    rule.window = static_cast<std::uint32_t>(window);
    c.jetstream_exports.push_back(rule);
  });
  rules("jetstream_import", [&](const toml::table& t, const toml::node& n) {
    r.only_keys(t, {"stream", "subject", "start_sequence", "start_time", "directory", "topic", "segment_size"},
                "[[jetstream_import]]");
    JetStreamImportRule rule;
    r.get(t, "stream", rule.stream);
    r.get(t, "subject", rule.subject);
    std::string dir;
    r.get(t, "directory", dir);
    rule.directory = dir;
    r.get(t, "topic", rule.topic);
    if (const toml::node* v = t.get("start_sequence")) {
      auto seq = v->value<std::int64_t>();
      if (!seq || *seq < 1) r.fail(*v, "'start_sequence' must be a stream sequence (1 or more)");
      rule.start_sequence = static_cast<std::uint64_t>(*seq);
    }
    if (const toml::node* v = t.get("start_time")) {
      const toml::date_time* when = v->as_date_time() ? &v->as_date_time()->get() : nullptr;
      if (!when || !when->offset) r.fail(*v, "'start_time' must be a date-time with an offset, e.g. 2026-12-07T15:00:00Z");
      std::tm tm{};
      tm.tm_year = when->date.year - 1900;
      tm.tm_mon = when->date.month - 1;
      tm.tm_mday = when->date.day;
      tm.tm_hour = when->time.hour;
      tm.tm_min = when->time.minute;
      tm.tm_sec = when->time.second;
      const std::int64_t secs = static_cast<std::int64_t>(timegm(&tm)) - std::int64_t{when->offset->minutes} * 60;
      if (secs <= 0) r.fail(*v, "'start_time' must be after 1970");
      rule.start_time_ns = static_cast<std::uint64_t>(secs) * 1'000'000'000ull + when->time.nanosecond;
    }
    if (const toml::node* v = t.get("segment_size")) {
      auto size = v->value<std::int64_t>();
      if (!size || *size < (64 << 10)) r.fail(*v, "'segment_size' must be at least 65536 bytes");
      rule.segment_size = static_cast<std::uint64_t>(*size);
    }
    if (!valid_stream_name(rule.stream)) r.fail(n, "[[jetstream_import]] needs 'stream', a JetStream stream name");
    if (dir.empty() || rule.topic.empty()) r.fail(n, "[[jetstream_import]] needs 'directory' and 'topic' (the local durable log)");
    if (rule.start_sequence != 0 && rule.start_time_ns != 0) r.fail(n, "[[jetstream_import]] takes 'start_sequence' or 'start_time', not both");
    if (rule.subject.empty()) r.fail(n, "[[jetstream_import]] 'subject' must not be empty");
    c.jetstream_imports.push_back(rule);
  });
}

template <typename Rules>
void read_service_rules(const Reader& r, Rules&& rules, BridgeConfig& c) {
  auto common = [&](const toml::table& t, const toml::node& n, const char* what, std::filesystem::path& directory,
                    std::string& service, int& timeout) {
    std::string dir;
    r.get(t, "directory", dir);
    directory = dir;
    r.get(t, "service", service);
    r.get(t, "call_timeout_ms", timeout);
    if (dir.empty() || service.empty()) r.fail(n, std::string(what) + " needs 'directory' and 'service' (a file-backed service)");
    if (!subject_of("x", service)) r.fail(n, std::string(what) + " 'service' cannot cross: NATS subjects need names without '.', spaces, '*', '>'");
    if (timeout < 10) r.fail(n, std::string(what) + " 'call_timeout_ms' must be at least 10");
  };
  auto count = [&](const toml::table& t, const toml::node& n, const char* key, std::uint32_t& out, int max) {
    int v = static_cast<int>(out);
    r.get(t, key, v);
    if (v < 1 || v > max) r.fail(n, std::string("'") + key + "' must be 1.." + std::to_string(max));
    out = static_cast<std::uint32_t>(v);
  };
  rules("service_export", [&](const toml::table& t, const toml::node& n) {
    r.only_keys(t, {"directory", "service", "subject_prefix", "call_timeout_ms", "max_in_flight"}, "[[service_export]]");
    ServiceExportRule rule;
    common(t, n, "[[service_export]]", rule.directory, rule.service, rule.call_timeout_ms);
    r.get(t, "subject_prefix", rule.subject_prefix);
    if (!rule.subject_prefix.empty() && !valid_subject_prefix(rule.subject_prefix)) r.fail(n, "'subject_prefix' must be NATS subject tokens");
    count(t, n, "max_in_flight", rule.max_in_flight, 4096);
    c.service_exports.push_back(rule);
  });
  rules("service_import", [&](const toml::table& t, const toml::node& n) {
    r.only_keys(t, {"directory", "service", "prefix", "call_timeout_ms", "lanes"}, "[[service_import]]");
    ServiceImportRule rule;
    common(t, n, "[[service_import]]", rule.directory, rule.service, rule.call_timeout_ms);
    r.get(t, "prefix", rule.prefix);
    if (!rule.prefix.empty() && !valid_subject_prefix(rule.prefix)) r.fail(n, "'prefix' must be NATS subject tokens");
    count(t, n, "lanes", rule.lanes, 64);
    c.service_imports.push_back(rule);
  });
}

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
  r.only_keys(root, {"bus", "socket", "bus_id", "subject_prefix", "status_file", "nats", "export", "import",
                    "jetstream_export", "jetstream_import", "service_export", "service_import"}, "the top level");
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
    r.only_keys(t, {"topics", "batch"}, "[[export]]");
    ExportRule rule;
    r.get(t, "topics", rule.topics);
    r.get(t, "batch", rule.batch);
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
  read_jetstream_rules(r, rules, c);
  read_service_rules(r, rules, c);
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
  for (ServiceExportRule& rule : c.service_exports) {
    if (rule.subject_prefix.empty()) rule.subject_prefix = c.subject_prefix + ".svc";
  }
  for (ServiceImportRule& rule : c.service_imports) {
    if (rule.prefix.empty()) rule.prefix = c.subject_prefix + ".svc";
  }
  for (JetStreamExportRule& rule : c.jetstream_exports) {
    if (rule.subject_prefix.empty()) rule.subject_prefix = c.subject_prefix + ".durable";
  }
}

}  // namespace shmbus::bridge
