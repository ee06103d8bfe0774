#include "bridge_status.hpp"

#include <fstream>
#include <sstream>

namespace shmbus::cli {

using nlohmann::json;

std::vector<BridgeStatus> bridges_of_bus(const std::filesystem::path& dir, const std::set<pid_t>& client_pids) {
  std::vector<BridgeStatus> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string file = entry.path().filename().string();
    if (file.size() < 12 || file.compare(file.size() - 12, 12, ".status.json") != 0) continue;
    std::ifstream f(entry.path());
    std::stringstream text;
    text << f.rdbuf();
    json j = json::parse(text.str(), nullptr, false);
    if (j.is_discarded() || !j.is_object() || j.value("format", "") != "shmbus-bridge-status" || j.value("version", 0) != 1) continue;
    BridgeStatus b;
    b.pid = j.value("pid", 0);
    if (!client_pids.count(b.pid)) continue;  // a dead bridge's file, or another bus's bridge
    b.bus_id = j.value("bus_id", "");
    b.nats_connected = j.contains("nats") && j["nats"].is_object() && j["nats"].value("connected", false);
    b.topics = j.contains("topics") && j["topics"].is_object() ? j["topics"] : json::object();
    out.push_back(std::move(b));
  }
  return out;
}

json bridge_topic_json(const BridgeStatus& b, const json& counters) {
  json j = counters.is_object() ? counters : json::object();
  j["pid"] = b.pid;
  j["bus_id"] = b.bus_id;
  j["nats_connected"] = b.nats_connected;
  return j;
}

std::string bridge_table(const std::vector<json>& rows) {
  Table t({"BRIDGE PID", "TOPIC", "EXPORTED", "DROPPED", "REFUSED BY NATS", "LOST DISCONNECTED", "IMPORTED", "LOST IN TRANSIT",
           "REFUSED HERE", "DUPLICATES", "MALFORMED"});
  auto n = [](const json& j, const char* key) { return std::to_string(j.value(key, std::uint64_t{0})); };
  for (const json& r : rows) {
    // Malformed input by reason, only the reasons that happened: "garbage 2, bad_headers 1".
    std::string malformed;
    if (r.contains("malformed") && r["malformed"].is_object()) {
      for (const auto& [reason, count] : r["malformed"].items()) {
        if (!count.is_number_unsigned() || count.get<std::uint64_t>() == 0) continue;
        malformed += (malformed.empty() ? "" : ", ") + reason + " " + std::to_string(count.get<std::uint64_t>());
      }
    }
    t.add({std::to_string(r.value("pid", 0)) + (r.value("nats_connected", false) ? "" : " (NATS down)"), r.value("topic", ""),
           n(r, "exported"), n(r, "dropped_local"), n(r, "refused_nats"), n(r, "lost_disconnected"), n(r, "imported"),
           n(r, "lost_in_transit"), n(r, "refused_local"), n(r, "duplicates"), malformed.empty() ? "0" : malformed});
  }
  return t.render();
}

}  // namespace shmbus::cli
