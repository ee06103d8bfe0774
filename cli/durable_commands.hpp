// `shmbus dump DIR`: the durable-log half of the dump command, whose FILE half (snapshots)
// lives in snapshot_commands.cpp. The dump command hands a directory argument over to this.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <vector>

#include "cli_options.hpp"

namespace shmbus::cli {

struct LogDumpOptions {
  std::vector<std::string> topics;  // --topic: only these recorded topics
  std::string from;                 // --from SEQ
  std::string since;                // --since TIME
};
void add_log_dump_options(CLI::App& dump, LogDumpOptions& options);
void dump_log(const std::string& dir, const LogDumpOptions& options, long count, const GlobalOptions& global);

}  // namespace shmbus::cli
