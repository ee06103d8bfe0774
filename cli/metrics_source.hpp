// Where `shmbus metrics` and `shmbus top` read counters from: the bus daemon's topics (all, or
// those named), region files named by path, or every region file of a directory with no
// daemon (--dir). Keeps the daemon connection and the mapped topics between reads, so that
// `top` does not reconnect each second.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cli_options.hpp"
#include "shmbus/client.hpp"
#include "shmbus/metrics.hpp"
#include "shmbus/topic.hpp"

namespace shmbus::cli {

class MetricsSource {
 public:
  // `topics`: names or region file paths; empty = every topic of the daemon, or of `dir`.
  // `dir`: a bus's region directory, read without a daemon (read-only mappings).
  MetricsSource(std::vector<std::string> topics, std::string dir, const GlobalOptions& global);
  // Reads every topic's metrics now. A topic that cannot be read is left out and named in
  // `errors` (one line each); the others are still read.
  std::vector<TopicMetrics> read(std::vector<std::string>& errors);

 private:
  Topic& topic_for(const std::string& key, const std::string& arg);
  std::vector<std::string> topics_;
  std::string dir_;
  GlobalOptions global_;
  std::unique_ptr<Client> client_;
  std::map<std::string, Topic> opened_;  // by name or path
};

}  // namespace shmbus::cli
