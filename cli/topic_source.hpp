// Turns a TOPIC argument into a mapped topic: a path to a region file works with no daemon;
// a bare topic name is resolved through the bus daemon.
#pragma once

#include <string>

#include "cli_options.hpp"
#include "shmbus/topic.hpp"

namespace shmbus::cli {

// For publishing/subscribing/snapshots (a read-write mapping).
Topic open_topic(const std::string& arg, const GlobalOptions& global);
// For inspection only (read-only mapping; never writes to the bus).
Topic inspect_topic(const std::string& arg, const GlobalOptions& global);
// The daemon's socket path for a bus, as shmbusd computes it by default.
std::string default_socket_path(const std::string& bus);

}  // namespace shmbus::cli
