#include "counters.hpp"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace shmbus::bridge {

const char* malformed_name(Malformed m) {
  switch (m) {
    case Malformed::garbage: return "garbage";
    case Malformed::wrong_type: return "wrong_type";
    case Malformed::oversized: return "oversized";
    case Malformed::bad_headers: return "bad_headers";
    case Malformed::bad_schema: return "bad_schema";
    case Malformed::bad_batch: return "bad_batch";
    case Malformed::count_: break;
  }
  return "?";
}

TopicCounters& CounterRegistry::of(const std::string& topic) {
  std::lock_guard lock(mutex_);
  auto& slot = topics_[topic];
  if (!slot) slot = std::make_unique<TopicCounters>();
  return *slot;
}

std::string CounterRegistry::status_json(const std::string& bus_id, const EngineStats& engine) const {
  auto get = [](const TopicCounters::Counter& c) { return c.load(std::memory_order_relaxed); };
  nlohmann::json topics = nlohmann::json::object();
  {
    std::lock_guard lock(mutex_);
    for (const auto& [name, c] : topics_) {
      nlohmann::json malformed = nlohmann::json::object();
      for (int i = 0; i < static_cast<int>(Malformed::count_); ++i) malformed[malformed_name(static_cast<Malformed>(i))] = get(c->malformed[i]);
      topics[name] = {{"exported", get(c->exported)},
                      {"dropped_local", get(c->dropped_local)},
                      {"skipped_imported", get(c->skipped_imported)},
                      {"refused_nats", get(c->refused_nats)},
                      {"buffered_disconnected", get(c->buffered_disconnected)},
                      {"lost_disconnected", get(c->lost_disconnected)},
                      {"imported", get(c->imported)},
                      {"lost_in_transit", get(c->lost_in_transit)},
                      {"refused_local", get(c->refused_local)},
                      {"duplicates", get(c->duplicates)},
                      {"malformed", malformed}};
    }
  }
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  nlohmann::json j = {{"format", "shmbus-bridge-status"}, {"version", 1}, {"pid", getpid()}, {"bus_id", bus_id},
                      {"written_ms", now},
                      {"nats", {{"connected", engine.connected}, {"server", engine.server},
                                {"disconnects", engine.disconnects}, {"reconnects", engine.reconnects}}},
                      {"topics", topics}};
  return j.dump(1);
}

void write_status_file(const std::filesystem::path& path, const std::string& text) {
  const std::filesystem::path tmp = path.string() + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << text << '\n';
    if (!f) return;  // a full disk costs the status, never the bridge
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
}

int print_status(const std::filesystem::path& path, bool json) {
  std::ifstream f(path);
  if (!f) {
    std::cerr << "shmbus-bridge: no status file " << path << " (is the bridge running with this config?)\n";
    return 1;
  }
  std::stringstream ss;
  ss << f.rdbuf();
  nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, false);
  if (j.is_discarded() || j.value("format", "") != "shmbus-bridge-status" || j.value("version", 0) != 1) {
    std::cerr << "shmbus-bridge: " << path << " is not a status file of this version\n";
    return 1;
  }
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  const double age_s = static_cast<double>(now - j.value("written_ms", std::int64_t{0})) / 1000.0;
  if (json) {
    std::cout << ss.str();
  } else {
    const auto& n = j["nats"];
    std::printf("bridge pid %d, bus id %s, NATS %s%s, disconnects %llu, reconnects %llu\n", j.value("pid", 0),
                j.value("bus_id", "").c_str(), n.value("connected", false) ? "connected to " : "disconnected",
                n.value("server", "").c_str(), static_cast<unsigned long long>(n.value("disconnects", 0ull)),
                static_cast<unsigned long long>(n.value("reconnects", 0ull)));
    std::printf("%-32s %10s %8s %8s %8s %8s %10s %8s %8s %9s\n", "topic", "exported", "dropped", "refused", "lost-dis",
                "skipped", "imported", "lost-net", "refused", "malformed");
    for (const auto& [name, t] : j["topics"].items()) {
      std::uint64_t malformed = 0;
      for (const auto& [k, v] : t["malformed"].items()) malformed += v.get<std::uint64_t>();
      std::printf("%-32s %10llu %8llu %8llu %8llu %8llu %10llu %8llu %8llu %9llu\n", name.c_str(),
                  static_cast<unsigned long long>(t.value("exported", 0ull)), static_cast<unsigned long long>(t.value("dropped_local", 0ull)),
                  static_cast<unsigned long long>(t.value("refused_nats", 0ull)), static_cast<unsigned long long>(t.value("lost_disconnected", 0ull)),
                  static_cast<unsigned long long>(t.value("skipped_imported", 0ull)), static_cast<unsigned long long>(t.value("imported", 0ull)),
                  static_cast<unsigned long long>(t.value("lost_in_transit", 0ull)), static_cast<unsigned long long>(t.value("refused_local", 0ull)),
                  static_cast<unsigned long long>(malformed));
    }
  }
  if (age_s > 5 || kill(j.value("pid", 0), 0) != 0) {
    std::cerr << "shmbus-bridge: status is " << static_cast<long>(age_s) << " s old: the bridge (pid " << j.value("pid", 0)
              << ") is not running\n";
    return 1;
  }
  return 0;
}

}  // namespace shmbus::bridge
