// Typed topics without generated code: Sample.to_dict() and Publisher.publish_dict(), through
// the Cap'n Proto schema recorded with the topic (codec/message_codec.hpp, as `shmbus echo`
// and `shmbus pub` use it).
#pragma once

#include <memory>

#include "objects.hpp"
#include "shmbus/config.hpp"

namespace shmbus::python {

// The codec of a typed topic, or null for a raw one (or one without a usable schema).
std::shared_ptr<const codec::MessageCodec> codec_of(const TopicConfig& config);
// The message as a dict. Raises Error(malformed_message) for a message that does not decode.
py::object sample_to_dict(const Sample& sample);
// Encodes `message` (a dict, through JSON as `shmbus pub --json`) into a loan and publishes it.
void publish_dict(Publisher& publisher, const py::object& message);

}  // namespace shmbus::python
