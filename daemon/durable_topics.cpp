#include "durable_topics.hpp"

#include <spdlog/spdlog.h>

#include <set>
#include <stdexcept>
#include <toml++/toml.h>

namespace shmbusd {
namespace {

const std::set<std::string> kDurableKeys = {"name", "directory", "segment_size", "max_age_s", "max_bytes",
                                            "max_segments"};

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

}  // namespace

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
    s.retention.max_age = std::chrono::seconds(non_negative(where, *t, "max_age_s", 0));
    s.retention.max_bytes = non_negative(where, *t, "max_bytes", 0);
    s.retention.max_segments = non_negative(where, *t, "max_segments", 0);
    s.origin = at;
    for (const DurableTopicSettings& other : out) {
      if (other.name == s.name && other.directory == s.directory) {
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
      shmbus::DurableAppender create(c);  // creates the directory and the first segment if missing
      spdlog::info("durable topic '{}': log {}", s.name, create.log_path().string());
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
