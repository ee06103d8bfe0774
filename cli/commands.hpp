// Registration of the subcommands, one function per file of related commands.
#pragma once

#include <CLI/CLI.hpp>

#include "cli_options.hpp"

namespace shmbus::cli {

void add_region_commands(CLI::App& app, const GlobalOptions& global);    // region inspect
void add_snapshot_commands(CLI::App& app, const GlobalOptions& global);  // snapshot, dump
void add_stream_commands(CLI::App& app, const GlobalOptions& global);    // echo, hz, pub
void add_daemon_commands(CLI::App& app, const GlobalOptions& global);    // status, topics, topic info, regions, clients
void add_metrics_commands(CLI::App& app, const GlobalOptions& global);   // metrics, top
void add_durable_commands(CLI::App& app, const GlobalOptions& global);   // record, replay, log info

}  // namespace shmbus::cli
