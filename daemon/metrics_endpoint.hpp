// shmbusd's opt-in Prometheus endpoint: GET /metrics over HTTP/1.1 on the loopback addresses
// only (127.0.0.1 and ::1), answering the topics' metrics in the text exposition format
// (include/shmbus/metrics.hpp, docs/metrics.md). Off unless a port is configured
// (`metrics_port` in the TOML config, --metrics-port).
//
// It runs on a thread of its own with a single-threaded Boost.Asio loop, never on the
// daemon's control loop: a slow or hostile scraper can delay only other scrapers. Bounded: at
// most `max_connections` at once (more are closed on accept), requests (headers and body) of
// at most `max_request_bytes` (else 400), `timeout` per connection, one response per
// connection. A request that is not HTTP gets 400, another path 404, another method 405.
//
// Thread safety: set_topics() may be called from any thread (the daemon's loop calls it
// after each sweep); the topics' counters are read on the endpoint's thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "shmbus/topic.hpp"

namespace shmbusd {

class MetricsEndpoint {
 public:
  struct Limits {
    std::size_t max_connections = 16;
    std::size_t max_request_bytes = 8192;
    std::chrono::milliseconds timeout{5000};
  };
  // Listens on 127.0.0.1:`port` and [::1]:`port` (the latter only where the host has IPv6)
  // and starts the thread. Throws std::runtime_error naming the address it could not bind.
  explicit MetricsEndpoint(std::uint16_t port, Limits limits);
  ~MetricsEndpoint();  // stops the thread; open scrapes are cut
  MetricsEndpoint(const MetricsEndpoint&) = delete;
  MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;

  // The topics the next scrapes report (Topic handles are shared, thread-safe).
  void set_topics(std::vector<shmbus::Topic> topics);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace shmbusd
