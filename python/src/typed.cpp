// Sample.to_dict() and Publisher.publish_dict().
#include "typed.hpp"

#include <capnp/dynamic.h>

#include <vector>

#include "codec/message_codec.hpp"
#include "module.hpp"
#include "shmbus/detail/chunk_message.hpp"
#include "shmbus/raw.hpp"

namespace shmbus::python {
namespace {

// Cap'n Proto value -> Python value: structs become dicts (of the fields that are set in a
// union: only the active one), lists lists, Text str, Data bytes (a copy), enums their
// enumerant's name, integers int (also 64-bit ones, which JSON would make strings).
py::object to_python(const capnp::DynamicValue::Reader& value) {
  switch (value.getType()) {
    case capnp::DynamicValue::VOID: return py::none();
    case capnp::DynamicValue::BOOL: return py::bool_(value.as<bool>());
    case capnp::DynamicValue::INT: return py::int_(value.as<std::int64_t>());
    case capnp::DynamicValue::UINT: return py::int_(value.as<std::uint64_t>());
    case capnp::DynamicValue::FLOAT: return py::float_(value.as<double>());
    case capnp::DynamicValue::TEXT: {
      capnp::Text::Reader t = value.as<capnp::Text>();
      return py::str(t.cStr(), t.size());
    }
    case capnp::DynamicValue::DATA: {
      capnp::Data::Reader d = value.as<capnp::Data>();
      return py::bytes(reinterpret_cast<const char*>(d.begin()), d.size());
    }
    case capnp::DynamicValue::LIST: {
      py::list out;
      for (auto element : value.as<capnp::DynamicList>()) out.append(to_python(element));
      return out;
    }
    case capnp::DynamicValue::ENUM: {
      capnp::DynamicEnum e = value.as<capnp::DynamicEnum>();
      KJ_IF_MAYBE (enumerant, e.getEnumerant()) return py::str(enumerant->getProto().getName().cStr());
      return py::int_(e.getRaw());  // a value this schema does not name
    }
    case capnp::DynamicValue::STRUCT: {
      capnp::DynamicStruct::Reader s = value.as<capnp::DynamicStruct>();
      py::dict out;
      for (capnp::StructSchema::Field field : s.getSchema().getNonUnionFields()) {
        out[field.getProto().getName().cStr()] = to_python(s.get(field));
      }
      KJ_IF_MAYBE (active, s.which()) out[active->getProto().getName().cStr()] = to_python(s.get(*active));
      return out;
    }
    case capnp::DynamicValue::ANY_POINTER:
    case capnp::DynamicValue::CAPABILITY:
    case capnp::DynamicValue::UNKNOWN: return py::none();
  }
  return py::none();
}

}  // namespace

std::shared_ptr<const codec::MessageCodec> codec_of(const TopicConfig& config) {
  if (config.type_id == 0 || config.schema.empty()) return nullptr;
  try {
    auto c = std::make_shared<const codec::MessageCodec>(config.schema, config.type_id);
    return c->typed() ? c : nullptr;
  } catch (...) {  // an unusable recorded schema: the topic reads as raw bytes
    return nullptr;
  }
}

py::object sample_to_dict(const Sample& sample) {
  if (!sample.raw.valid() || sample.release_pending) raise_error(Errc::misuse, "to_dict: the sample was released");
  const std::string& topic = sample.raw.topic().name();
  if (!sample.codec) {
    raise_error(Errc::misuse, "to_dict: topic '" + topic + "' carries raw bytes (no recorded schema): read the buffer");
  }
  detail::SegmentTable table;
  if (!detail::read_segments(sample.raw, table)) {
    raise_error(Errc::malformed_message, "topic '" + topic + "': message " + std::to_string(sample.raw.sequence()) +
                                             " has a malformed segment chain");
  }
  try {
    // Bounded like a typed Subscriber's read (a hostile message cannot make it loop or
    // allocate without limit), and validated whole before anything is converted.
    capnp::SegmentArrayMessageReader reader(table.array(), detail::reader_options(sample.raw.topic()));
    if (!detail::validate_message(reader)) {
      raise_error(Errc::malformed_message, "topic '" + topic + "': message " + std::to_string(sample.raw.sequence()) +
                                               " is malformed (" + sample.codec->type_name() + ")");
    }
    return to_python(reader.getRoot<capnp::DynamicStruct>(sample.codec->schema()));
  } catch (const kj::Exception& e) {
    raise_error(Errc::malformed_message, "topic '" + topic + "': message " + std::to_string(sample.raw.sequence()) +
                                             ": " + e.getDescription().cStr());
  }
}

void publish_dict(Publisher& publisher, const py::object& message) {
  RawPublisher& raw = publisher.get();
  if (!publisher.codec) publisher.codec = codec_of(raw.topic().config());
  if (!publisher.codec) {
    raise_error(Errc::misuse, "publish_dict: topic '" + raw.topic().name() +
                                  "' carries raw bytes (no recorded schema): use loan() or publish_bytes()");
  }
  // bytes-like values (Data fields) as JSON arrays of numbers, which is how Cap'n Proto's JSON
  // codec reads Data.
  py::module_ json = py::module_::import("json");
  py::object as_list = py::module_::import("builtins").attr("list");
  std::string text;
  try {
    text = json.attr("dumps")(message, py::arg("default") = as_list).cast<std::string>();
  } catch (py::error_already_set& e) {
    throw std::invalid_argument("publish_dict: the message is not JSON-like: " + std::string(py::str(e.value())));
  }
  detail::ChunkMessageBuilder builder(detail::core_of(raw), 0);
  if (!builder.status().ok()) raise_error(builder.status().code(), raw.explain(builder.status().code(), 0));
  try {
    publisher.codec->encode(text, /*json=*/true, builder);
  } catch (const kj::Exception& e) {
    if (!builder.status().ok()) {  // the pool refused a further segment: the message outgrew it
      raise_error(builder.status().code(), "publish_dict: topic '" + raw.topic().name() + "': " + e.getDescription().cStr());
    }
    throw std::invalid_argument("publish_dict: topic '" + raw.topic().name() + "' (" + publisher.codec->type_name() +
                                "): " + e.getDescription().cStr());
  }
  Status st = builder.publish();
  if (!st) raise_status(st.code(), raw.topic(), "publish_dict");
}

}  // namespace shmbus::python
