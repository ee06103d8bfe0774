// The message type's schema travels with the topic region and with snapshots, so tools decode
// messages without the user's generated headers.
#include <gtest/gtest.h>

#include <capnp/dynamic.h>
#include <capnp/schema-loader.h>
#include <capnp/schema.capnp.h>
#include <capnp/serialize.h>

#include <cstring>
#include <filesystem>

#include "shmbus/shmbus.hpp"
#include "test_messages.capnp.h"

namespace shmbus {
namespace {

capnp::StructSchema load(capnp::SchemaLoader& loader, const std::string& bytes, std::uint64_t type_id) {
  EXPECT_EQ(bytes.size() % sizeof(capnp::word), 0u);
  kj::Array<capnp::word> words = kj::heapArray<capnp::word>(bytes.size() / sizeof(capnp::word));
  std::memcpy(words.begin(), bytes.data(), bytes.size());
  capnp::FlatArrayMessageReader reader(words);
  for (auto node : reader.getRoot<capnp::schema::CodeGeneratorRequest>().getNodes()) loader.load(node);
  return loader.get(type_id).asStruct();
}

TEST(SchemaRecord, TopicAndSnapshotCarryTheTypeSchema) {
  TopicConfig config = typed_topic<test::Tree>("schema-" + std::to_string(getpid()));
  config.size_classes = {{1024, 16}};
  Topic topic = Topic::create(config);
  Publisher<test::Tree> pub(topic);
  {
    auto loan = pub.loan();
    auto root = loan.init();
    root.setValue(7);
    root.initChildren(1)[0].setValue(8);
    ASSERT_TRUE(pub.publish(loan).ok());
  }
  // A tool that knows nothing of test::Tree decodes the message through the recorded schema.
  capnp::SchemaLoader loader;
  capnp::StructSchema schema = load(loader, Topic::open_fd(topic.fd()).config().schema, topic.config().type_id);
  EXPECT_EQ(schema.getProto().getDisplayName().endsWith("Tree"), true);

  std::filesystem::path file = std::filesystem::temp_directory_path() / ("shmbus-schema-" + std::to_string(getpid()));
  ASSERT_EQ(save_snapshot(topic, file), 1u);
  Snapshot snap = Snapshot::open(file);
  capnp::SchemaLoader offline;
  capnp::StructSchema from_file = load(offline, snap.schema(), snap.type_id());
  const SnapshotMessage& m = snap.messages().at(0);
  ASSERT_TRUE(m.typed);
  std::vector<kj::ArrayPtr<const capnp::word>> segments;
  for (auto seg : m.segments) segments.push_back({reinterpret_cast<const capnp::word*>(seg.data()), seg.size() / 8});
  capnp::SegmentArrayMessageReader reader(kj::arrayPtr(segments.data(), segments.size()));
  capnp::DynamicStruct::Reader tree = reader.getRoot<capnp::DynamicStruct>(from_file);
  EXPECT_EQ(tree.get("value").as<int64_t>(), 7);
  EXPECT_EQ(tree.get("children").as<capnp::DynamicList>()[0].as<capnp::DynamicStruct>().get("value").as<int64_t>(), 8);
  std::filesystem::remove(file);
}

}  // namespace
}  // namespace shmbus
