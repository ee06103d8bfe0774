// NATS -> bus: subscribes to `<prefix>.>` for each [[import]] rule and publishes what matches
// on the local bus, as an ordinary publisher of the local shmbusd (it needs the publish and
// create rights of the topics it imports, like any client).
//
// Every incoming message is checked before anything reaches the bus: its frame (wire.hpp; a
// batch's structure whole, then each of its frames alone; or
// the text headers of the first version), its type id
// against the local topic's, its size against the local pool, and, for typed topics, its
// Cap'n Proto structure (a reader with traversal limits, the same check subscribers make).
// What fails is counted per topic and reason and logged (one line per second per reason and
// topic); it is never published. Typed topics are created with the schema the exporting
// bridge serves (`<prefix>._schema.<id>`, checked against the id), so `shmbus echo` decodes
// them here.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "config.hpp"
#include "counters.hpp"
#include "engine.hpp"
#include "log_limiter.hpp"
#include "own_publishers.hpp"
#include "wire.hpp"
#include "shmbus/client.hpp"

namespace shmbus::bridge {

class Importer {
 public:
  // Distinct topic names one bridge imports at most; messages for more are refused and counted.
  static constexpr std::size_t kMaxImportedTopics = 1024;
  static constexpr std::size_t kMaxRoutes = 4 * kMaxImportedTopics;
  Importer(Client& client, Engine& engine, const BridgeConfig& config, CounterRegistry& counters,
           OwnPublishers& own, LogLimiter& log);
  ~Importer();
  // Subscribes; messages flow from then on, on the engine's delivery threads.
  void start();

 private:
  struct Local;
  struct Route;
  void on_message(const ImportRule& rule, const IncomingMessage& m);
  // One decoded frame (a message, or one entry of a batch) of `topic`: checked, accounted, published.
  void deliver(const ImportRule& rule, const std::string& name, TopicCounters& c, const Frame& frame);
  // What `subject` means under `rule`: remembered, so a message costs one lookup, no parsing.
  Route& route_of(const ImportRule& rule, std::string_view subject);
  // The local topic of `name`, opened (and created) on first use; null while refused.
  Local* local_topic(const ImportRule& rule, const std::string& name, const Frame& frame, TopicCounters& c);
  std::optional<std::string> fetch_schema(const ImportRule& rule, const std::string& id);
  void refuse(TopicCounters& c, Malformed why, const std::string& topic, const std::string& detail);

  Client& client_;
  Engine& engine_;
  const BridgeConfig& config_;
  CounterRegistry& counters_;
  OwnPublishers& own_;
  LogLimiter& log_;
  std::mutex mutex_;  // one message at a time: rules may share topics
  std::map<std::string, std::unique_ptr<Local>> locals_;
  // Per [[import]] rule (same index), by subject; bounded (kMaxRoutes), then computed each time.
  std::vector<std::map<std::string, std::unique_ptr<Route>, std::less<>>> routes_;
  std::map<std::string, std::string> schemas_;  // by schema id, checked
};

}  // namespace shmbus::bridge
