// `shmbus region inspect DIR` and `shmbus topic info NAME` on a durable log: its segments
// (sequence and time ranges, sizes), named readers and their positions, and, when the daemon
// declares the log, its retention and flush settings.
#pragma once

#include <filesystem>
#include <string>

#include "cli_options.hpp"
#include "shmbus/client.hpp"

namespace shmbus::cli {

// True when `target` is a durable log directory (<directory>/<topic>, holding segment files
// or the schema file): region inspect then shows it with inspect_durable_log().
bool is_durable_log_dir(const std::filesystem::path& target);
// Shows the log in `log_dir` (= <directory>/<topic>); `declared` adds the daemon's settings.
void inspect_durable_log(const std::filesystem::path& log_dir, const DurableLogInfo* declared, const GlobalOptions& global);
// topic info of a name the bus has no ordinary topic for: false when the daemon declares no
// durable log of that name either (or does not let this user read it).
bool show_declared_durable_log(Client& client, const std::string& name, const GlobalOptions& global);

}  // namespace shmbus::cli
