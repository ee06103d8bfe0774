// Two buses (two shmbusd on buses "a" and "b"), one nats-server, a bridge per bus: messages
// cross intact, in order, decodable on the far side, and never loop or double.
#include <gtest/gtest.h>

#include <map>
#include <thread>

#include "bridge_harness.hpp"
#include "cli_run.hpp"
#include "shmbus/shmbus.hpp"
#include "test_messages.capnp.h"

namespace shmbus::bridge::test {
namespace {

std::uint64_t fnv(capnp::Data::Reader d) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (auto b : d) { h ^= b; h *= 0x100000001b3ull; }
  return h;
}

void publish_reading(Publisher<shmbus::test::Reading>& pub, std::uint64_t seq, std::size_t body_bytes) {
  for (int attempt = 0;; ++attempt) {
    auto loan = pub.loan(body_bytes + 256);
    ASSERT_TRUE(loan.ok()) << loan.status().name();
    auto r = loan.init();
    r.setSeq(seq);
    r.setPublisher(7);
    auto body = r.initBody(body_bytes);
    for (std::size_t i = 0; i < body_bytes; ++i) body[i] = static_cast<kj::byte>((seq * 31 + i) & 0xff);
    r.setChecksum(fnv(body));
    Status st = pub.publish(loan);
    ASSERT_TRUE(st.ok()) << st.name();
    return;
  }
}

TEST(BridgeRoundTrip, ATypedTopicPublishedOnBusAArrivesIntactAndInOrderOnBusBAndEchoDecodesIt) {
  // Deep queues and a blocking publisher: a loaded machine must not turn this test into a loss test.
  BridgedBuses ab("sensors/*", "size_classes = [[4096, 1100]]\nqueue_depth = 1024\n");
  TopicConfig cfg = typed_topic<shmbus::test::Reading>("sensors/temp");
  cfg.size_classes = {{4096, 300}};
  cfg.queue_depth = 256;
  cfg.policy = SlowSubscriberPolicy::block;
  cfg.block_timeout = std::chrono::seconds(5);
  Topic ta = ab.ca.open_topic(cfg, Role::publisher);
  Publisher<shmbus::test::Reading> pub(ta);
  ab.ca.register_publisher(pub.raw());
  // Warm up until bus B has the topic (bridge A found it, bridge B created it with its schema).
  ASSERT_TRUE(resend_until([&] { publish_reading(pub, 0, 8); },
                           [&] { return bus_has_topic(ab.cb, "sensors/temp"); })) << ab.logs();
  Topic tb = ab.cb.open_existing_topic("sensors/temp", Role::subscriber);
  EXPECT_EQ(tb.config().type_id, capnp::typeId<shmbus::test::Reading>());
  Subscriber<shmbus::test::Reading> sub(tb);
  ab.cb.register_subscriber(sub.raw());

  constexpr std::uint64_t kCount = 300;
  std::uint64_t next = 1;
  std::string failure;
  std::thread reader([&] {  // takes while the publisher publishes: the local queue holds 64
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    while (next <= kCount && std::chrono::steady_clock::now() < end && failure.empty()) {
      auto s = sub.take_wait(std::chrono::milliseconds(100));
      if (!s) continue;
      auto r = s->root();
      if (r.getSeq() == 0) continue;  // a late warm-up message
      if (r.getSeq() != next) failure = "got " + std::to_string(r.getSeq()) + " where " + std::to_string(next) + " was due";
      else if (r.getBody().size() != (next * 37) % 3000 || r.getChecksum() != fnv(r.getBody())) failure = "message " + std::to_string(next) + " changed on the way";
      else if (s->lost_before() != 0) failure = "lost before " + std::to_string(next);
      ++next;
    }
  });
  for (std::uint64_t i = 1; i <= kCount; ++i) {
    publish_reading(pub, i, (i * 37) % 3000);
    if (i % 16 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));  // the bridge's queue holds 128
  }
  reader.join();
  EXPECT_EQ(failure, "");
  EXPECT_EQ(next, kCount + 1) << ab.logs();

  // `shmbus echo` on bus B decodes the imported topic through the schema that came along.
  std::string echo_out;
  std::thread echo([&] {
    echo_out = shmbus::test::shmbus_cli("--socket " + ab.b.socket().string() + " echo sensors/temp -n 1 --timeout 10").out;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  for (int i = 0; i < 20 && echo_out.empty(); ++i) {
    publish_reading(pub, 4242, 4);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  echo.join();
  EXPECT_NE(echo_out.find("seq = 4242"), std::string::npos) << echo_out;
  EXPECT_NE(echo_out.find("publisher = 7"), std::string::npos) << echo_out;
  EXPECT_GE(ab.bridge_a.counter("sensors/temp", "exported"), kCount);
  EXPECT_GE(ab.bridge_b.counter("sensors/temp", "imported"), kCount);
  EXPECT_EQ(ab.bridge_b.counter("sensors/temp", "lost_in_transit"), 0u);
  // `shmbus-bridge status` shows the counters of the running bridge.
  auto status = shmbus::test::run_program(SHMBUS_BRIDGE_BINARY, "status -c " + ab.bridge_b.config_file().string());
  EXPECT_EQ(status.exit_code(), 0) << status.err;
  EXPECT_NE(status.out.find("bus id busB, NATS connected"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("sensors/temp"), std::string::npos) << status.out;
  ab.bridge_b.kill_now(SIGKILL);
  auto stale = shmbus::test::run_program(SHMBUS_BRIDGE_BINARY, "status -c " + ab.bridge_b.config_file().string());
  EXPECT_EQ(stale.exit_code(), 1);
  EXPECT_NE(stale.err.find("is not running"), std::string::npos) << stale.err;
}

// Both bridges export and import "chat/*" under the same prefix, and both buses publish on
// chat/room: each bus sees every message of the other exactly once, and none of its own back.
TEST(BridgeRoundTrip, BothDirectionsAtOnceOnTheSameNamesNeitherLoopNorDuplicate) {
  NatsServer nats;
  Bus a("a"), b("b");
  const std::string rules = "[[export]]\ntopics = \"chat/*\"\n[[import]]\ntopics = \"chat/*\"\n";
  BridgeProcess bridge_a(a, nats, "busA", rules);
  BridgeProcess bridge_b(b, nats, "busB", rules);
  Client ca(a.client_options()), cb(b.client_options());
  TopicConfig cfg;
  cfg.name = "chat/room";
  cfg.size_classes = {{256, 512}};
  cfg.queue_depth = 256;
  cfg.policy = SlowSubscriberPolicy::block;  // nothing dropped locally, even on a loaded machine
  cfg.block_timeout = std::chrono::seconds(5);
  Topic ta = ca.open_topic(cfg, Role::publisher), tb = cb.open_topic(cfg, Role::publisher);
  RawPublisher pa = ca.publisher(ta), pb = cb.publisher(tb);
  RawSubscriber sa = ca.subscriber(ca.open_existing_topic("chat/room", Role::subscriber));
  RawSubscriber sb = cb.subscriber(cb.open_existing_topic("chat/room", Role::subscriber));
  ASSERT_TRUE(eventually([&] { return bridge_a.knows_topic("chat/room") && bridge_b.knows_topic("chat/room"); }))
      << bridge_a.log() << bridge_b.log();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // both NATS subscriptions in place

  constexpr int kEach = 200;
  std::map<std::string, int> seen_a, seen_b;
  auto drain = [](RawSubscriber& s, std::map<std::string, int>& seen) {
    while (auto m = s.take()) seen[std::string(reinterpret_cast<const char*>(m->data().data()), m->data().size())]++;
  };
  for (int i = 0; i < kEach; ++i) {
    std::string ma = "A-" + std::to_string(i), mb = "B-" + std::to_string(i);
    ASSERT_TRUE(pa.publish_copy(std::as_bytes(std::span(ma))).ok());
    ASSERT_TRUE(pb.publish_copy(std::as_bytes(std::span(mb))).ok());
    if (i % 20 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    drain(sa, seen_a);
    drain(sb, seen_b);
  }
  eventually([&] {
    drain(sa, seen_a);
    drain(sb, seen_b);
    return seen_a.size() == 2 * kEach && seen_b.size() == 2 * kEach;
  }, std::chrono::seconds(10));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // a loop would bring more back now
  drain(sa, seen_a);
  drain(sb, seen_b);
  EXPECT_EQ(seen_a.size(), 2u * kEach);
  EXPECT_EQ(seen_b.size(), 2u * kEach);
  for (const auto& [msg, n] : seen_a) EXPECT_EQ(n, 1) << "bus a saw '" << msg << "' " << n << " times";
  for (const auto& [msg, n] : seen_b) EXPECT_EQ(n, 1) << "bus b saw '" << msg << "' " << n << " times";
  EXPECT_EQ(sa.lost(), 0u);
  EXPECT_EQ(sb.lost(), 0u);
  // The exporters met the imported messages and skipped them.
  EXPECT_TRUE(eventually([&] {
    return bridge_a.counter("chat/room", "skipped_imported") == kEach && bridge_b.counter("chat/room", "skipped_imported") == kEach;
  }, std::chrono::seconds(5))) << bridge_a.status().dump() << bridge_b.status().dump();
  EXPECT_EQ(bridge_a.counter("chat/room", "exported"), static_cast<std::uint64_t>(kEach));
  EXPECT_EQ(bridge_b.counter("chat/room", "imported"), static_cast<std::uint64_t>(kEach));
}

// A message over the server's max_payload is not sent: counted as refused, one clear line,
// and the messages after it still cross.
TEST(BridgeRoundTrip, AMessageOverTheServersMaxPayloadIsRefusedCountedAndLogged) {
  BridgedBuses ab("big/*", "", "max_payload: 1024");
  TopicConfig cfg;
  cfg.name = "big/x";
  cfg.size_classes = {{4096, 64}};
  RawPublisher pub = ab.ca.publisher(ab.ca.open_topic(cfg, Role::publisher));
  RawSubscriber sub = ab.cb.subscriber(ab.cb.open_topic(cfg, Role::subscriber));
  const std::string small = "small", large(2000, 'L');
  ASSERT_TRUE(resend_until([&] { (void)pub.publish_copy(std::as_bytes(std::span(small))); },
                           [&] { return ab.bridge_b.counter("big/x", "imported") > 0; })) << ab.logs();
  while (sub.take()) {
  }
  ASSERT_TRUE(pub.publish_copy(std::as_bytes(std::span(large))).ok());
  const std::string after = "after";
  ASSERT_TRUE(pub.publish_copy(std::as_bytes(std::span(after))).ok());
  auto s = sub.take_wait(std::chrono::seconds(5));
  ASSERT_TRUE(s) << s.name();
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(s->data().data()), s->data().size()), "after");
  EXPECT_TRUE(eventually([&] { return ab.bridge_a.counter("big/x", "refused_nats") == 1; })) << ab.bridge_a.status().dump();
  EXPECT_NE(ab.bridge_a.log().find("exceeds the NATS server's max_payload 1024: not sent"), std::string::npos) << ab.bridge_a.log();
  EXPECT_EQ(ab.bridge_b.counter("big/x", "lost_in_transit"), 0u);  // counted once, as refused, not also as lost
}

}  // namespace
}  // namespace shmbus::bridge::test
