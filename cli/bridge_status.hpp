// The counters of the NATS bridges (shmbus-bridge) attached to a bus, for `shmbus topic info`
// and `shmbus clients`. A running bridge rewrites its status file every second next to the
// bus's socket (bridge-<bus>.status.json by default; format in docs/bridge.md); a file counts
// only when its pid is a client of this bus now, so stale files of dead bridges are ignored.
// Read from files, not asked of the daemon: the bridge is an ordinary client, and the daemon
// need not know what any client counts.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "output.hpp"

namespace shmbus::cli {

struct BridgeStatus {
  pid_t pid = 0;
  std::string bus_id;
  bool nats_connected = false;
  nlohmann::json topics;  // by topic name: the bridge's counters (docs/bridge.md)
};

// The status files in `dir` written by bridges whose pid is in `client_pids`.
std::vector<BridgeStatus> bridges_of_bus(const std::filesystem::path& dir, const std::set<pid_t>& client_pids);

// One bridge's counters of one topic as JSON: {"pid", "bus_id", "nats_connected", counters...}.
nlohmann::json bridge_topic_json(const BridgeStatus& b, const nlohmann::json& counters);

// A table of the counters: one row per (bridge, topic) in `rows`, each from bridge_topic_json
// plus "topic".
std::string bridge_table(const std::vector<nlohmann::json>& rows);

}  // namespace shmbus::cli
