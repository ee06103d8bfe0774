// Persistent streams (NATS JetStream) as the durable-topic rules see them: create a stream,
// publish with an acknowledgement, look up the newest message of a subject, replay a stream
// from a sequence or a time. Engine-neutral like engine.hpp: jetstream_nats.cpp is the NATS
// implementation, Engine::open_persistent_streams() hands it out.
//
// Threads: publish() and the look-ups may be called from any thread; the ack handler and the
// replay handlers run on the engine's delivery threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "engine.hpp"

namespace shmbus::bridge {

struct StreamSpec {
  std::string name;                   // JetStream stream name
  std::vector<std::string> subjects;  // e.g. {"shmbus.robot1.durable.>"}
  // Messages re-sent with the same message id within this window are stored once.
  std::chrono::milliseconds duplicate_window{std::chrono::minutes(2)};
};

// What became of one persistent publish (handed to the ack handler exactly once).
struct PersistentAck {
  const IncomingMessage& published;  // the message as sent (its headers name what it was)
  bool stored = false;               // false: refused, or no acknowledgement in time
  bool duplicate = false;            // stored before under the same message id
  std::uint64_t stream_sequence = 0;
  std::string error;                 // why not stored
};

// Where a replay starts: a stream sequence, a time (CLOCK_REALTIME ns, the server's stamp when
// it stored the message), or, with both 0, the oldest message.
struct ReplayStart {
  std::uint64_t sequence = 0;
  std::uint64_t time_ns = 0;
};

// One replayed message: the message, its stream sequence and its storage time.
struct ReplayedMessage {
  const IncomingMessage& message;
  std::uint64_t stream_sequence = 0;
  std::uint64_t time_ns = 0;
};

class Replay {
 public:
  virtual ~Replay() = default;  // stops the deliveries (none runs after it returns)
};

class PersistentStreams {
 public:
  using AckHandler = std::function<void(const PersistentAck&)>;
  using ReplayHandler = std::function<void(const ReplayedMessage&)>;
  virtual ~PersistentStreams() = default;

  // Creates the stream unless one of that name exists (kept as it is). Throws
  // std::runtime_error naming the stream and the server's reason.
  virtual void ensure_stream(const StreamSpec& spec) = 0;
  // Header `key` of the newest message on `subject` in `stream`: nullopt when there is none
  // (or the header is missing). Throws std::runtime_error when the server cannot be asked.
  virtual std::optional<std::string> last_header(const std::string& stream, const std::string& subject,
                                                 const char* key) = 0;
  // Sends without waiting; the ack handler learns the outcome (or a timeout after
  // `ack_timeout`). `msg_id` is the deduplication id. sent, or disconnected/failed/too_large
  // when the message could not even be handed over (then no ack comes).
  virtual PublishOutcome publish(const std::string& subject, const Headers& headers,
                                 std::span<const std::byte> payload, const std::string& msg_id) = 0;
  // Delivers `stream`'s messages on `subject` (wildcards allowed) in order from `start`, then
  // live ones, with no gap or duplicate across reconnects (an ordered consumer).
  virtual std::unique_ptr<Replay> replay(const std::string& stream, const std::string& subject,
                                         ReplayStart start, ReplayHandler handler) = 0;
};

struct PersistentStreamsOptions {
  PersistentStreams::AckHandler on_ack;  // may be empty when nothing is published
  std::chrono::milliseconds ack_timeout{5000};
};

}  // namespace shmbus::bridge
