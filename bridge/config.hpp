// shmbus-bridge's configuration, read from TOML (bridge/shmbus-bridge.example.toml documents
// every key). Unknown keys and wrong types are errors naming the file, line and key.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "shmbus/config.hpp"

namespace shmbus::bridge {

// Passed through to the NATS client as they are.
struct NatsSettings {
  std::vector<std::string> servers{"nats://127.0.0.1:4222"};
  std::string user, password, token;
  std::string credentials;     // a .creds file (JWT + seed)
  bool tls = false;            // require TLS (also implied by tls:// URLs)
  std::string tls_ca, tls_cert, tls_key;
  bool tls_skip_verify = false;
  int reconnect_wait_ms = 200;
  int reconnect_buffer_bytes = 8 * 1024 * 1024;  // kept while disconnected, then counted lost
  int connect_timeout_ms = 2000;
};

struct ExportRule {
  std::string topics;          // glob over local topic names ('*' also matches '/')
};

struct ImportRule {
  std::string topics;          // glob over the remote topic names found under `prefix`
  std::string prefix;          // subject prefix to import from; default: the bridge's own
  // Pool of topics this rule creates locally (an existing topic keeps its own).
  std::vector<SizeClass> size_classes{{4096, 256}, {65536, 64}, {1048576, 8}};
  std::uint32_t queue_depth = 64;
};

struct BridgeConfig {
  std::string bus = "default";           // local bus name (socket looked up as any client does)
  std::filesystem::path socket;          // explicit socket path, overrides `bus`
  std::string bus_id;                    // this bus's name on the network; default <hostname>.<bus>
  std::string subject_prefix = "shmbus"; // subjects of exported topics: <prefix>.<topic, '/' -> '.'>
  std::filesystem::path status_file;     // default: bridge-<bus>.status.json next to the bus's socket
  NatsSettings nats;
  std::vector<ExportRule> exports;
  std::vector<ImportRule> imports;
};

// Reads and checks `path`. Throws std::runtime_error "<file>:<line>: <what>".
BridgeConfig load_config(const std::filesystem::path& path);
// Fills defaults that depend on the machine (bus_id, status_file).
void resolve_defaults(BridgeConfig& config);

}  // namespace shmbus::bridge
