// Batches (bridge/wire.hpp): several frames of one topic in one NATS message. What the
// exporter's writer builds reads back entry by entry, aligned; every way a batch's structure
// can lie refuses it whole; through a real nats-server and bridge, hostile batches are
// refused whole or per entry, counted by reason, with loss and duplicates counted per message;
// a burst really goes out batched (and one frame per NATS message with `batch = false`).
#include <gtest/gtest.h>
#include <nats/nats.h>

#include <cstring>
#include <mutex>

#include "bridge_harness.hpp"
#include "shmbus/shmbus.hpp"
#include "wire.hpp"

namespace shmbus::bridge::test {
namespace {

std::string as_string(std::span<const std::byte> b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }
std::span<const std::byte> as_bytes(const std::string& s) { return std::as_bytes(std::span(s.data(), s.size())); }

// Appends the frame of `message` (export sequence `seq`) to `w`.
void add(BatchWriter& w, FrameWriter& f, std::uint64_t seq, const std::string& message) {
  std::span<const std::byte> parts[2] = {f.header(100 + seq, seq, {}), as_bytes(message)};
  w.add(parts);
}

template <typename T>
std::string patched(std::string bytes, std::size_t offset, T value) {
  std::memcpy(bytes.data() + offset, &value, sizeof value);
  return bytes;
}

TEST(BridgeBatch, WhatTheWriterBatchesReadsBackEntryByEntryWithEveryEntryAligned) {
  FrameWriter f(0, 0, 7, "busA");
  BatchWriter w;
  add(w, f, 1, "a");
  EXPECT_FALSE(is_batch(w.finish())) << "a batch of one is its plain frame";
  std::string why;
  std::optional<Frame> lone = decode_frame(w.finish(), why);
  ASSERT_TRUE(lone) << why;
  EXPECT_EQ(as_string(lone->payload), "a");
  add(w, f, 2, "bcdefghij");
  add(w, f, 3, std::string(64, 'z'));
  const std::string batch = as_string(w.finish());
  ASSERT_TRUE(is_batch(as_bytes(batch)));
  std::optional<BatchReader> r = BatchReader::open(as_bytes(batch), why);
  ASSERT_TRUE(r) << why;
  EXPECT_EQ(r->count(), 3u);
  std::vector<std::string> payloads;
  for (std::span<const std::byte> entry; r->next(entry);) {
    EXPECT_EQ((entry.data() - as_bytes(batch).data()) % 8, 0) << "each frame starts 8-aligned in the batch";
    std::optional<Frame> fr = decode_frame(entry, why);
    ASSERT_TRUE(fr) << why;
    EXPECT_EQ(fr->export_seq, payloads.size() + 1);
    EXPECT_EQ(fr->origin, "busA");
    payloads.emplace_back(as_string(fr->payload));
  }
  EXPECT_EQ(payloads, (std::vector<std::string>{"a", "bcdefghij", std::string(64, 'z')}));
  w.clear();
  EXPECT_EQ(w.count(), 0u);
}

TEST(BridgeBatch, EveryLyingBatchStructureIsRefusedWholeWithAReasonNamingIt) {
  FrameWriter f(0, 0, 7, "busA");
  BatchWriter w;
  add(w, f, 1, "first");
  add(w, f, 2, "second");
  const std::string good = as_string(w.finish());
  std::string why;
  ASSERT_TRUE(BatchReader::open(as_bytes(good), why)) << why;
  const std::size_t entry1 = sizeof(BatchHeader);
  // A batch whose first entry is itself a batch (with the lengths right).
  const std::string nested = [&] {
    std::string inner = good;
    BatchWriter outer;
    std::span<const std::byte> parts[1] = {as_bytes(inner)};
    outer.add(parts);
    add(outer, f, 3, "x");
    return as_string(outer.finish());
  }();
  struct Case {
    std::string bytes, reason;
  } cases[] = {
      {good.substr(0, 12), "shorter than"},
      {patched(good, 4, std::uint16_t{2}), "batch version 2"},
      {patched(good, 6, std::uint16_t{1}), "reserved"},
      {patched(good, 8, std::uint32_t{1}), "batch count 1"},
      {patched(good, 8, std::uint32_t{5000}), "batch count 5000"},
      {good.substr(0, good.size() - 8), "truncated"},
      {patched(good.substr(0, good.size() - 8), 12, static_cast<std::uint32_t>(good.size() - 8 - 16)), "claims"},
      {patched(good, 8, std::uint32_t{3}), "its bytes end after 2"},
      {patched(patched(good + std::string(8, '\0'), 12, static_cast<std::uint32_t>(good.size() - 8)), 8, std::uint32_t{2}),
       "bytes follow the last"},
      {patched(good, entry1, std::uint32_t{100000}), "claims 100000 bytes"},
      {patched(good, entry1, std::uint32_t{0}), "claims 0 bytes"},
      {patched(good, entry1 + 4, std::uint32_t{1}), "entry 0's reserved"},
      {nested, "batches do not nest"},
  };
  for (const Case& c : cases) {
    why.clear();
    EXPECT_FALSE(BatchReader::open(as_bytes(c.bytes), why)) << c.reason;
    EXPECT_NE(why.find(c.reason), std::string::npos) << "wanted '" << c.reason << "', got '" << why << "'";
  }
}

// A raw cnats client of the test sends batches to what a bridge imports.
TEST(BridgeBatch, HostileBatchesAreRefusedWholeOrPerEntryAndLossAndDuplicatesAreCountedPerMessage) {
  ImportTarget target;
  BridgeProcess& bridge = target.bridge;
  RawSubscriber& sub = target.sub;
  auto send = [&](const std::string& bytes) { ASSERT_TRUE(target.send(bytes)); };
  FrameWriter f(0, 0, 9, "evil");
  BatchWriter w;
  // 1 and 3 pass; the middle entry is not a frame: refused alone (and 2 is lost in transit).
  add(w, f, 1, "ok1");
  const std::string garbage = "no frame here, just bytes";
  std::span<const std::byte> not_a_frame[1] = {as_bytes(garbage)};
  w.add(not_a_frame);
  add(w, f, 3, "ok3");
  send(as_string(w.finish()));
  // 4 and 5 in a truncated batch: refused whole, nothing of it published (both lost in transit).
  w.clear();
  add(w, f, 4, "bad4");
  add(w, f, 5, "bad5");
  const std::string truncated = as_string(w.finish());
  send(truncated.substr(0, truncated.size() - 8));
  // 6, then 6 again and 3 again: duplicates, dropped.
  w.clear();
  add(w, f, 6, "ok6");
  add(w, f, 6, "dup6");
  add(w, f, 3, "dup3");
  send(as_string(w.finish()));
  // Our own bus's entries inside a batch are skipped silently.
  FrameWriter mine(0, 0, 9, "busB");
  w.clear();
  add(w, mine, 1, "mine1");
  add(w, mine, 2, "mine2");
  send(as_string(w.finish()));
  target.flush();

  ASSERT_TRUE(eventually([&] { return bridge.counter("in/raw", "duplicates") == 2; })) << bridge.status().dump() << bridge.log();
  EXPECT_EQ(bridge.counter("in/raw", "imported"), 3u) << bridge.status().dump();
  EXPECT_EQ(bridge.counter("in/raw", "malformed/bad_headers"), 1u);
  EXPECT_EQ(bridge.counter("in/raw", "malformed/bad_batch"), 1u);
  EXPECT_EQ(bridge.counter("in/raw", "lost_in_transit"), 3u) << "2, 4 and 5";
  for (const char* expected : {"ok1", "ok3", "ok6"}) {
    auto s = sub.take_wait(std::chrono::seconds(2));
    ASSERT_TRUE(s) << s.name();
    EXPECT_EQ(as_string(s->data()), expected);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(sub.take().code(), Errc::no_data) << "nothing invalid, duplicated or our own reached the subscriber";
  const std::string log = bridge.log();
  EXPECT_NE(log.find("refused a message (bad_batch): batch of"), std::string::npos) << log;
  EXPECT_NE(log.find("(bad_headers): batch entry: shorter than the 56-byte frame header"), std::string::npos) << log;
}

// What a NATS subscriber of the test sees of one exported topic, decoded.
struct Seen {
  std::mutex mutex;
  std::map<std::string, std::size_t> nats_messages, batches;       // by subject
  std::map<std::string, std::vector<std::pair<std::uint64_t, std::string>>> entries;  // (export_seq, payload)
  std::size_t undecodable = 0;
};

void on_seen(natsConnection*, natsSubscription*, natsMsg* m, void* closure) {
  auto* seen = static_cast<Seen*>(closure);
  const std::string subject = natsMsg_GetSubject(m);
  const auto bytes = std::as_bytes(std::span(natsMsg_GetData(m), static_cast<std::size_t>(natsMsg_GetDataLength(m))));
  std::lock_guard lock(seen->mutex);
  ++seen->nats_messages[subject];
  std::string why;
  auto take = [&](std::span<const std::byte> frame_bytes) {
    std::optional<Frame> fr = decode_frame(frame_bytes, why);
    if (!fr) ++seen->undecodable;
    else seen->entries[subject].emplace_back(fr->export_seq, as_string(fr->payload));
  };
  if (is_batch(bytes)) {
    ++seen->batches[subject];
    std::optional<BatchReader> r = BatchReader::open(bytes, why);
    if (!r) ++seen->undecodable;
    for (std::span<const std::byte> e; r && r->next(e);) take(e);
  } else {
    take(bytes);
  }
  natsMsg_Destroy(m);
}

TEST(BridgeBatch, ABurstGoesOutInFewerNatsMessagesInOrderAndBatchFalseSendsOneFrameEach) {
  NatsServer nats;
  Bus a("a");
  BridgeProcess bridge(a, nats, "busA", "[[export]]\ntopics = \"burst/batched\"\n[[export]]\ntopics = \"burst/single\"\nbatch = false\n");
  Client ca(a.client_options());
  natsConnection* nc = nullptr;
  ASSERT_EQ(natsConnection_ConnectTo(&nc, nats.url().c_str()), NATS_OK);
  Seen seen;
  natsSubscription* ns = nullptr;
  ASSERT_EQ(natsConnection_Subscribe(&ns, nc, "shmbus.burst.>", on_seen, &seen), NATS_OK);
  natsSubscription_SetPendingLimits(ns, -1, -1);
  natsConnection_Flush(nc);
  constexpr std::size_t kBurst = 3000;
  for (const std::string name : {"burst/batched", "burst/single"}) {
    const std::string subject = "shmbus." + std::string(name == "burst/batched" ? "burst.batched" : "burst.single");
    TopicConfig cfg;
    cfg.name = name;
    cfg.size_classes = {{64, 4200}};
    cfg.queue_depth = 4096;
    cfg.policy = SlowSubscriberPolicy::block;  // the bridge takes every message
    cfg.block_timeout = std::chrono::seconds(5);
    RawPublisher pub = ca.publisher(ca.open_topic(cfg, Role::publisher));
    // Until the exporter subscribed: warm-up messages reach NATS.
    ASSERT_TRUE(eventually([&] {
      (void)pub.publish_copy(as_bytes(std::string("warm")));
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      std::lock_guard lock(seen.mutex);
      return seen.nats_messages[subject] > 0;
    })) << bridge.log();
    for (std::size_t i = 0; i < kBurst; ++i) {
      Status st = pub.publish_copy(as_bytes("m" + std::to_string(i)));
      ASSERT_TRUE(st.ok()) << st.name();
    }
    ASSERT_TRUE(eventually([&] {
      std::lock_guard lock(seen.mutex);
      auto& e = seen.entries[subject];
      return !e.empty() && e.back().second == "m" + std::to_string(kBurst - 1);
    })) << bridge.status().dump();
    std::lock_guard lock(seen.mutex);
    auto& e = seen.entries[subject];
    std::size_t first = 0;
    while (first < e.size() && e[first].second != "m0") ++first;
    ASSERT_EQ(e.size() - first, kBurst) << name << ": every message once, none more";
    for (std::size_t i = 0; i < kBurst; ++i) {
      ASSERT_EQ(e[first + i].second, "m" + std::to_string(i)) << name;
      ASSERT_EQ(e[first + i].first, e[first].first + i) << name << ": export sequences without a gap";
    }
    if (name == "burst/batched") {
      EXPECT_GT(seen.batches[subject], 0u) << "a burst of " << kBurst << " went out without a batch";
      EXPECT_LT(seen.nats_messages[subject], e.size()) << "no fewer NATS messages than messages";
    } else {
      EXPECT_EQ(seen.batches[subject], 0u) << "batch = false sent a batch";
      EXPECT_EQ(seen.nats_messages[subject], e.size());
    }
  }
  EXPECT_EQ(seen.undecodable, 0u);
  ASSERT_TRUE(eventually([&] { return bridge.counter("burst/batched", "exported") >= kBurst + 1; })) << bridge.status().dump();
  EXPECT_EQ(bridge.counter("burst/batched", "dropped_local"), 0u);
  natsSubscription_Destroy(ns);
  natsConnection_Destroy(nc);
}

}  // namespace
}  // namespace shmbus::bridge::test
