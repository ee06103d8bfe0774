#include "jetstream_engine.hpp"

namespace shmbus::bridge {

// An engine without persistent streams: the JetStream rules refuse to start.
std::unique_ptr<PersistentStreams> Engine::open_persistent_streams(const PersistentStreamsOptions&) { return nullptr; }

}  // namespace shmbus::bridge
