#include "recording.hpp"

#include <ctime>
#include <cstring>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "shmbus/durable.hpp"
#include "shmbus/error.hpp"

namespace shmbus::cli {
namespace {

std::string to_hex(const std::string& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

std::string from_hex(const std::string& hex, const std::string& where) {
  auto nibble = [&](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    throw Error(Errc::region_corrupt, where + ": manifest schema is not hex");
  };
  if (hex.size() % 2 != 0) throw Error(Errc::region_corrupt, where + ": manifest schema has an odd length");
  std::string out(hex.size() / 2, '\0');
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<char>(nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]));
  return out;
}

}  // namespace

std::string encode_manifest(const std::vector<RecordedTopic>& topics) {
  nlohmann::json list = nlohmann::json::array();
  for (const RecordedTopic& t : topics) {
    const TopicConfig& c = t.config;
    nlohmann::json classes = nlohmann::json::array();
    for (const SizeClass& s : c.size_classes) classes.push_back({s.chunk_size, s.count});
    list.push_back({{"name", c.name}, {"type_id", c.type_id}, {"schema_hex", to_hex(c.schema)},
                    {"size_classes", classes}, {"queue_depth", c.queue_depth}, {"history_depth", c.history_depth},
                    {"max_segments", c.max_segments}, {"max_message_size", c.max_message_size},
                    {"stamp_publish_time", c.stamp_publish_time}});
  }
  return nlohmann::json{{"format", "shmbus-recording"}, {"version", kManifestVersion}, {"topics", list}}.dump();
}

std::vector<RecordedTopic> decode_manifest(const std::string& bytes, const std::string& where) {
  nlohmann::json j = nlohmann::json::parse(bytes, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || j.value("format", "") != "shmbus-recording") {
    throw Error(Errc::not_a_region, where + ": not a shmbus recording (its manifest is missing or foreign)");
  }
  if (!j["version"].is_number_integer() || j["version"].get<int>() > kManifestVersion) {
    throw Error(Errc::unknown_layout_version, where + ": recording manifest version " + j["version"].dump() +
                                                  " is newer than this shmbus reads (" + std::to_string(kManifestVersion) + ")");
  }
  std::vector<RecordedTopic> out;
  try {
    for (const nlohmann::json& t : j.at("topics")) {
      RecordedTopic r;
      TopicConfig& c = r.config;
      c.name = t.at("name").get<std::string>();
      c.type_id = t.at("type_id").get<std::uint64_t>();
      c.schema = from_hex(t.at("schema_hex").get<std::string>(), where);
      c.size_classes.clear();
      for (const nlohmann::json& s : t.at("size_classes")) c.size_classes.push_back({s.at(0).get<std::uint64_t>(), s.at(1).get<std::uint32_t>()});
      c.queue_depth = t.at("queue_depth").get<std::uint32_t>();
      c.history_depth = t.at("history_depth").get<std::uint32_t>();
      c.max_segments = t.at("max_segments").get<std::uint32_t>();
      c.max_message_size = t.at("max_message_size").get<std::uint64_t>();
      c.stamp_publish_time = t.at("stamp_publish_time").get<bool>();
      out.push_back(std::move(r));
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(Errc::region_corrupt, where + ": recording manifest is malformed: " + e.what());
  }
  return out;
}

RecordView split_record(std::span<const std::byte> record, std::uint64_t log_sequence, std::size_t topic_count) {
  const std::string which = "recorded message " + std::to_string(log_sequence);
  RecordView v;
  if (record.size() < sizeof(RecordEnvelope)) throw Error(Errc::region_corrupt, which + " is shorter than its envelope");
  std::memcpy(&v.envelope, record.data(), sizeof v.envelope);
  if (v.envelope.magic != RecordEnvelope::kMagic) throw Error(Errc::region_corrupt, which + " has no record envelope (foreign log?)");
  if (v.envelope.version > RecordEnvelope::kVersion) {
    throw Error(Errc::unknown_layout_version, which + " has envelope version " + std::to_string(v.envelope.version) +
                                                  ", newer than this shmbus reads (" + std::to_string(RecordEnvelope::kVersion) + ")");
  }
  if (v.envelope.topic >= topic_count) throw Error(Errc::region_corrupt, which + " names topic " + std::to_string(v.envelope.topic) + ", not in the manifest");
  v.message = record.subspan(sizeof(RecordEnvelope));
  return v;
}

void require_a_readable_segment(const std::vector<DurableSegmentInfo>& segments) {
  for (const DurableSegmentInfo& s : segments) {
    if (s.damage.empty()) return;
  }
  if (!segments.empty()) throw Error(Errc::region_corrupt, segments.front().damage);
}

std::uint64_t readable_type_id(const std::vector<DurableSegmentInfo>& segments) noexcept {
  for (const DurableSegmentInfo& s : segments) {
    if (s.damage.empty()) return s.type_id;
  }
  return 0;
}

LogLocation locate_log(const std::filesystem::path& dir_arg) {
  namespace fs = std::filesystem;
  fs::path dir = fs::absolute(dir_arg).lexically_normal();
  if (!dir.has_filename()) dir = dir.parent_path();
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw Error(Errc::not_a_region, dir_arg.string() + ": not a directory (expected a recording or a durable topic's log directory)");
  if (fs::is_directory(dir / kRecordingLogName, ec)) {
    LogLocation loc{dir, kRecordingLogName, std::nullopt};
    std::vector<DurableSegmentInfo> segs = list_durable_segments(loc.directory, loc.topic);
    require_a_readable_segment(segs);
    if (segs.empty() || readable_type_id(segs) != kRecordingTypeId) {
      throw Error(Errc::not_a_region, dir_arg.string() + ": its 'recording' log is not a shmbus recording");
    }
    loc.recording = decode_manifest(durable_schema(loc.directory, loc.topic), dir_arg.string());
    return loc;
  }
  bool has_segments = false;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {  // <20 digits>.log, as the log names them
    const std::string name = e.path().filename().string();
    has_segments |= name.size() == 24 && name.ends_with(".log") && name.find_first_not_of("0123456789") == 20;
  }
  if (!has_segments) throw Error(Errc::not_a_region, dir_arg.string() + ": no .log segments (neither a recording nor a durable topic's log directory)");
  return LogLocation{dir.parent_path(), dir.filename().string(), std::nullopt};
}

std::uint64_t parse_time(const std::string& text) {
  auto bad = [&] { return std::invalid_argument("bad time '" + text + "' (seconds or nanoseconds since 1970, or YYYY-MM-DDTHH:MM:SS[.frac]Z)"); };
  if (text.find('-') != std::string::npos && text.find('T') != std::string::npos) {
    std::tm tm{};
    const char* rest = strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
    if (!rest) throw bad();
    double frac = 0;
    if (*rest == '.') {
      char* end = nullptr;
      frac = std::strtod(rest, &end);
      rest = end;
    }
    if (std::string(rest) != "Z") throw bad();
    return static_cast<std::uint64_t>(timegm(&tm)) * 1000000000ull + static_cast<std::uint64_t>(frac * 1e9);
  }
  std::size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    throw bad();
  }
  if (used != text.size() || value < 0) throw bad();
  if (text.find('.') == std::string::npos && value >= 1e12) return std::stoull(text);  // nanoseconds, exact
  return static_cast<std::uint64_t>(value * 1e9);
}

std::string format_time(std::uint64_t unix_ns) {
  std::time_t s = static_cast<std::time_t>(unix_ns / 1000000000ull);
  std::tm tm{};
  gmtime_r(&s, &tm);
  char buf[64];
  std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%06lluZ", static_cast<unsigned long long>(unix_ns % 1000000000ull / 1000));
  return buf;
}

}  // namespace shmbus::cli
