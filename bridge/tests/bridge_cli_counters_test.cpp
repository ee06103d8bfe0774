// What a bridge refused or dropped shows in the real `shmbus topic info` and `shmbus clients`
// of its bus (read from the bridge's status file next to the bus's socket), on both sides:
// the exporter's refusals by NATS and the importer's hostile input by reason.
#include <gtest/gtest.h>
#include <nats/nats.h>

#include "bridge_harness.hpp"
#include "cli_run.hpp"
#include "shmbus/shmbus.hpp"

namespace shmbus::bridge::test {
namespace {

using nlohmann::json;

json cli_json(const Bus& bus, const std::string& args) {
  shmbus::test::CliRun r = shmbus::test::shmbus_cli("--socket " + bus.socket().string() + " --json " + args);
  EXPECT_EQ(r.exit_code(), 0) << r.err;
  json j = json::parse(r.out, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << r.out;
  return j;
}

TEST(BridgeCliCounters, RefusedByNatsAndHostileInputShowInTopicInfoAndClients) {
  BridgedBuses ab("big/*", "", "max_payload: 1024");
  TopicConfig cfg;
  cfg.name = "big/x";
  cfg.size_classes = {{4096, 64}};
  RawPublisher pub = ab.ca.publisher(ab.ca.open_topic(cfg, Role::publisher));
  RawSubscriber sub = ab.cb.subscriber(ab.cb.open_topic(cfg, Role::subscriber));
  const std::string small = "small", large(2000, 'L');
  ASSERT_TRUE(resend_until([&] { (void)pub.publish_copy(std::as_bytes(std::span(small))); },
                           [&] { return ab.bridge_b.counter("big/x", "imported") > 0; })) << ab.logs();
  ASSERT_TRUE(pub.publish_copy(std::as_bytes(std::span(large))).ok());  // over max_payload: refused by NATS
  // Hostile input into bus b's bridge: a payload without the bridge's frame.
  natsConnection* nc = nullptr;
  ASSERT_EQ(natsConnection_ConnectTo(&nc, ab.nats.url().c_str()), NATS_OK);
  ASSERT_EQ(natsConnection_PublishString(nc, "shmbus.big.x", "not a frame"), NATS_OK);
  natsConnection_Flush(nc);
  natsConnection_Destroy(nc);
  ASSERT_TRUE(eventually([&] {
    return ab.bridge_a.counter("big/x", "refused_nats") == 1 && ab.bridge_b.counter("big/x", "malformed/bad_headers") == 1;
  })) << ab.bridge_a.status().dump() << ab.bridge_b.status().dump();

  // Bus a: topic info names the bridge and what NATS refused.
  json info = cli_json(ab.a, "topic info big/x");
  ASSERT_EQ(info["bridges"].size(), 1u) << info.dump();
  EXPECT_EQ(info["bridges"][0]["pid"], ab.bridge_a.pid());
  EXPECT_EQ(info["bridges"][0]["bus_id"], "busA");
  EXPECT_EQ(info["bridges"][0]["refused_nats"], 1u);
  EXPECT_GE(info["bridges"][0]["exported"].get<std::uint64_t>(), 1u);
  // Bus b: the importer's hostile input, by reason.
  json info_b = cli_json(ab.b, "topic info big/x");
  ASSERT_EQ(info_b["bridges"].size(), 1u) << info_b.dump();
  EXPECT_EQ(info_b["bridges"][0]["pid"], ab.bridge_b.pid());
  EXPECT_EQ(info_b["bridges"][0]["malformed"]["bad_headers"], 1u);
  EXPECT_GE(info_b["bridges"][0]["imported"].get<std::uint64_t>(), 1u);
  shmbus::test::CliRun text = shmbus::test::shmbus_cli("--socket " + ab.b.socket().string() + " topic info big/x");
  EXPECT_NE(text.out.find("NATS bridges"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("bad_headers 1"), std::string::npos) << text.out;

  // clients: the bridge's entry carries its counters; other clients none.
  json clients = cli_json(ab.a, "clients");
  bool found = false;
  for (const json& c : clients) {
    if (c["pid"] == ab.bridge_a.pid()) {
      found = true;
      EXPECT_EQ(c["bridge"]["topics"]["big/x"]["refused_nats"], 1u) << c.dump();
    } else {
      EXPECT_FALSE(c.contains("bridge")) << c.dump();
    }
  }
  EXPECT_TRUE(found) << clients.dump();
  shmbus::test::CliRun clients_text = shmbus::test::shmbus_cli("--socket " + ab.a.socket().string() + " clients");
  EXPECT_NE(clients_text.out.find("REFUSED BY NATS"), std::string::npos) << clients_text.out;

  // A dead bridge's stale file is not shown.
  ab.bridge_a.kill_now(SIGKILL);
  ASSERT_TRUE(eventually([&] { return cli_json(ab.a, "topic info big/x")["bridges"].empty(); }));
}

}  // namespace
}  // namespace shmbus::bridge::test
