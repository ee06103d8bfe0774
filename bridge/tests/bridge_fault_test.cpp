// Faults with real SIGKILLs: the nats-server killed mid-stream and restarted (the bridges
// reconnect, resume and account for every message), and a bridge killed (its bus and the
// bus's other clients go on as if nothing happened).
#include <gtest/gtest.h>

#include <thread>

#include "bridge_harness.hpp"
#include "shmbus/shmbus.hpp"

namespace shmbus::bridge::test {
namespace {

std::uint64_t number_of(const RawSample& s) {
  std::uint64_t v = 0;
  std::memcpy(&v, s.data().data(), sizeof v);
  return v;
}

TEST(BridgeFaults, BridgesStartedBeforeTheirNatsServerRunDisconnectedThenConnectSubscribeAndCarryMessages) {
  NatsServer nats;
  nats.kill9();  // its port is known, nobody listens yet
  Bus a("a"), b("b");
  BridgeProcess bridge_a(a, nats, "busA", "[[export]]\ntopics = \"late/*\"\n");
  BridgeProcess bridge_b(b, nats, "busB", "[[import]]\ntopics = \"late/*\"\n");
  ASSERT_TRUE(eventually([&] { return !bridge_a.status().is_discarded() && !bridge_b.status().is_discarded(); }))
      << bridge_a.log() << bridge_b.log();
  EXPECT_FALSE(bridge_b.status()["nats"]["connected"].get<bool>());
  Client ca(a.client_options()), cb(b.client_options());
  TopicConfig cfg;
  cfg.name = "late/x";
  cfg.size_classes = {{64, 128}};
  RawPublisher pub = ca.publisher(ca.open_topic(cfg, Role::publisher));
  RawSubscriber sub = cb.subscriber(cb.open_topic(cfg, Role::subscriber));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  nats.start();
  // The importer's subscription waited for the first connection; then messages cross.
  std::uint64_t n = 1;
  ASSERT_TRUE(eventually([&] {
    (void)pub.publish_copy(std::as_bytes(std::span(&n, 1)));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    return bridge_b.counter("late/x", "imported") > 0;
  })) << bridge_a.log() << bridge_b.log();
  auto s = sub.take_wait(std::chrono::seconds(2));
  ASSERT_TRUE(s) << s.name();
  EXPECT_EQ(number_of(*s), 1u);
  EXPECT_TRUE(bridge_b.status()["nats"]["connected"].get<bool>());
  EXPECT_NE(bridge_b.log().find("NATS: cannot connect yet"), std::string::npos) << bridge_b.log();
}

TEST(BridgeFaults, NatsServerKilledMidStreamAndRestartedTheBridgesResumeAndCountTheLoss) {
  BridgedBuses ab("stream/*");
  TopicConfig cfg;
  cfg.name = "stream/n";
  cfg.size_classes = {{64, 512}};
  cfg.queue_depth = 256;
  RawPublisher pub = ab.ca.publisher(ab.ca.open_topic(cfg, Role::publisher));
  // On bus b the topic holds 2048 messages: the burst of what bridge a buffered while
  // disconnected must not overflow this test's own subscriber.
  TopicConfig deep = cfg;
  deep.size_classes = {{64, 2304}};
  deep.queue_depth = 2048;
  RawSubscriber sub = ab.cb.subscriber(ab.cb.open_topic(deep, Role::subscriber));
  auto send = [&](std::uint64_t n) { ASSERT_TRUE(pub.publish_copy(std::as_bytes(std::span(&n, 1))).ok()); };
  ASSERT_TRUE(resend_until([&] { send(0); }, [&] { return ab.bridge_b.counter("stream/n", "imported") > 0; })) << ab.logs();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const std::uint64_t dropped_before = ab.bridge_a.counter("stream/n", "dropped_local");
  const std::uint64_t exported_before = ab.bridge_a.counter("stream/n", "exported");

  // 2000 messages at about 1000 per second; the server dies at 0.6 s and is back at 1.4 s.
  constexpr std::uint64_t kCount = 2000;
  std::vector<std::uint64_t> got;
  auto drain = [&] {
    while (auto s = sub.take()) {
      if (number_of(*s) != 0) got.push_back(number_of(*s));
    }
  };
  const auto start = std::chrono::steady_clock::now();
  bool killed = false, restarted = false;
  for (std::uint64_t i = 1; i <= kCount; ++i) {
    send(i);
    auto t = std::chrono::steady_clock::now() - start;
    if (!killed && t > std::chrono::milliseconds(600)) {
      ab.nats.kill9();
      killed = true;
    }
    if (killed && !restarted && t > std::chrono::milliseconds(1400)) {
      ab.nats.start();
      restarted = true;
    }
    drain();
    std::this_thread::sleep_until(start + std::chrono::microseconds(1000 * i));
  }
  ASSERT_TRUE(restarted);
  // Both bridges are back and the stream resumed: the last messages arrive.
  ASSERT_TRUE(eventually([&] {
    drain();
    return !got.empty() && got.back() == kCount;
  }, std::chrono::seconds(20))) << "last received " << (got.empty() ? 0 : got.back()) << "\n" << ab.logs();
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));  // one more status round
  drain();
  for (std::size_t k = 1; k < got.size(); ++k) ASSERT_LT(got[k - 1], got[k]) << "duplicate or reordered at " << k;
  EXPECT_EQ(sub.lost(), 0u);
  // Every message is accounted for: received, lost between the buses (counted by the importing
  // bridge from the exporter's sequence), dropped before bridge A took it, or lost or refused
  // by bridge A's connection (counted there).
  const std::uint64_t lost_net = ab.bridge_b.counter("stream/n", "lost_in_transit");
  const std::uint64_t dropped = ab.bridge_a.counter("stream/n", "dropped_local") - dropped_before;
  const std::uint64_t lost_here = ab.bridge_a.counter("stream/n", "lost_disconnected") + ab.bridge_a.counter("stream/n", "refused_nats");
  EXPECT_EQ(got.size() + lost_net + dropped + lost_here, kCount) << ab.bridge_a.status().dump() << ab.bridge_b.status().dump();
  // (>=: a warm-up message may have been exported after exported_before was read)
  EXPECT_GE(ab.bridge_a.counter("stream/n", "exported") - exported_before + ab.bridge_a.counter("stream/n", "lost_disconnected"), kCount - dropped);
  EXPECT_GE(ab.bridge_a.status()["nats"].value("reconnects", 0), 1);
  EXPECT_GE(ab.bridge_b.status()["nats"].value("reconnects", 0), 1);
  EXPECT_TRUE(ab.bridge_a.status()["nats"].value("connected", false));
  std::printf("[ info ] received %zu, lost on the network %llu, dropped locally %llu, buffered while disconnected %llu\n", got.size(),
              static_cast<unsigned long long>(lost_net), static_cast<unsigned long long>(dropped),
              static_cast<unsigned long long>(ab.bridge_a.counter("stream/n", "buffered_disconnected")));
}

TEST(BridgeFaults, ABridgeKilledMidStreamLeavesItsBusAndItsOtherClientsUnaffected) {
  NatsServer nats;
  Bus a("a");
  BridgeProcess bridge(a, nats, "busA", "[[export]]\ntopics = \"*\"\n[[import]]\ntopics = \"*\"\n");
  Client ca(a.client_options());
  TopicConfig cfg;
  cfg.name = "local/n";
  cfg.size_classes = {{64, 512}};
  cfg.queue_depth = 256;
  RawPublisher pub = ca.publisher(ca.open_topic(cfg, Role::publisher));
  RawSubscriber sub = ca.subscriber(ca.open_existing_topic("local/n", Role::subscriber));
  ASSERT_TRUE(eventually([&] { return bridge.counter("local/n", "exported") > 0 || bridge.knows_topic("local/n"); })) << bridge.log();
  const pid_t bridge_pid = bridge.pid();
  constexpr std::uint64_t kCount = 3000;
  std::uint64_t next = 1;
  for (std::uint64_t i = 1; i <= kCount; ++i) {
    if (i == kCount / 3) {
      ASSERT_EQ(bridge.kill_now(SIGKILL), 128 + SIGKILL);
    }
    Status st = pub.publish_copy(std::as_bytes(std::span(&i, 1)));
    ASSERT_TRUE(st.ok()) << "publish " << i << ": " << st.name();
    while (auto s = sub.take()) {
      ASSERT_EQ(number_of(*s), next);
      ++next;
    }
  }
  while (auto s = sub.take_wait(std::chrono::milliseconds(200))) {
    ASSERT_EQ(number_of(*s), next);
    ++next;
  }
  EXPECT_EQ(next, kCount + 1);
  EXPECT_EQ(sub.lost(), 0u);
  // The daemon gave back the dead bridge's slot.
  EXPECT_TRUE(eventually([&] {
    for (const TopicListing& t : ca.list_topics()) {
      if (t.config.name != "local/n") continue;
      for (const SlotListing& s : t.slots) {
        if (s.pid == bridge_pid || (s.role == Role::subscriber && s.slot != sub.slot())) return false;
      }
    }
    return true;
  }, std::chrono::seconds(5)));
  EXPECT_TRUE(ca.connected());
}

// shmbusd of the exporting bus killed and restarted mid-stream: the data plane never stopped,
// the bridge's client reconnects and its subscriber goes on; every message still arrives.
TEST(BridgeFaults, TheExportingBusDaemonKilledAndRestartedTheStreamGoesOn) {
  BridgedBuses ab("stream/*");
  TopicConfig cfg;
  cfg.name = "stream/d";
  cfg.size_classes = {{64, 2304}};
  cfg.queue_depth = 2048;
  RawPublisher pub = ab.ca.publisher(ab.ca.open_topic(cfg, Role::publisher));
  RawSubscriber sub = ab.cb.subscriber(ab.cb.open_topic(cfg, Role::subscriber));
  auto send = [&](std::uint64_t n) { ASSERT_TRUE(pub.publish_copy(std::as_bytes(std::span(&n, 1))).ok()); };
  ASSERT_TRUE(resend_until([&] { send(0); }, [&] { return ab.bridge_b.counter("stream/d", "imported") > 0; })) << ab.logs();
  constexpr std::uint64_t kCount = 1500;
  std::vector<std::uint64_t> got;
  auto drain = [&] {
    while (auto s = sub.take()) {
      if (number_of(*s) != 0) got.push_back(number_of(*s));
    }
  };
  for (std::uint64_t i = 1; i <= kCount; ++i) {
    if (i == 500) ab.a.kill9();
    if (i == 1000) ab.a.start();
    send(i);
    drain();
    std::this_thread::sleep_for(std::chrono::microseconds(1000));
  }
  ASSERT_TRUE(eventually([&] {
    drain();
    return got.size() + ab.bridge_a.counter("stream/d", "dropped_local") >= kCount;
  }, std::chrono::seconds(15))) << got.size() << "\n" << ab.logs();
  for (std::size_t k = 1; k < got.size(); ++k) ASSERT_LT(got[k - 1], got[k]);
  EXPECT_EQ(got.back(), kCount);
  EXPECT_EQ(ab.bridge_b.counter("stream/d", "lost_in_transit"), 0u);
  EXPECT_TRUE(eventually([&] { return ab.ca.connected(); }));
}

}  // namespace
}  // namespace shmbus::bridge::test
