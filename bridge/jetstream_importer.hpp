// JetStream -> a local durable log ([[jetstream_import]] rules, docs/bridge.md "Durable topics
// over JetStream").
//
// Each rule replays its stream (an ordered consumer: in order, no gap or duplicate across
// reconnects) from a stream sequence, a time, or the oldest message, and appends every message
// to its local durable log, payload unchanged. A restart resumes after the last message
// appended: before each append the bridge records, in `<log>/jetstream-import.state`, the stream
// sequence being appended and the log sequence its record got; on start it looks whether that
// record was committed (resume after it) or not (append it again). No message is appended twice
// and none is skipped, also across a kill -9.
#pragma once

#include <atomic>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "config.hpp"
#include "jetstream_engine.hpp"
#include "log_limiter.hpp"

namespace shmbus::bridge {

// The resume record of one imported log (one page would be wasteful: 32 bytes, pwrite).
struct JetStreamImportState {
  char magic[8];                   // "SHMBJSI\0"
  std::uint32_t layout_version;    // kJetStreamImportStateVersion
  std::uint32_t reserved;
  std::uint64_t stream_sequence;   // being (or last) appended
  std::uint64_t log_sequence;      // the log sequence its record got
};
inline constexpr char kJetStreamImportStateMagic[8] = {'S', 'H', 'M', 'B', 'J', 'S', 'I', '\0'};
inline constexpr std::uint32_t kJetStreamImportStateVersion = 1;
static_assert(sizeof(JetStreamImportState) == 32);
static_assert(offsetof(JetStreamImportState, stream_sequence) == 16);
static_assert(offsetof(JetStreamImportState, log_sequence) == 24);

class JetStreamImporter {
 public:
  JetStreamImporter(Engine& engine, const BridgeConfig& config, LogLimiter& log);
  ~JetStreamImporter();
  // Starts the replays that are not running yet (the server may be unreachable at first):
  // call once a second.
  void tick();
  // Per rule (by local log): appended, refused, last stream sequence.
  nlohmann::json status() const;

 private:
  struct Rule;
  bool start(Rule& r);
  void on_message(Rule& r, const ReplayedMessage& m);

  Engine& engine_;
  const BridgeConfig& config_;
  LogLimiter& log_;
  std::unique_ptr<PersistentStreams> js_;
  std::vector<std::unique_ptr<Rule>> rules_;
};

}  // namespace shmbus::bridge
