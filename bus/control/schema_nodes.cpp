// serialize_schema_nodes(): the `typeSchema` bytes a client records with a topic, so that tools
// (the CLI) can decode its messages with capnp::SchemaLoader and no generated headers. The same
// bytes go into the topic region's schema section (TopicConfig::schema).
#include "shmbus/client.hpp"
#include "shmbus/detail/chunk_message.hpp"

namespace shmbus {

std::string serialize_schema_nodes(capnp::Schema schema) { return detail::serialize_schema(schema); }

}  // namespace shmbus
