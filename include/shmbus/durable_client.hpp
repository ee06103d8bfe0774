// Durable topics through the daemon: what shmbus::Client::durable_log() returns, and where
// Client::open_durable_reader() starts (client.hpp; docs/durable.md, "Under the daemon").
//
//   shmbus::Client client;
//   std::unique_ptr<shmbus::DurableAppender> log = client.open_durable_appender("ticks");
//   log->append(bytes);                                  // no daemon on this path
//   shmbus::DurableReader r = client.open_durable_reader("ticks", shmbus::DurableStart::named("audit"));
//
// The daemon declares each log in its [[durable]] tables (directory, segment size, flush
// policy, retention) and checks the access rules: publish to append, subscribe to read. It
// answers with the log's directory; the client then opens the segment files itself, with its
// own permissions, exactly as without a daemon. So appends and reads go on while the daemon is
// down or restarting, and the files' permissions (not the daemon) are the final word on who
// can write them: the daemon's answer is the operator's configuration and a policy check.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "shmbus/durable.hpp"

namespace shmbus {

// A durable log as the daemon declares it.
struct DurableLogInfo {
  std::string name;
  std::filesystem::path directory;  // the segments are in directory/name
  std::uint64_t segment_size = 0;
  FlushPolicy flush;                // every appender the client opens uses it
  RetentionPolicy retention;        // applied by the daemon, every 500 ms
  bool exclusive_appender = false;  // DurableConfig::exclusive_appender for the appenders it opens
};

// Where a reader starts (DurableReader's four ways to position).
struct DurableStart {
  enum class Kind : std::uint8_t { oldest, sequence, time, named };
  Kind kind = Kind::oldest;
  std::uint64_t value = 0;  // the sequence, or the CLOCK_REALTIME time in ns
  std::string name;         // of a named reader

  static DurableStart oldest() { return {}; }
  static DurableStart at_sequence(std::uint64_t sequence) { return {Kind::sequence, sequence, {}}; }
  static DurableStart at_time(std::uint64_t time_ns) { return {Kind::time, time_ns, {}}; }
  static DurableStart named(std::string reader) { return {Kind::named, 0, std::move(reader)}; }
};

// Opens the reader `from` says on the log in `directory`/`topic` (no daemon involved).
DurableReader open_durable_reader_at(const std::filesystem::path& directory, const std::string& topic,
                                     const DurableStart& from);

}  // namespace shmbus
