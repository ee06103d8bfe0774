// Durable topics declared in shmbusd's config ([[durable]] tables, docs/durable.md): the daemon
// creates each log at start-up and applies its retention on the sweep tick.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "shmbus/durable.hpp"
#include "shmbus/durable_client.hpp"

namespace shmbusd {

struct DurableTopicSettings {
  std::string name;                        // the topic (a log name, not a glob)
  std::filesystem::path directory;         // its segments go to directory/name
  std::uint64_t segment_size = 64ull << 20;
  shmbus::RetentionPolicy retention;
  shmbus::FlushPolicy flush;               // handed to every appender the daemon serves
  bool exclusive_appender = false;         // likewise: one appender at a time (DurableConfig's)
  std::string origin;                      // file:line, for log messages
};

// The [[durable]] tables of the config file; throws std::runtime_error naming the file, line
// and key. Names are unique: clients ask for a log by name (Bus.openDurable).
std::vector<DurableTopicSettings> parse_durable_topics(const std::filesystem::path& file);
// Creates each log that does not exist yet (directory and first segment). Errors are logged.
void prepare_durable_topics(const std::vector<DurableTopicSettings>& topics);
// One retention pass over every declared log; errors are logged, never fatal.
void apply_durable_retention_all(const std::vector<DurableTopicSettings>& topics);
// The declared log called `name`, or nullptr.
const DurableTopicSettings* find_durable_topic(const std::vector<DurableTopicSettings>& topics, const std::string& name);
// What Bus.openDurable answers about it.
shmbus::DurableLogInfo describe(const DurableTopicSettings& settings);

}  // namespace shmbusd
