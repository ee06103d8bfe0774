// PersistentStreams over NATS JetStream (cnats 3.4), on an existing connection.
#pragma once

#include <memory>

#include "jetstream_engine.hpp"

struct __natsConnection;

namespace shmbus::bridge {

// A JetStream context on `connection` (which must outlive it). Throws std::runtime_error.
std::unique_ptr<PersistentStreams> make_nats_persistent_streams(__natsConnection* connection,
                                                                const PersistentStreamsOptions& options);

}  // namespace shmbus::bridge
