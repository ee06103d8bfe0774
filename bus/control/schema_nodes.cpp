// serialize_schema_nodes(): the `typeSchema` bytes a client records with a topic, so that tools
// (the CLI) can decode its messages with capnp::SchemaLoader and no generated headers.
#include <capnp/message.h>
#include <capnp/schema.capnp.h>
#include <capnp/serialize.h>

#include <map>

#include "shmbus/client.hpp"

namespace shmbus {

namespace {

void collect(capnp::Schema s, std::map<std::uint64_t, capnp::Schema>& out);

void collect_type(capnp::Type t, std::map<std::uint64_t, capnp::Schema>& out) {
  if (t.isStruct()) collect(t.asStruct(), out);
  else if (t.isEnum()) collect(t.asEnum(), out);
  else if (t.isInterface()) collect(t.asInterface(), out);
  else if (t.isList()) collect_type(t.asList().getElementType(), out);
}

void collect(capnp::Schema s, std::map<std::uint64_t, capnp::Schema>& out) {
  if (!out.emplace(s.getProto().getId(), s).second) return;
  if (s.getProto().isStruct()) {
    for (capnp::StructSchema::Field f : s.asStruct().getFields()) collect_type(f.getType(), out);
  }
}

}  // namespace

std::string serialize_schema_nodes(capnp::Schema schema) {
  std::map<std::uint64_t, capnp::Schema> nodes;
  collect(schema, nodes);
  capnp::MallocMessageBuilder message;
  auto request = message.initRoot<capnp::schema::CodeGeneratorRequest>();
  auto list = request.initNodes(static_cast<unsigned>(nodes.size()));
  unsigned i = 0;
  for (auto& [id, s] : nodes) list.setWithCaveats(i++, s.getProto());
  kj::Array<capnp::word> words = capnp::messageToFlatArray(message);
  auto bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

}  // namespace shmbus
