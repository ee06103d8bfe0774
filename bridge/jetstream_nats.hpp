// PersistentStreams over NATS JetStream (cnats 3.4), on an existing connection.
#pragma once

#include <functional>
#include <memory>

#include "jetstream_engine.hpp"

struct __natsConnection;

namespace shmbus::bridge {

// A JetStream context on `connection` (which must outlive it). Throws std::runtime_error.
std::unique_ptr<PersistentStreams> make_nats_persistent_streams(__natsConnection* connection,
                                                                const PersistentStreamsOptions& options);

// The same before the engine's first connection: the context is made on first use once
// `connection` returns one; until then publish says disconnected and the others throw
// std::runtime_error (callers retry them).
std::unique_ptr<PersistentStreams> make_deferred_persistent_streams(std::function<__natsConnection*()> connection,
                                                                    const PersistentStreamsOptions& options);

}  // namespace shmbus::bridge
