// The "telemetry" topic as both example programs ask the daemon for it: whichever starts
// first creates it with this configuration, and its Cap'n Proto schema is recorded with it
// (so `shmbus echo telemetry` can print the messages).
#pragma once

#include "shmbus/shmbus.hpp"
#include "telemetry.capnp.h"

namespace examples {

inline shmbus::TopicConfig telemetry_topic() {
  shmbus::TopicConfig config = shmbus::typed_topic<shmbus::examples::Telemetry>("telemetry");
  config.size_classes = {{256, 128}};  // a Telemetry message needs ~100 bytes
  config.queue_depth = 64;             // a subscriber may fall 64 messages behind...
  config.policy = shmbus::SlowSubscriberPolicy::drop_oldest;  // ...then loses the oldest
  return config;
}

// Connection options from --bus NAME / --socket PATH (default: the bus "default").
inline shmbus::ClientOptions client_options(int argc, char** argv, const char* name) {
  shmbus::ClientOptions o;
  o.bus = flag(argc, argv, "--bus", "default");
  o.socket = flag(argc, argv, "--socket", "");
  o.name = name;
  return o;
}

}  // namespace examples
