// Non-template half of the typed API: Cap'n Proto segments in loaned chunks, and validation
// of messages read from shared memory.
#include <capnp/any.h>
#include <capnp/schema.capnp.h>
#include <capnp/serialize.h>
#include <kj/debug.h>

#include <cstring>
#include <map>

#include "metrics/counters.hpp"
#include "publisher_core.hpp"
#include "subscriber_core.hpp"
#include "topic_admin.hpp"
#include "shmbus/typed.hpp"

namespace shmbus::detail {

ChunkMessageBuilder::ChunkMessageBuilder(PublisherCore& core, std::size_t first_segment_bytes) noexcept
    : core_(&core) {
  std::uint64_t bytes = std::max<std::uint64_t>(first_segment_bytes, 8);
  std::uint32_t head = loan_segment(bytes);
  if (head == kNoChunk) return;  // status_ says why; allocateSegment will refuse
}

ChunkMessageBuilder::~ChunkMessageBuilder() noexcept(false) {
  if (published_) return;
  // Unpublished: give every chunk back. The head owns the chain only once linked at publish,
  // so return each chunk on its own.
  for (unsigned i = 0; i < count_; ++i) {
    core_->unlink_segment(chunks_[i]);
    core_->return_chunk(chunks_[i]);
  }
}

std::uint32_t ChunkMessageBuilder::loan_segment(std::uint64_t bytes) noexcept {
  if (count_ == core_->map().config().max_segments || count_ == kMaxSegments) {
    status_ = Errc::too_many_segments;
    return kNoChunk;
  }
  if (bytes_ + bytes > core_->map().config().max_message_size) {
    status_ = Errc::message_too_large;
    return kNoChunk;
  }
  Errc err = Errc::ok;
  std::uint32_t chunk = core_->loan_chunk(bytes, err);
  if (chunk == kNoChunk) {
    status_ = err;
    return kNoChunk;
  }
  // Cap'n Proto requires zeroed segments; only what an earlier message wrote can be dirty.
  core_->zero_dirty_bytes(chunk);
  chunks_[count_++] = chunk;
  return chunk;
}

kj::ArrayPtr<capnp::word> ChunkMessageBuilder::allocateSegment(unsigned minimum_words) {
  std::uint64_t want = std::uint64_t{minimum_words} * sizeof(capnp::word);
  std::uint32_t chunk;
  if (handed_out_ == 0 && count_ == 1 && core_->map().capacity(chunks_[0]) >= want) {
    chunk = chunks_[0];
  } else {
    if (handed_out_ == 0 && count_ == 1) {
      // The first chunk is too small for Cap'n Proto's first allocation: swap it out.
      core_->return_chunk(chunks_[0]);
      count_ = 0;
    }
    KJ_REQUIRE(status_.ok() || handed_out_ == 0, "shmbus: message cannot grow", errc_name(status_.code()));
    status_ = Errc::ok;
    chunk = loan_segment(want);
    if (chunk == kNoChunk) {
      // Cap'n Proto can only throw here. Say what a user can act on (the topic, the size, the
      // largest chunk and max message size for message_too_large), not KJ_REQUIRE's internals;
      // status() keeps the code.
      std::string why = core_->explain(status_.code(), want);
      kj::throwFatalException(kj::Exception(kj::Exception::Type::FAILED, __FILE__, __LINE__, kj::heapString(why.c_str())));
    }
  }
  ++handed_out_;
  std::uint64_t capacity = core_->map().capacity(chunk);
  bytes_ += capacity;
  return kj::arrayPtr(reinterpret_cast<capnp::word*>(core_->payload(chunk)), capacity / sizeof(capnp::word));
}

Status ChunkMessageBuilder::publish() noexcept {
  if (published_) return Errc::misuse;
  if (!status_.ok() && handed_out_ == 0) return status_;
  try {
    if (handed_out_ == 0) initRoot<capnp::AnyPointer>();  // an empty message is still a message
    kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>> segments = getSegmentsForOutput();
    if (segments.size() != handed_out_) return Errc::malformed_message;
    for (unsigned i = 0; i < handed_out_; ++i) {
      std::uint64_t used = segments[i].size() * sizeof(capnp::word);
      core_->describe_typed_segment(chunks_[i], used, i + 1 < handed_out_ ? chunks_[i + 1] : kNoChunk);
    }
  } catch (...) {
    return Errc::malformed_message;
  }
  // Chunks loaned but never handed to Cap'n Proto (a failed growth) go back now.
  for (unsigned i = handed_out_; i < count_; ++i) core_->return_chunk(chunks_[i]);
  core_->set_segment_count(chunks_[0], handed_out_);
  published_ = true;
  Status st = core_->commit(chunks_[0]);
  if (!st.ok()) core_->return_chunk(chunks_[0]);  // frees the whole linked chain
  return st;
}

bool read_segments(const RawSample& sample, SegmentTable& table) noexcept {
  TopicMap& m = TopicAccess::map(sample.topic());
  std::uint32_t chunk = sample.chunk();
  const std::byte* pool_base = SubscriberCore::pool_base_of(sample);
  // Every segment was loaned by the head's publisher: same pool, same pool generation. A
  // segment that claims otherwise would be read through the wrong mapping: refuse it.
  const std::uint32_t pool = m.pool_of(chunk);
  const std::uint32_t generation = m.chunk(chunk).pool_generation.load(std::memory_order_relaxed);
  std::uint32_t declared = m.chunk(chunk).segment_count.load(std::memory_order_relaxed);
  if (declared == 0 || declared > m.config().max_segments || declared > kMaxSegments) return false;
  table.count = 0;
  for (unsigned i = 0; i < declared; ++i) {
    if (!m.valid_chunk(chunk) || m.pool_of(chunk) != pool ||
        m.chunk(chunk).pool_generation.load(std::memory_order_relaxed) != generation) {
      return false;
    }
    std::uint64_t used = m.chunk(chunk).used_bytes.load(std::memory_order_relaxed);
    if (used % sizeof(capnp::word) != 0 || used > m.capacity(chunk)) return false;
    table.segments[table.count++] =
        kj::arrayPtr(reinterpret_cast<const capnp::word*>(m.payload_at(pool_base, chunk)), used / sizeof(capnp::word));
    chunk = m.chunk(chunk).next_segment.load(std::memory_order_relaxed);
  }
  return chunk == kNoChunk;
}

capnp::ReaderOptions reader_options(const Topic& topic) noexcept {
  capnp::ReaderOptions o;
  // Room for validation plus many full reads of the largest message; the limit exists to stop
  // amplification attacks (pointers aliasing the same data), not honest readers.
  std::uint64_t words = topic.config().max_message_size / sizeof(capnp::word);
  o.traversalLimitInWords = std::max<std::uint64_t>(64 * words, 8 * 1024 * 1024);
  o.nestingLimit = 64;
  return o;
}

void count_malformed(RawSubscriber& subscriber) noexcept {
  SubscriberCore& core = TopicAccess::core(subscriber);
  bump(core.map().subscriber(core.slot()).malformed);
}

bool validate_message(capnp::MessageReader& reader) noexcept {
  try {
    reader.getRoot<capnp::AnyPointer>().targetSize();
    return true;
  } catch (...) {
    return false;
  }
}

PublisherCore& core_of(RawPublisher& publisher) noexcept { return TopicAccess::core(publisher); }

namespace {
void collect_type(capnp::Type type, std::map<std::uint64_t, capnp::schema::Node::Reader>& nodes);

void collect(capnp::Schema schema, std::map<std::uint64_t, capnp::schema::Node::Reader>& nodes) {
  capnp::schema::Node::Reader node = schema.getProto();
  if (!nodes.emplace(node.getId(), node).second) return;
  if (node.isStruct()) {
    for (capnp::StructSchema::Field field : schema.asStruct().getFields()) collect_type(field.getType(), nodes);
  } else if (node.isInterface()) {
    for (capnp::InterfaceSchema::Method method : schema.asInterface().getMethods()) {
      collect(method.getParamType(), nodes);
      collect(method.getResultType(), nodes);
    }
  }
}

void collect_type(capnp::Type type, std::map<std::uint64_t, capnp::schema::Node::Reader>& nodes) {
  if (type.isStruct()) collect(type.asStruct(), nodes);
  else if (type.isEnum()) collect(type.asEnum(), nodes);
  else if (type.isInterface()) collect(type.asInterface(), nodes);
  else if (type.isList()) collect_type(type.asList().getElementType(), nodes);
}
}  // namespace

std::string serialize_schema(capnp::Schema root) {
  std::map<std::uint64_t, capnp::schema::Node::Reader> nodes;
  collect(root, nodes);
  capnp::MallocMessageBuilder message;
  auto request = message.initRoot<capnp::schema::CodeGeneratorRequest>();
  auto list = request.initNodes(static_cast<unsigned>(nodes.size()));
  unsigned i = 0;
  for (const auto& [id, node] : nodes) list.setWithCaveats(i++, node);
  kj::Array<capnp::word> flat = capnp::messageToFlatArray(message);
  kj::ArrayPtr<const char> bytes = flat.asChars();
  return std::string(bytes.begin(), bytes.size());
}

}  // namespace shmbus::detail
