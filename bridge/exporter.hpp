// bus -> NATS: subscribes to every local topic an [[export]] rule matches (found by asking
// the daemon once a second, so topics created later are picked up) and publishes each message
// on `<prefix>.<topic>` in the bridge's frame (bridge/wire.hpp): what it finds waiting on a
// topic in one pass goes as one batch, a lone message as its frame at once. It is an ordinary
// subscriber: under the topic's drop-oldest policy a slow network costs the local publishers
// nothing, and what the bridge missed is counted (dropped_local). Messages published by the
// bridge's own importer are skipped (by payload pool: see own_publishers.hpp). Also answers
// schema requests for the typed topics it exports.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "config.hpp"
#include "counters.hpp"
#include "engine.hpp"
#include "log_limiter.hpp"
#include "poll_loop.hpp"
#include "own_publishers.hpp"
#include "shmbus/client.hpp"

namespace shmbus::bridge {

class Exporter {
 public:
  Exporter(Client& client, Engine& engine, const BridgeConfig& config, CounterRegistry& counters,
           OwnPublishers& own, LogLimiter& log);
  ~Exporter();
  // Starts answering schema requests and the export thread.
  void start();
  void stop();

 private:
  struct Exported;
  void run(const std::atomic<bool>& stop);
  void discover();
  // Takes and forwards up to a batch of messages; false when there was none.
  bool pump(Exported& e);
  // Publishes what e's batch writer holds (a batch, or a lone frame).
  void flush(Exported& e);
  // Counts the outcome of publishing `n` messages (the last n export sequences).
  void sent(Exported& e, std::uint64_t first_sequence, std::uint32_t n, std::size_t bytes, PublishOutcome outcome);

  Client& client_;
  Engine& engine_;
  const BridgeConfig& config_;
  CounterRegistry& counters_;
  OwnPublishers& own_;
  LogLimiter& log_;
  const std::uint64_t run_;  // random per start: importers restart their sequence checks on a new run
  std::vector<std::unique_ptr<Exported>> exported_;  // the export thread's own
  std::set<std::string> unexportable_;               // names already reported as unable to cross
  std::mutex schemas_mutex_;
  std::map<std::string, std::string> schemas_;       // by schema id, for the responder
  LoopThread loop_;
};

}  // namespace shmbus::bridge
