// Conversions between shmbus's C++ types and the control protocol's Cap'n Proto structs
// (schema/control.capnp). Shared by the client library, shmbusd and the CLI; not public API.
#pragma once

#include <string>

#include "control.capnp.h"
#include "shmbus/config.hpp"

namespace shmbus::wire {

// Writes every field of `config` (a complete configuration, e.g. what a region was created
// with, or what a client asks for explicitly).
void to_wire(const TopicConfig& config, control::TopicConfig::Builder out);
// Reads a complete configuration (a daemon reply). Fields left 0 keep TopicConfig's defaults.
TopicConfig from_wire(control::TopicConfig::Reader in);

control::Policy to_wire(SlowSubscriberPolicy p);
SlowSubscriberPolicy from_wire(control::Policy p, SlowSubscriberPolicy fallback);

const char* role_name(control::Role role);

// A refusal by the access rules starts with this; the client turns it into
// Errc::access_denied (Cap'n Proto exceptions carry no error codes of their own).
inline constexpr const char* kAccessDenied = "access denied: ";
// Prefix of the daemon's refusal of a request over the connection's request budget.
inline constexpr const char* kRateLimited = "rate limit: ";

}  // namespace shmbus::wire
