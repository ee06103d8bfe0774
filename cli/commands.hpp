// Registration of the subcommands, one function per file of related commands.
#pragma once

#include <CLI/CLI.hpp>

#include "cli_options.hpp"
#include "shmbus/error.hpp"

namespace shmbus::cli {

void add_region_commands(CLI::App& app, const GlobalOptions& global);    // region inspect
void add_snapshot_commands(CLI::App& app, const GlobalOptions& global);  // snapshot, dump
void add_stream_commands(CLI::App& app, const GlobalOptions& global);    // echo, hz, pub
void add_daemon_commands(CLI::App& app, const GlobalOptions& global);    // status, topics, topic info, regions, clients
void add_metrics_commands(CLI::App& app, const GlobalOptions& global);   // metrics, top
void add_durable_commands(CLI::App& app, const GlobalOptions& global);   // record, replay, log info
void add_service_commands(CLI::App& app, const GlobalOptions& global);   // services, service info, call

// `shmbus call` that ran but did not finish (timeout, server_gone): its own exit status.
class CallFailed : public Error {
 public:
  using Error::Error;
};
// The exit status for an Error a command threw: 1, or CallFailed's by its code (docs/cli.md).
int exit_status_of(const Error& e);

}  // namespace shmbus::cli
