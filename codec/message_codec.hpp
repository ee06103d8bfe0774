// Decodes and encodes a topic's messages through the Cap'n Proto schema recorded in its region
// (or snapshot), without the user's generated headers. Internal (the static library
// shmbus_codec, not installed): shared by the CLI (`shmbus echo/pub`) and the Python package
// (Sample.to_dict, Publisher.publish_dict), so both read and write messages the same way.
#pragma once

#include <capnp/dynamic.h>
#include <capnp/message.h>
#include <capnp/schema-loader.h>

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "shmbus/config.hpp"

namespace shmbus::codec {

// "raw bytes", the type's display name from the recorded schema, or "id N" without one.
std::string type_name_of(const TopicConfig& config);

class MessageCodec {
 public:
  // `schema` is TopicConfig::schema / Snapshot::schema(); empty for raw topics.
  MessageCodec(const std::string& schema, std::uint64_t type_id);

  bool typed() const noexcept { return type_.has_value(); }
  std::string type_name() const;
  // Text (Cap'n Proto text format) or JSON of one message given as its segments. Throws
  // kj::Exception for a malformed message.
  std::string decode(const std::vector<std::span<const std::byte>>& segments, bool json) const;
  // Fills `builder`'s root from Cap'n Proto text or JSON. Throws kj::Exception naming what
  // did not parse, and std::invalid_argument naming a JSON member the type has no field for.
  void encode(const std::string& text, bool json, capnp::MessageBuilder& builder) const;
  capnp::StructSchema schema() const { return *type_; }

 private:
  capnp::SchemaLoader loader_;
  std::optional<capnp::StructSchema> type_;
};

}  // namespace shmbus::codec
