#include "message_codec.hpp"

#include <capnp/compat/json.h>
#include <capnp/schema.capnp.h>
#include <capnp/serialize-text.h>
#include <capnp/serialize.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "shmbus/error.hpp"

namespace shmbus::codec {

MessageCodec::MessageCodec(const std::string& schema, std::uint64_t type_id) {
  if (schema.empty() || type_id == 0) return;
  if (schema.size() % sizeof(capnp::word) != 0) throw Error(Errc::region_corrupt, "recorded schema is not word-aligned");
  kj::Array<capnp::word> words = kj::heapArray<capnp::word>(schema.size() / sizeof(capnp::word));
  std::memcpy(words.begin(), schema.data(), schema.size());
  capnp::FlatArrayMessageReader reader(words);
  for (auto node : reader.getRoot<capnp::schema::CodeGeneratorRequest>().getNodes()) loader_.load(node);
  type_ = loader_.get(type_id).asStruct();
}

namespace {

void reject_unknown_fields(const nlohmann::json& value, capnp::Type type, const std::string& where);

// Cap'n Proto's JSON decoder skips members the schema does not have; a typo would then publish
// a message without the field, silently. (The codec honours no $Json annotations, so a
// member's name is its field's name.)
void reject_unknown_members(const nlohmann::json& object, capnp::StructSchema type, const std::string& where) {
  for (const auto& [key, member] : object.items()) {
    KJ_IF_MAYBE (field, type.findFieldByName(key)) {
      reject_unknown_fields(member, field->getType(), where.empty() ? key : where + "." + key);
    } else {
      throw std::invalid_argument("unknown field '" + key + "'" + (where.empty() ? "" : " in '" + where + "'") +
                                  " of " + type.getProto().getDisplayName().cStr() + " (JSON message)");
    }
  }
}

// Values of the wrong JSON type are left to Cap'n Proto's decoder, which names them.
void reject_unknown_fields(const nlohmann::json& value, capnp::Type type, const std::string& where) {
  if (type.isStruct() && value.is_object()) {
    reject_unknown_members(value, type.asStruct(), where);
  } else if (type.isList() && value.is_array()) {
    for (std::size_t i = 0; i < value.size(); ++i) {
      reject_unknown_fields(value[i], type.asList().getElementType(), where + "[" + std::to_string(i) + "]");
    }
  }
}

}  // namespace

std::string type_name_of(const TopicConfig& c) {
  if (c.type_id == 0) return "raw bytes";
  try {
    return MessageCodec(c.schema, c.type_id).type_name();
  } catch (...) {  // no usable schema recorded: the id is all we know
    return "id " + std::to_string(c.type_id);
  }
}

std::string MessageCodec::type_name() const {
  return type_ ? std::string(type_->getProto().getDisplayName().cStr()) : std::string("raw bytes");
}

std::string MessageCodec::decode(const std::vector<std::span<const std::byte>>& segments, bool json) const {
  std::vector<kj::ArrayPtr<const capnp::word>> words;
  for (auto s : segments) {
    words.push_back(kj::arrayPtr(reinterpret_cast<const capnp::word*>(s.data()), s.size() / sizeof(capnp::word)));
  }
  capnp::SegmentArrayMessageReader reader(kj::arrayPtr(words.data(), words.size()));
  capnp::DynamicStruct::Reader root = reader.getRoot<capnp::DynamicStruct>(*type_);
  if (json) {
    capnp::JsonCodec codec;
    return codec.encode(root).cStr();
  }
  capnp::TextCodec codec;
  return codec.encode(root).cStr();
}

void MessageCodec::encode(const std::string& text, bool json, capnp::MessageBuilder& builder) const {
  capnp::DynamicStruct::Builder root = builder.initRoot<capnp::DynamicStruct>(*type_);
  if (json) {
    nlohmann::json parsed = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (!parsed.is_discarded()) reject_unknown_fields(parsed, *type_, "");  // else capnp says what is wrong
    capnp::JsonCodec codec;
    codec.decode(kj::ArrayPtr<const char>(text.data(), text.size()), root);
  } else {
    capnp::TextCodec codec;
    codec.decode(kj::StringPtr(text.c_str()), root);
  }
}

}  // namespace shmbus::codec
