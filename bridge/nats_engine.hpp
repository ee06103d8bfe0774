// The Engine over NATS (Debian's cnats 3.4): one connection that reconnects forever, keeps
// what is published while disconnected in its reconnect buffer, and never receives its own
// messages back (no-echo). Credentials and TLS settings are passed to the client as given.
#pragma once

#include <memory>

#include "config.hpp"
#include "engine.hpp"

namespace shmbus::bridge {

// Connects (or keeps trying in the background when no server answers yet). Throws
// std::runtime_error naming the setting the client refused (e.g. an unreadable TLS file).
std::unique_ptr<Engine> make_nats_engine(const NatsSettings& settings, const std::string& name);

}  // namespace shmbus::bridge
