#include "message_codec.hpp"

#include <capnp/compat/json.h>
#include <capnp/schema.capnp.h>
#include <capnp/serialize-text.h>
#include <capnp/serialize.h>

#include <cstring>

#include "shmbus/error.hpp"

namespace shmbus::cli {

MessageCodec::MessageCodec(const std::string& schema, std::uint64_t type_id) {
  if (schema.empty() || type_id == 0) return;
  if (schema.size() % sizeof(capnp::word) != 0) throw Error(Errc::region_corrupt, "recorded schema is not word-aligned");
  kj::Array<capnp::word> words = kj::heapArray<capnp::word>(schema.size() / sizeof(capnp::word));
  std::memcpy(words.begin(), schema.data(), schema.size());
  capnp::FlatArrayMessageReader reader(words);
  for (auto node : reader.getRoot<capnp::schema::CodeGeneratorRequest>().getNodes()) loader_.load(node);
  type_ = loader_.get(type_id).asStruct();
}

std::string type_name_of(const TopicConfig& c) {
  if (c.type_id == 0) return "raw bytes";
  try {
    return MessageCodec(c.schema, c.type_id).type_name();
  } catch (...) {  // no usable schema recorded: the id is all we know
    return "id " + std::to_string(c.type_id);
  }
}

const char* policy_name(SlowSubscriberPolicy p) {
  switch (p) {
    case SlowSubscriberPolicy::block: return "block";
    case SlowSubscriberPolicy::drop_oldest: return "drop_oldest";
    case SlowSubscriberPolicy::fail_publish: return "fail_publish";
  }
  return "?";
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
    capnp::JsonCodec codec;
    codec.decode(kj::ArrayPtr<const char>(text.data(), text.size()), root);
  } else {
    capnp::TextCodec codec;
    codec.decode(kj::StringPtr(text.c_str()), root);
  }
}

}  // namespace shmbus::cli
