// Local services answering calls from other buses ([[service_export]] rules): requests arrive
// on "<subject_prefix>.<service>" (service_wire.hpp); a thread of this bridge calls the local
// service as an ordinary client (ServiceClient, up to max_in_flight calls at once; more wait
// in a bounded queue) and sends each response back as it comes. A local call that fails is
// answered with Shmbus-Error: server_gone (no live server, or it died mid-call), timeout (no
// response within call_timeout_ms) or refused (the request does not fit the service's pool).
#pragma once

#include <atomic>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "config.hpp"
#include "engine.hpp"
#include "log_limiter.hpp"
#include "poll_loop.hpp"

namespace shmbus::bridge {

class ServiceExporter {
 public:
  // Requests waiting for a free call per service; beyond it they are refused.
  static constexpr std::size_t kMaxQueued = 4096;
  ServiceExporter(Engine& engine, const BridgeConfig& config, LogLimiter& log);
  ~ServiceExporter();
  void start();  // subscribes (call from the thread that set the engine up) and starts the thread
  void stop();
  // Per service: received, answered, responses, server_gone, timeouts, refused, in_flight.
  nlohmann::json status() const;

 private:
  struct Exported;
  void run(const std::atomic<bool>& stop);
  bool pump(Exported& e);

  Engine& engine_;
  const BridgeConfig& config_;
  LogLimiter& log_;
  std::vector<std::unique_ptr<Exported>> exported_;
  LoopThread loop_;
};

}  // namespace shmbus::bridge
