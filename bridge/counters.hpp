// Per-topic counters of the bridge and the status file that shows them.
//
// The running bridge rewrites its status file (JSON, written aside and renamed) every second;
// `shmbus-bridge status` reads it. Counters are plain relaxed atomics: each is a monotonic
// tally read by the status writer, which needs no ordering with anything else.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "engine.hpp"

namespace shmbus::bridge {

// Why an incoming message was refused (hostile or broken input from the network).
enum class Malformed { garbage, wrong_type, oversized, bad_headers, bad_schema, bad_batch, count_ };
const char* malformed_name(Malformed m);

struct TopicCounters {
  using Counter = std::atomic<std::uint64_t>;
  // bus -> NATS
  Counter exported{0};          // handed to NATS (including buffered while disconnected)
  Counter dropped_local{0};     // overwritten in the local queue before the bridge took them
  Counter skipped_imported{0};  // published here by our own importer: never sent back
  Counter refused_nats{0};      // refused by NATS: over max_payload, or another error
  Counter buffered_disconnected{0};  // sent while disconnected, kept in the reconnect buffer
  Counter lost_disconnected{0};  // sent while disconnected with the reconnect buffer full
  // NATS -> bus
  Counter imported{0};          // published on the local bus
  Counter lost_in_transit{0};   // gaps in the exporter's sequence: lost between the two buses
  Counter refused_local{0};     // the local bus refused them (access rules, pool, type clash)
  Counter duplicates{0};        // an exporter sequence seen before: dropped, never published twice
  Counter malformed[static_cast<int>(Malformed::count_)]{};

  static void add(Counter& c, std::uint64_t n = 1) { c.fetch_add(n, std::memory_order_relaxed); }
};

class CounterRegistry {
 public:
  // The counters of `topic`, created on first use; the reference stays valid for good.
  TopicCounters& of(const std::string& topic);
  // The whole status as JSON text.
  std::string status_json(const std::string& bus_id, const EngineStats& engine) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::unique_ptr<TopicCounters>> topics_;
};

// Writes `text` to `path` atomically (temp file + rename).
void write_status_file(const std::filesystem::path& path, const std::string& text);
// `shmbus-bridge status`: prints the status file as a table (or as it is with `json`).
// Returns the exit code: 0, or 1 with a one-line reason when there is no fresh status.
int print_status(const std::filesystem::path& path, bool json);

}  // namespace shmbus::bridge
