#include "subjects.hpp"

#include <fnmatch.h>

#include <cstdio>

namespace shmbus::bridge {
namespace {

bool valid_token_char(char c) {
  return c > ' ' && c < 0x7f && c != '.' && c != '*' && c != '>';
}

}  // namespace

bool valid_subject_prefix(std::string_view prefix) {
  if (prefix.empty() || prefix.size() > 200) return false;
  bool token_empty = true;
  for (char c : prefix) {
    if (c == '.') {
      if (token_empty) return false;
      token_empty = true;
    } else if (!valid_token_char(c)) {
      return false;
    } else {
      token_empty = false;
    }
  }
  return !token_empty;
}

bool valid_bus_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    if (c <= ' ' || c >= 0x7f) return false;
  }
  return true;
}

std::optional<std::string> subject_of(std::string_view prefix, std::string_view topic) {
  if (topic.empty()) return std::nullopt;
  std::string out(prefix);
  out += '.';
  bool component_empty = true;
  std::size_t first_end = topic.find('/');
  if (topic.substr(0, first_end) == kSchemaToken) return std::nullopt;
  for (char c : topic) {
    if (c == '/') {
      if (component_empty) return std::nullopt;
      out += '.';
      component_empty = true;
    } else if (!valid_token_char(c)) {
      return std::nullopt;
    } else {
      out += c;
      component_empty = false;
    }
  }
  if (component_empty) return std::nullopt;
  return out;
}

std::optional<std::string> topic_of(std::string_view prefix, std::string_view subject) {
  if (subject.size() <= prefix.size() + 1 || subject.substr(0, prefix.size()) != prefix || subject[prefix.size()] != '.') {
    return std::nullopt;
  }
  std::string topic(subject.substr(prefix.size() + 1));
  for (char& c : topic) {
    if (c == '.') c = '/';
  }
  if (!subject_of(prefix, topic)) return std::nullopt;  // e.g. "_schema...", empty tokens
  return topic;
}

std::string schema_subject(std::string_view prefix, std::string_view schema_id) {
  return std::string(prefix) + "." + kSchemaToken + "." + std::string(schema_id);
}

bool topic_matches(const std::string& glob, const std::string& topic) {
  return fnmatch(glob.c_str(), topic.c_str(), 0) == 0;
}

std::string hex64(std::uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string schema_id_of(std::string_view bytes) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return hex64(h);
}

std::optional<std::uint64_t> parse_u64(std::string_view s) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    std::uint64_t d = static_cast<std::uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  return v;
}

}  // namespace shmbus::bridge
