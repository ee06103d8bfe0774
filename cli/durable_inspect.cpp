#include "durable_inspect.hpp"

#include <nlohmann/json.hpp>

#include <iostream>

#include "output.hpp"
#include "recording.hpp"
#include "shmbus/durable.hpp"

namespace shmbus::cli {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

bool is_segment_name(const std::string& n) {
  return n.size() == 24 && n.ends_with(".log") && n.find_first_not_of("0123456789") == 20;
}

std::string flush_text(const FlushPolicy& f) {
  switch (f.mode) {
    case FlushPolicy::Mode::none: return "none (page cache: survives process crashes)";
    case FlushPolicy::Mode::every_n: return "every_n: fdatasync every " + std::to_string(f.every_n) + " messages";
    case FlushPolicy::Mode::interval: return "interval: fdatasync at most every " + std::to_string(f.interval.count()) + " ms";
    case FlushPolicy::Mode::each_publish: return "each_publish: msync before publish returns";
  }
  return "?";
}

const char* flush_name(FlushPolicy::Mode m) {
  switch (m) {
    case FlushPolicy::Mode::none: return "none";
    case FlushPolicy::Mode::every_n: return "every_n";
    case FlushPolicy::Mode::interval: return "interval";
    case FlushPolicy::Mode::each_publish: return "each_publish";
  }
  return "?";
}

std::string limit(std::uint64_t v, const std::string& text) { return v == 0 ? "no limit" : text; }

}  // namespace

bool is_durable_log_dir(const fs::path& target) {
  std::error_code ec;
  if (!fs::is_directory(target, ec)) return false;
  if (fs::exists(target / "schema", ec)) return true;
  for (const fs::directory_entry& e : fs::directory_iterator(target, ec)) {
    if (is_segment_name(e.path().filename().string())) return true;
  }
  return false;
}

void inspect_durable_log(const fs::path& log_dir, const DurableLogInfo* declared, const GlobalOptions& global) {
  const fs::path canonical = fs::weakly_canonical(log_dir);
  const fs::path directory = canonical.parent_path();
  const std::string topic = canonical.filename().string();
  // A foreign, truncated or newer-layout segment is listed with its damage, between the others.
  std::vector<DurableSegmentInfo> segs = list_durable_segments(directory, topic);
  require_a_readable_segment(segs);
  std::vector<std::string> damaged;  // one line each, naming the file
  json out = {{"log", canonical.string()}, {"topic", topic}, {"kind", "durable topic"}};
  json jsegs = json::array();
  Table table({"SEGMENT", "SEQUENCES", "FIRST TIME", "LAST TIME", "SIZE", "USED", "SEALED"});
  std::uint64_t size = 0;
  for (const DurableSegmentInfo& s : segs) {
    size += s.size_bytes;
    // last_sequence: of the newest record claimed in it; absent while it is empty.
    json j = {{"file", s.path.filename().string()}, {"first_sequence", s.first_sequence},
              {"next_sequence", s.next_sequence}, {"first_time_ns", s.first_time_ns}, {"last_time_ns", s.last_time_ns},
              {"size_bytes", s.size_bytes}, {"used_bytes", s.used_bytes}, {"sealed", s.sealed}};
    if (s.next_sequence > s.first_sequence) j["last_sequence"] = s.next_sequence - 1;
    if (!s.damage.empty()) j["damage"] = s.damage, damaged.push_back(s.damage);
    jsegs.push_back(j);
    table.add({s.path.filename().string(),
               s.next_sequence > s.first_sequence
                   ? std::to_string(s.first_sequence) + ".." + std::to_string(s.next_sequence - 1)
                   : "(empty)",
               format_time(s.first_time_ns), format_time(s.last_time_ns), human_bytes(s.size_bytes),
               human_bytes(s.used_bytes), !s.damage.empty() ? "DAMAGED" : s.sealed ? "yes" : "no"});
  }
  out["segments"] = jsegs;
  out["size_bytes"] = size;
  const std::uint64_t first = segs.empty() ? 0 : segs.front().first_sequence;
  const std::uint64_t next = segs.empty() ? 0 : segs.back().next_sequence;
  out["first_sequence"] = first;
  out["next_sequence"] = next;
  out["type_id"] = readable_type_id(segs);
  json readers = json::array();
  Table rt({"NAMED READER", "POSITION", "BEHIND"});
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(canonical / "readers", ec)) {
    if (e.path().extension() != ".pos") continue;
    const std::string name = e.path().stem().string();
    const std::uint64_t pos = DurableReader::named(directory, topic, name).position();
    readers.push_back({{"name", name}, {"position", pos}, {"behind", next > pos ? next - pos : 0}});
    rt.add({name, std::to_string(pos), std::to_string(next > pos ? next - pos : 0)});
  }
  out["named_readers"] = readers;
  if (declared != nullptr) {
    const RetentionPolicy& r = declared->retention;
    out["retention"] = {{"max_age_s", std::chrono::duration_cast<std::chrono::seconds>(r.max_age).count()},
                        {"max_bytes", r.max_bytes}, {"max_segments", r.max_segments}};
    out["flush"] = {{"mode", flush_name(declared->flush.mode)}, {"every_n", declared->flush.every_n},
                    {"interval_ms", declared->flush.interval.count()}};
    out["segment_size"] = declared->segment_size;
  }
  if (global.json) {
    std::cout << out.dump(2) << "\n";
    return;
  }
  std::cout << "durable topic '" << topic << "' at " << canonical.string() << ": " << (next - first) << " messages (sequences "
            << first << ".." << next << "), " << segs.size() << " segment(s), " << human_bytes(size) << "\n";
  if (!segs.empty()) {
    std::cout << "time: " << format_time(segs.front().first_time_ns) << " .. " << format_time(segs.back().last_time_ns) << "\n";
  }
  if (declared != nullptr) {
    const RetentionPolicy& r = declared->retention;
    const auto age = std::chrono::duration_cast<std::chrono::seconds>(r.max_age).count();
    std::cout << "retention (by the daemon): age " << limit(static_cast<std::uint64_t>(age), std::to_string(age) + " s")
              << ", size " << limit(r.max_bytes, human_bytes(r.max_bytes)) << ", segments "
              << limit(r.max_segments, std::to_string(r.max_segments)) << "\n"
              << "flush: " << flush_text(declared->flush) << "; segment size " << human_bytes(declared->segment_size) << "\n";
  } else {
    std::cout << "retention: set in the daemon's [[durable]] table (ask by name: shmbus topic info " << topic << ")\n";
  }
  std::cout << "\n" << table.render();
  for (const std::string& d : damaged) std::cout << "damaged: " << d << "\n";
  if (!readers.empty()) std::cout << "\n" << rt.render();
}

bool show_declared_durable_log(Client& client, const std::string& name, const GlobalOptions& global) {
  DurableLogInfo log;
  try {
    log = client.durable_log(name, Role::subscriber);
  } catch (const Error& e) {
    if (e.code() == Errc::no_such_topic) return false;
    throw;  // access_denied names the rule: worth more than "no topic"
  }
  inspect_durable_log(log.directory / log.name, &log, global);
  return true;
}

}  // namespace shmbus::cli
