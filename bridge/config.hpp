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
  // Several messages waiting on a topic go as one NATS message (wire.hpp, BatchHeader). Off
  // for NATS consumers other than shmbus bridges; a topic matched by several rules batches
  // only if all of them allow it.
  bool batch = true;
};

struct ImportRule {
  std::string topics;          // glob over the remote topic names found under `prefix`
  std::string prefix;          // subject prefix to import from; default: the bridge's own
  // Pool of topics this rule creates locally (an existing topic keeps its own).
  std::vector<SizeClass> size_classes{{4096, 256}, {65536, 64}, {1048576, 8}};
  std::uint32_t queue_depth = 64;
};

// [[jetstream_export]]: each durable log in `directory` whose name matches `topics` goes to the
// JetStream stream `stream` (created if missing) on subject `<subject_prefix>.<log name>`
// (docs/bridge.md, "Durable topics over JetStream").
struct JetStreamExportRule {
  std::filesystem::path directory;  // the durable logs' directory (DurableConfig::directory)
  std::string topics;               // glob over the log names
  std::string stream;
  std::string subject_prefix;       // default: <subject_prefix>.durable
  std::uint32_t window = 256;       // publishes awaiting their acknowledgement, per log
  int ack_timeout_ms = 5000;        // then the publish counts failed and is sent again
  int duplicate_window_s = 120;     // of a stream the bridge creates
};

// [[jetstream_import]]: replays `stream` (its messages on `subject`) into the durable log
// `topic` of `directory`, from a stream sequence, a time, or the oldest message; a restart
// resumes after the last message appended.
struct JetStreamImportRule {
  std::string stream;
  std::string subject = ">";         // filter (NATS wildcards)
  std::uint64_t start_sequence = 0;  // stream sequence
  std::uint64_t start_time_ns = 0;   // CLOCK_REALTIME ns (TOML: an offset date-time)
  std::filesystem::path directory;
  std::string topic;                 // the local durable log
  std::uint64_t segment_size = 64ull << 20;
};

// [[service_export]]: the local service `service` (file-backed, in `directory`) answers calls
// from other buses: requests on `<subject_prefix>.<service>` (docs/bridge.md, "Services across
// buses").
struct ServiceExportRule {
  std::filesystem::path directory;  // the service's files (Service::open_files)
  std::string service;
  std::string subject_prefix;       // default: <subject_prefix>.svc
  int call_timeout_ms = 5000;       // a local call with no response for this long: timeout
  std::uint32_t max_in_flight = 32; // local calls at once; more wait in a queue
};

// [[service_import]]: serves the remote service `service` on this bus (creating it in
// `directory` when missing) by forwarding each call to the bridge of the bus that has it.
struct ServiceImportRule {
  std::filesystem::path directory;
  std::string service;
  std::string prefix;               // the remote bus's service subject prefix; default: ours
  int call_timeout_ms = 5000;       // no reply from NATS for this long: the call is dropped (timeout)
  std::uint32_t lanes = 4;          // server rows the bridge serves with
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
  std::vector<JetStreamExportRule> jetstream_exports;
  std::vector<JetStreamImportRule> jetstream_imports;
  std::vector<ServiceExportRule> service_exports;
  std::vector<ServiceImportRule> service_imports;
};

// Reads and checks `path`. Throws std::runtime_error "<file>:<line>: <what>".
BridgeConfig load_config(const std::filesystem::path& path);
// Fills defaults that depend on the machine (bus_id, status_file).
void resolve_defaults(BridgeConfig& config);

}  // namespace shmbus::bridge
