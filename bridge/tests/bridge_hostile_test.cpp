// Hostile input from NATS: a raw cnats client of the test sends garbage, wrong type ids,
// oversized payloads and malformed headers to the subjects a bridge imports. Each is counted
// per reason and topic, the bridge keeps serving, and local subscribers see only the valid
// messages. And the importer needs publish rights like any client.
#include <gtest/gtest.h>
#include <nats/nats.h>

#include <capnp/message.h>
#include <capnp/serialize.h>

#include "bridge_harness.hpp"
#include "shmbus/shmbus.hpp"
#include "engine.hpp"
#include "subjects.hpp"
#include "test_messages.capnp.h"

namespace shmbus::bridge::test {
namespace {

// A plain cnats connection of the test, publishing whatever it is told to.
class RawNats {
 public:
  explicit RawNats(const std::string& url) {
    if (natsConnection_ConnectTo(&nc_, url.c_str()) != NATS_OK) throw std::runtime_error("test cannot connect to " + url);
  }
  ~RawNats() {
    if (sub_) natsSubscription_Destroy(sub_);
    natsConnection_Destroy(nc_);
  }
  void publish(const std::string& subject, const std::string& data, const Headers& headers) {
    natsMsg* m = nullptr;
    ASSERT_EQ(natsMsg_Create(&m, subject.c_str(), nullptr, data.data(), static_cast<int>(data.size())), NATS_OK);
    for (const auto& [k, v] : headers) natsMsgHeader_Set(m, k.c_str(), v.c_str());
    ASSERT_EQ(natsConnection_PublishMsg(nc_, m), NATS_OK);
    natsMsg_Destroy(m);
    natsConnection_Flush(nc_);
  }
  // Answers schema requests on `subject` with `bytes`, as an exporting bridge does.
  void serve(const std::string& subject, std::string bytes) {
    bytes_ = std::move(bytes);
    ASSERT_EQ(natsConnection_Subscribe(&sub_, nc_, subject.c_str(), &RawNats::answer, this), NATS_OK);
    natsConnection_Flush(nc_);
  }

 private:
  static void answer(natsConnection* nc, natsSubscription*, natsMsg* m, void* self) {
    const std::string& b = static_cast<RawNats*>(self)->bytes_;
    if (natsMsg_GetReply(m)) natsConnection_Publish(nc, natsMsg_GetReply(m), b.data(), static_cast<int>(b.size()));
    natsMsg_Destroy(m);
  }
  natsConnection* nc_ = nullptr;
  natsSubscription* sub_ = nullptr;
  std::string bytes_;
};

std::string reading_bytes(std::uint64_t seq) {
  capnp::MallocMessageBuilder b;
  auto r = b.initRoot<shmbus::test::Reading>();
  r.setSeq(seq);
  r.setPublisher(3);
  auto words = capnp::messageToFlatArray(b);  // one segment: drop the 8-byte segment table
  auto bytes = words.asChars();
  return std::string(bytes.begin() + 8, bytes.end());
}

TEST(BridgeHostileInput, GarbageWrongTypesOversizedAndMalformedHeadersAreCountedAndNeverReachSubscribers) {
  NatsServer nats;
  Bus b("b");
  BridgeProcess bridge(b, nats, "busB", "[[import]]\ntopics = \"in/*\"\n");
  Client cb(b.client_options());
  // The local topics exist already: a typed one and a raw one with 4 KiB chunks.
  TopicConfig typed = typed_topic<shmbus::test::Reading>("in/typed");
  Topic tt = cb.open_topic(typed, Role::publisher);
  TopicConfig raw;
  raw.name = "in/raw";
  raw.size_classes = {{4096, 32}};
  Topic tr = cb.open_topic(raw, Role::publisher);
  Subscriber<shmbus::test::Reading> typed_sub(cb.open_existing_topic("in/typed", Role::subscriber));
  cb.register_subscriber(typed_sub.raw());
  RawSubscriber raw_sub = cb.subscriber(cb.open_existing_topic("in/raw", Role::subscriber));

  const std::string schema = serialize_schema_nodes(capnp::Schema::from<shmbus::test::Reading>());
  const std::string schema_id = schema_id_of(schema);
  RawNats net(nats.url());
  net.serve(schema_subject("shmbus", schema_id), schema);
  const std::string type = std::to_string(capnp::typeId<shmbus::test::Reading>());
  std::uint64_t seq = 0;
  auto good = [&](const std::string& t, const std::string& sid) {
    Headers h = {{kHeaderOrigin, "evil"}, {kHeaderRun, "0000000000000001"}, {kHeaderType, t},
                 {kHeaderExportSeq, std::to_string(++seq)}};
    if (!sid.empty()) h.emplace_back(kHeaderSchema, sid);
    return h;
  };
  ASSERT_TRUE(eventually([&] { return !bridge.status().is_discarded(); })) << bridge.log();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // its subscription is in place

  // Garbage: not whole words; whole words whose root is a list pointer; a far pointer to nowhere.
  net.publish("shmbus.in.typed", "thirteen byte", good(type, schema_id));
  net.publish("shmbus.in.typed", std::string("\x01\x00\x00\x00\x00\x00\x00\x00", 8) + std::string(8, '\0'), good(type, schema_id));
  net.publish("shmbus.in.typed", std::string("\x02\x00\x00\x00\x07\x00\x00\x00", 8), good(type, schema_id));
  // Wrong type id.
  net.publish("shmbus.in.typed", reading_bytes(1), good("12345", schema_id));
  net.publish("shmbus.in.raw", "raw bytes claiming a type", good(type, schema_id));
  // Oversized for the local pool (4 KiB chunks).
  net.publish("shmbus.in.raw", std::string(10000, 'x'), good("0", ""));
  // Malformed headers: none at all; no type; an unreadable sequence; a lying segment table.
  net.publish("shmbus.in.raw", "no headers", {});
  net.publish("shmbus.in.raw", "no type", {{kHeaderOrigin, "evil"}, {kHeaderRun, "1"}, {kHeaderExportSeq, "999"}});
  net.publish("shmbus.in.raw", "bad seq", {{kHeaderOrigin, "evil"}, {kHeaderRun, "1"}, {kHeaderType, "0"}, {kHeaderExportSeq, "-3"}});
  Headers lying = good(type, schema_id);
  lying.emplace_back(kHeaderSegments, "3,5");
  net.publish("shmbus.in.typed", reading_bytes(2), lying);
  // Then one valid message per topic: the bridge still serves.
  net.publish("shmbus.in.raw", "ok", good("0", ""));
  net.publish("shmbus.in.typed", reading_bytes(77), good(type, schema_id));

  ASSERT_TRUE(eventually([&] { return bridge.counter("in/typed", "imported") == 1 && bridge.counter("in/raw", "imported") == 1; }))
      << bridge.status().dump() << bridge.log();
  EXPECT_EQ(bridge.counter("in/typed", "malformed/garbage"), 3u) << bridge.status().dump();
  EXPECT_EQ(bridge.counter("in/typed", "malformed/wrong_type"), 1u);
  EXPECT_EQ(bridge.counter("in/raw", "malformed/wrong_type"), 1u);
  EXPECT_EQ(bridge.counter("in/raw", "malformed/oversized"), 1u);
  EXPECT_EQ(bridge.counter("in/raw", "malformed/bad_headers"), 3u);
  EXPECT_EQ(bridge.counter("in/typed", "malformed/bad_headers"), 1u);

  // Local subscribers got exactly the valid ones.
  auto r = raw_sub.take_wait(std::chrono::seconds(2));
  ASSERT_TRUE(r) << r.name();
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(r->data().data()), r->data().size()), "ok");
  EXPECT_EQ(raw_sub.take().code(), Errc::no_data);
  auto t = typed_sub.take_wait(std::chrono::seconds(2));
  ASSERT_TRUE(t) << t.name();
  EXPECT_EQ(t->root().getSeq(), 77u);
  EXPECT_EQ(typed_sub.take().code(), Errc::no_data);
  // One clear line per reason and topic.
  const std::string log = bridge.log();
  EXPECT_NE(log.find("import of 'in/raw': refused a message (oversized)"), std::string::npos) << log;
  EXPECT_NE(log.find("import of 'in/typed': refused a message (garbage)"), std::string::npos) << log;
}

// The bridge runs as uid 65534; the bus lets everybody publish on open/* but only root on
// locked/*. Importing locked/x is refused with a clear line and counted; open/x crosses.
TEST(BridgeHostileInput, ImportingWithoutPublishRightsIsRefusedWithAClearError) {
  if (std::string why = shmbusd::test::other_uid_unavailable(); !why.empty()) GTEST_SKIP() << why;
  NatsServer nats;
  Bus b("b", "socket_dir_mode = 0o755\n"
             "[[access]]\ntopic = \"open/*\"\npublish = [\"*\"]\nsubscribe = [\"*\"]\n"
             "[[access]]\ntopic = \"locked/*\"\npublish = [\"uid:0\"]\nsubscribe = [\"*\"]\n");
  std::filesystem::permissions(b.dir(), std::filesystem::perms::all);  // the bridge (uid 65534) writes its status here
  BridgeProcess bridge(b, nats, "busB", "[[import]]\ntopics = \"*\"\n",
                       {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"});
  ASSERT_TRUE(eventually([&] { return !bridge.status().is_discarded(); })) << bridge.log();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  RawNats net(nats.url());
  Headers h = {{kHeaderOrigin, "busA"}, {kHeaderRun, "0000000000000001"}, {kHeaderType, "0"}, {kHeaderExportSeq, "1"}};
  net.publish("shmbus.locked.x", "secret", h);
  net.publish("shmbus.open.x", "hello", h);
  ASSERT_TRUE(eventually([&] { return bridge.counter("locked/x", "refused_local") == 1 && bridge.counter("open/x", "imported") == 1; }))
      << bridge.status().dump() << bridge.log();
  Client cb(b.client_options());
  EXPECT_FALSE(bus_has_topic(cb, "locked/x"));
  EXPECT_TRUE(bus_has_topic(cb, "open/x"));
  const std::string log = bridge.log();
  EXPECT_NE(log.find("import of 'locked/x': the local bus refused it:"), std::string::npos) << log;
  EXPECT_NE(log.find("publish"), std::string::npos) << log;
}

}  // namespace
}  // namespace shmbus::bridge::test
