// Turns a TOPIC argument into a mapped topic: a path to a region file works with no daemon;
// a bare topic name is resolved through the bus daemon, whose connection then stays open so
// that the daemon cleans up after this process like after any client.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "cli_options.hpp"
#include "shmbus/client.hpp"
#include "shmbus/topic.hpp"

namespace shmbus::cli {

struct OpenedTopic {
  std::unique_ptr<Client> client;  // set when resolved through the daemon
  Topic topic;
  void register_publisher(const RawPublisher& p) { if (client) client->register_publisher(p); }
  void register_subscriber(const RawSubscriber& s) { if (client) client->register_subscriber(s); }
};

// Connects to the bus daemon, or throws one clear line naming the socket and how to start it.
std::unique_ptr<Client> connect(const GlobalOptions& global);
// For publishing/subscribing/snapshots. Refuses a topic name the daemon does not know. A path
// to a region file that a bus daemon serves goes through that daemon (by the topic's name).
OpenedTopic open_topic(const std::string& arg, const GlobalOptions& global, Role role);
// For inspection only: a region file is mapped read-only and never written.
OpenedTopic inspect_topic(const std::string& arg, const GlobalOptions& global);

}  // namespace shmbus::cli
