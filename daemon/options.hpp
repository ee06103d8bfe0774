// shmbusd's configuration: built-in defaults, then the TOML config file, then command-line
// flags (main.cpp). See shmbusd.example.toml for every key.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

#include "access.hpp"
#include "durable_topics.hpp"
#include "request_budget.hpp"
#include "shmbus/config.hpp"

namespace shmbusd {

// Operator settings for topics whose name matches `pattern` (glob). Unset fields leave what
// the client asked for (or the daemon's defaults); set fields win over the client.
struct TopicSettings {
  std::string pattern;
  std::optional<std::vector<shmbus::SizeClass>> size_classes;
  std::optional<std::uint32_t> queue_depth, history_depth, max_publishers, max_subscribers,
      max_loans_per_publisher, max_held_per_subscriber, max_segments;
  std::optional<std::uint64_t> max_message_size;
  std::optional<shmbus::SlowSubscriberPolicy> policy;
  std::optional<std::chrono::nanoseconds> block_timeout;
  std::optional<shmbus::RegionOptions::Backing> backing;
};

struct Options {
  std::string bus = "default";
  std::filesystem::path runtime_dir;  // empty: shmbus::default_runtime_dir()
  std::filesystem::path region_dir;   // empty: <runtime_dir>/<bus>.regions
  // Who may reach the socket (what they may do there is up to `rules`): see
  // resolved_socket_dir_mode(). With `socket_group`, the runtime directory gets that group.
  std::optional<gid_t> socket_group;
  std::optional<unsigned> socket_dir_mode;
  shmbus::TopicConfig defaults;  // topic defaults (name unused)
  shmbus::RegionOptions::Backing default_backing = shmbus::RegionOptions::Backing::anonymous;
  std::vector<TopicSettings> topics;
  std::vector<DurableTopicSettings> durable;  // [[durable]] tables (durable_topics.hpp)
  AccessRules rules;
  std::filesystem::path config_file;  // re-read for access rules on SIGHUP
  // A connection that makes no request within this time is closed (it holds a daemon fd).
  std::chrono::milliseconds handshake_timeout{5000};
  // Connections one uid may hold at once (0: no limit); root and the daemon's uid are exempt.
  // Every local user may connect to the system daemon, and each connection holds a daemon fd:
  // without a cap one user could use up the daemon's fds and lock everybody else out.
  std::uint32_t max_connections_per_uid = 256;
  // Control requests per connection (request_budget.hpp): over the rate a request is refused,
  // and a connection that goes on regardless is closed.
  RequestLimits request_limits;
  bool notify_systemd = true;
  // The Prometheus endpoint's TCP port on 127.0.0.1 and ::1 (metrics_endpoint.hpp); 0 = off.
  std::uint16_t metrics_port = 0;  // sd_notify READY/STOPPING/WATCHDOG (no-op without NOTIFY_SOCKET)

  // Resolved paths.
  std::filesystem::path resolved_runtime_dir() const;
  std::filesystem::path resolved_region_dir() const;
  std::filesystem::path socket_path() const;
  // The runtime directory's mode: `socket_dir_mode` when set; else 0750 with `socket_group`;
  // else 0755 for the system daemon (runtime directory = shmbus::system_runtime_dir(), where
  // other users' clients look), so every local user can connect and the access rules, checked
  // against SO_PEERCRED, decide; else 0700 (a user's own daemon, for that user alone).
  unsigned resolved_socket_dir_mode() const;
  std::filesystem::path lock_path() const;
};

// Reads `path` into `options` (keys absent from the file keep their value). Throws
// std::runtime_error naming the file, line and key on any error.
void load_config_file(const std::filesystem::path& path, Options& options);

// The settings for topic `name` (first matching [[topic]] wins), or nullptr.
const TopicSettings* settings_for(const Options& options, const std::string& name);
void apply(const TopicSettings& settings, shmbus::TopicConfig& config);

}  // namespace shmbusd
