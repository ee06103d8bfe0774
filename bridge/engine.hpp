// The bridge's view of a messaging engine: publish with headers, subscribe to a subject
// pattern, answer and send requests. The exporter and importer see only this interface, so
// another engine (e.g. Cyclone DDS) can be added beside nats_engine.* without touching them.
//
// Threads: publish/request may be called from any thread. Handlers run on the engine's own
// delivery threads (one per subscription for NATS), never two at once for one subscription.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace shmbus::bridge {

using Headers = std::vector<std::pair<std::string, std::string>>;

// A message delivered by the engine; valid only during the handler call.
class IncomingMessage {
 public:
  virtual ~IncomingMessage() = default;
  virtual std::string_view subject() const = 0;
  virtual std::span<const std::byte> payload() const = 0;
  // The first value of header `key`, or nullopt when absent.
  virtual std::optional<std::string_view> header(const char* key) const = 0;
  // True when the message carried a header block the engine could not parse.
  virtual bool headers_malformed() const { return false; }
};

// What became of one publish.
enum class PublishOutcome {
  sent,          // handed to the connection (at most once delivery, like NATS itself)
  buffered,      // disconnected: kept in the reconnect buffer, sent after reconnecting (or lost)
  too_large,     // over the server's max_payload: refused
  disconnected,  // disconnected and the reconnect buffer is full (or none): lost
  failed,        // any other refusal by the engine
};

struct EngineStats {
  bool connected = false;
  std::uint64_t disconnects = 0;
  std::uint64_t reconnects = 0;
  std::string server;  // URL of the current server, empty while disconnected
};

class Engine {
 public:
  using Handler = std::function<void(const IncomingMessage&)>;
  // Returns the reply payload, or nullopt to send none.
  using Responder = std::function<std::optional<std::string>(const IncomingMessage&)>;

  virtual ~Engine() = default;
  // `segments` are sent back to back as one payload.
  virtual PublishOutcome publish(const std::string& subject, const Headers& headers,
                                 std::span<const std::span<const std::byte>> segments) = 0;
  // Subscribes to `pattern` (engine syntax: NATS wildcards '*' and '>') until destroyed.
  virtual void subscribe(const std::string& pattern, Handler handler) = 0;
  // Answers requests sent to `pattern`.
  virtual void serve(const std::string& pattern, Responder responder) = 0;
  // Sends a request and waits up to `timeout_ms` for one reply.
  virtual std::optional<std::string> request(const std::string& subject, std::string_view payload,
                                             int timeout_ms) = 0;
  // Largest payload the engine accepts now (the server's max_payload), 0 while unknown.
  virtual std::size_t max_payload() = 0;
  virtual EngineStats stats() = 0;

  // ---- appended: persistent streams (JetStream) and service calls ----
  // A JetStream context on this engine's connection (jetstream_engine.hpp); nullptr when the
  // engine has none.
  // (Defined in jetstream_engine.cpp.)
  virtual std::unique_ptr<class PersistentStreams> open_persistent_streams(const struct PersistentStreamsOptions&);
  // Service calls across buses (service_exporter/service_importer): a request published with a
  // reply subject, replies gathered on an inbox subscription, requests answered by publishing
  // to their reply subject. An engine without them throws std::runtime_error.
  using RequestHandler = std::function<void(const IncomingMessage&, std::string_view reply_to)>;
  virtual PublishOutcome publish_request(const std::string&, const std::string&, const Headers&, std::span<const std::byte>) {
    return PublishOutcome::failed;
  }
  // A fresh inbox subject, unique on the network; subscribe to "<inbox>.>" for its replies.
  virtual std::string new_inbox() { throw std::runtime_error("this engine has no request/reply"); }
  virtual void subscribe_requests(const std::string&, RequestHandler) {
    throw std::runtime_error("this engine has no request/reply");
  }
};

}  // namespace shmbus::bridge
