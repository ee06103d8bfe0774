// Remote services served on this bus ([[service_import]] rules): the bridge is a server of the
// local service (creating it in `directory` when missing) and forwards each call over NATS to
// the bridge of the bus that has the service (service_wire.hpp), sending its replies back as
// the call's responses, in order, the last one ending the stream.
//
// Errors reach the local client as the service library's own: a call that failed on the far
// side (Shmbus-Error: server_gone), has no responder on NATS, could not be sent, or got a
// hostile reply (counted per reason) ends with Errc::server_gone; one that got no reply within
// call_timeout_ms (or Shmbus-Error: timeout) is dropped here and ends with the client's own
// timeout. A server cannot fail one call of its own in the service library, so the bridge
// serves through `lanes` server rows: a call to be failed retires its lane (no new calls),
// and once the lane's other calls are done the lane's row is freed, which the waiting
// client sees as server_gone; a fresh lane takes its place.
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

class ServiceImporter {
 public:
  ServiceImporter(Engine& engine, const BridgeConfig& config, LogLimiter& log);
  ~ServiceImporter();
  void start();  // subscribes (call from the thread that set the engine up) and starts the thread
  void stop();
  // Per service: calls, answered, responses, server_gone, no_responders, timeouts, hostile, in_flight.
  nlohmann::json status() const;

 private:
  struct Imported;
  void run(const std::atomic<bool>& stop);
  bool pump(Imported& s);
  void on_reply(const IncomingMessage& m);

  Engine& engine_;
  const BridgeConfig& config_;
  LogLimiter& log_;
  std::string inbox_;
  std::vector<std::unique_ptr<Imported>> imported_;
  LoopThread loop_;
};

}  // namespace shmbus::bridge
