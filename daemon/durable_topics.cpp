#include "durable_topics.hpp"

#include <spdlog/spdlog.h>

#include <set>
#include <stdexcept>
#include <toml++/toml.h>

#include "durable/segment.hpp"

namespace shmbusd {
namespace {

const std::set<std::string> kDurableKeys = {"name",      "directory", "segment_size", "max_age_s",
                                            "max_bytes", "max_segments", "flush",       "flush_every_n",
                                            "flush_interval_ms", "exclusive_appender"};

std::uint64_t non_negative(const std::string& where, const toml::table& t, const char* key, std::uint64_t fallback) {
  const toml::node* n = t.get(key);
  if (n == nullptr) return fallback;
  auto v = n->value<std::int64_t>();
  if (!v || *v < 0) {
    throw std::runtime_error(where + ":" + std::to_string(n->source().begin.line) + ": '" + key +
                             "' must be a non-negative integer");
  }
  return static_cast<std::uint64_t>(*v);
}

std::string line_of(const std::string& where, const toml::node& n) {
  return where + ":" + std::to_string(n.source().begin.line);
}

// flush = "none" | "every_n" | "interval" | "each_publish", with flush_every_n for every_n and
// flush_interval_ms for interval; a count or interval without its mode is refused (it would
// silently do nothing).
shmbus::FlushPolicy parse_flush(const std::string& where, const std::string& at, const toml::table& t) {
  using Mode = shmbus::FlushPolicy::Mode;
  shmbus::FlushPolicy f;
  const toml::node* mode = t.get("flush");
  const toml::node* every = t.get("flush_every_n");
  const toml::node* interval = t.get("flush_interval_ms");
  if (mode != nullptr) {
    auto v = mode->value<std::string>();
    if (v && *v == "none") f.mode = Mode::none;
    else if (v && *v == "every_n") f.mode = Mode::every_n;
    else if (v && *v == "interval") f.mode = Mode::interval;
    else if (v && *v == "each_publish") f.mode = Mode::each_publish;
    else {
      throw std::runtime_error(line_of(where, *mode) +
                               ": 'flush' must be \"none\", \"every_n\", \"interval\" or \"each_publish\"");
    }
  }
  if (every != nullptr && f.mode != Mode::every_n) {
    throw std::runtime_error(line_of(where, *every) + ": 'flush_every_n' needs flush = \"every_n\"");
  }
  if (interval != nullptr && f.mode != Mode::interval) {
    throw std::runtime_error(line_of(where, *interval) + ": 'flush_interval_ms' needs flush = \"interval\"");
  }
  if (f.mode == Mode::every_n) {
    std::uint64_t n = non_negative(where, t, "flush_every_n", 0);
    if (n == 0 || n > UINT32_MAX) {
      throw std::runtime_error((every ? line_of(where, *every) : at) +
                               ": flush = \"every_n\" needs 'flush_every_n', 1..4294967295 messages");
    }
    f.every_n = static_cast<std::uint32_t>(n);
  }
  if (f.mode == Mode::interval) {
    std::uint64_t ms = non_negative(where, t, "flush_interval_ms", 0);
    if (ms == 0) {
      throw std::runtime_error((interval ? line_of(where, *interval) : at) +
                               ": flush = \"interval\" needs 'flush_interval_ms', a positive number of milliseconds");
    }
    f.interval = std::chrono::milliseconds(ms);
  }
  return f;
}

}  // namespace

shmbus::DurableLogInfo describe(const DurableTopicSettings& s) {
  return {s.name, s.directory, s.segment_size, s.flush, s.retention, s.exclusive_appender};
}

const DurableTopicSettings* find_durable_topic(const std::vector<DurableTopicSettings>& topics, const std::string& name) {
  for (const DurableTopicSettings& s : topics) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

std::vector<DurableTopicSettings> parse_durable_topics(const std::filesystem::path& file) {
  const std::string where = file.string();
  toml::table root;
  try {
    root = toml::parse_file(where);
  } catch (const toml::parse_error& e) {
    throw std::runtime_error(where + ":" + std::to_string(e.source().begin.line) + ": " + std::string(e.description()));
  }
  std::vector<DurableTopicSettings> out;
  const toml::node* n = root.get("durable");
  if (n == nullptr) return out;
  const toml::array* a = n->as_array();
  if (a == nullptr) throw std::runtime_error(where + ": use [[durable]] tables for durable topics");
  for (const toml::node& e : *a) {
    const std::string at = where + ":" + std::to_string(e.source().begin.line);
    const toml::table* t = e.as_table();
    if (t == nullptr) throw std::runtime_error(at + ": [[durable]] entries must be tables");
    for (auto&& [k, v] : *t) {
      if (!kDurableKeys.count(std::string(k.str()))) {
        throw std::runtime_error(where + ":" + std::to_string(v.source().begin.line) + ": unknown key '" +
                                 std::string(k.str()) + "' in [[durable]]");
      }
    }
    DurableTopicSettings s;
    auto name = t->get("name") ? t->get("name")->value<std::string>() : std::nullopt;
    auto dir = t->get("directory") ? t->get("directory")->value<std::string>() : std::nullopt;
    if (!name || !dir) throw std::runtime_error(at + ": [[durable]] needs name = \"<topic>\" and directory = \"<path>\"");
    s.name = *name;
    s.directory = *dir;
    s.segment_size = non_negative(where, *t, "segment_size", s.segment_size);
    if (s.segment_size < shmbus::detail::durable::kMinSegmentSize || s.segment_size > shmbus::detail::durable::kMaxSegmentSize) {
      throw std::runtime_error(line_of(where, *t->get("segment_size")) +
                               ": 'segment_size' must be 65536 .. 1099511627776 bytes");
    }
    s.retention.max_age = std::chrono::seconds(non_negative(where, *t, "max_age_s", 0));
    s.retention.max_bytes = non_negative(where, *t, "max_bytes", 0);
    s.retention.max_segments = non_negative(where, *t, "max_segments", 0);
    s.flush = parse_flush(where, at, *t);
    if (const toml::node* x = t->get("exclusive_appender"); x != nullptr) {
      auto v = x->value_exact<bool>();
      if (!v) throw std::runtime_error(line_of(where, *x) + ": 'exclusive_appender' must be true or false");
      s.exclusive_appender = *v;
    }
    s.origin = at;
    try {
      shmbus::detail::validate_durable_name("durable topic", s.name);
    } catch (const std::exception& e) {
      throw std::runtime_error(line_of(where, *t->get("name")) + ": 'name': " + e.what());
    }
    for (const DurableTopicSettings& other : out) {
      if (other.name == s.name) {
        throw std::runtime_error(at + ": durable topic '" + s.name + "' is declared twice (also at " + other.origin + ")");
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

void prepare_durable_topics(const std::vector<DurableTopicSettings>& topics) {
  for (const DurableTopicSettings& s : topics) {
    try {
      shmbus::DurableConfig c;
      c.directory = s.directory;
      c.topic = s.name;
      c.segment_size = s.segment_size;
      c.flush = s.flush;
      shmbus::DurableAppender create(c);  // creates the directory and the first segment if missing
      spdlog::info("durable topic '{}': log {}", s.name, create.log_path().string());
    } catch (const shmbus::Error& e) {
      // An exclusive appender at work (the daemon restarted under it): the log exists.
      if (e.code() == shmbus::Errc::too_many_publishers) spdlog::info("durable topic '{}': {}", s.name, e.what());
      else spdlog::error("durable topic '{}' ({}): {}", s.name, s.origin, e.what());
    } catch (const std::exception& e) {
      spdlog::error("durable topic '{}' ({}): {}", s.name, s.origin, e.what());
    }
  }
}

void apply_durable_retention_all(const std::vector<DurableTopicSettings>& topics) {
  for (const DurableTopicSettings& s : topics) {
    const shmbus::RetentionPolicy& r = s.retention;
    if (r.max_age.count() == 0 && r.max_bytes == 0 && r.max_segments == 0) continue;
    try {
      shmbus::RetentionReport report = shmbus::apply_durable_retention(s.directory, s.name, r);
      if (report.segments_removed != 0) {
        spdlog::info("durable topic '{}': retention removed {} segment(s), {} message(s)", s.name,
                     report.segments_removed, report.messages_removed);
      }
    } catch (const std::exception& e) {
      spdlog::warn("durable topic '{}': retention: {}", s.name, e.what());
    }
  }
}

}  // namespace shmbusd
