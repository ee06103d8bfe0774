// The CLI's names for the message codec (codec/message_codec.hpp, shared with the Python
// package), and the display name of a slow-subscriber policy.
#pragma once

#include "codec/message_codec.hpp"
#include "shmbus/config.hpp"

namespace shmbus::cli {

using codec::MessageCodec;
using codec::type_name_of;
const char* policy_name(SlowSubscriberPolicy policy);

}  // namespace shmbus::cli
