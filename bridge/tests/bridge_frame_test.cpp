// The bridge's frame (bridge/wire.hpp): what the exporter writes decodes to the same fields,
// and every way a frame from the network can lie is refused with a reason naming the field.
// Then hostile frames through a real nats-server into a real bridge: counted per reason, and
// only the valid message reaches the local subscriber.
#include <gtest/gtest.h>
#include <nats/nats.h>

#include <cstring>

#include "bridge_harness.hpp"
#include "shmbus/shmbus.hpp"
#include "wire.hpp"

namespace shmbus::bridge::test {
namespace {

std::string as_string(std::span<const std::byte> b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }
std::span<const std::byte> as_bytes(const std::string& s) { return std::as_bytes(std::span(s.data(), s.size())); }

// A frame as the exporter sends it: header, then the message.
std::string framed(FrameWriter& w, std::uint64_t export_seq, const std::string& message, std::span<const std::uint32_t> words = {}) {
  return as_string(w.header(1000 + export_seq, export_seq, words)) + message;
}

TEST(BridgeFrame, WhatTheExporterWritesDecodesToTheSameFields) {
  FrameWriter w(0x1234, 0xabcdef, 0x77, "busA");
  std::string why;
  const std::string raw = framed(w, 5, "hello");
  std::optional<Frame> f = decode_frame(as_bytes(raw), why);
  ASSERT_TRUE(f) << why;
  EXPECT_EQ(f->type_id, 0x1234u);
  EXPECT_EQ(f->schema_id, 0xabcdefu);
  EXPECT_EQ(f->run, 0x77u);
  EXPECT_EQ(f->sequence, 1005u);
  EXPECT_EQ(f->export_seq, 5u);
  EXPECT_EQ(f->origin, "busA");
  EXPECT_EQ(f->segment_count, 0u);
  EXPECT_EQ(as_string(f->payload), "hello");
  EXPECT_EQ((raw.size() - 5) % 8, 0u) << "the header keeps Cap'n Proto words aligned";
  // A segment table, then none again: the writer's bytes follow each message.
  const std::uint32_t words[3] = {2, 1, 4};
  const std::string segmented = framed(w, 6, std::string(56, 'w'), words);
  f = decode_frame(as_bytes(segmented), why);
  ASSERT_TRUE(f) << why;
  ASSERT_EQ(f->segment_count, 3u);
  EXPECT_EQ(f->segment_words[0], 2u);
  EXPECT_EQ(f->segment_words[2], 4u);
  EXPECT_EQ(f->payload.size(), 56u);
  const std::string plain = framed(w, 7, "x");  // a named string: the frame's payload points into it
  f = decode_frame(as_bytes(plain), why);
  ASSERT_TRUE(f) << why;
  EXPECT_EQ(f->segment_count, 0u);
  EXPECT_EQ(as_string(f->payload), "x");
}

// Patches `bytes` at `offset` with `value`.
template <typename T>
std::string patched(std::string bytes, std::size_t offset, T value) {
  std::memcpy(bytes.data() + offset, &value, sizeof value);
  return bytes;
}

TEST(BridgeFrame, EveryLyingFieldIsRefusedWithAReasonNamingIt) {
  FrameWriter w(0, 0, 1, "busA");
  const std::string good = framed(w, 1, "payload");
  std::string why;
  ASSERT_TRUE(decode_frame(as_bytes(good), why)) << why;
  struct Case {
    std::string bytes, reason;
  } cases[] = {
      {"", "shorter than"},
      {good.substr(0, 55), "shorter than"},
      {patched(good, 0, std::uint32_t{0x4e424854}), "magic"},
      {patched(good, 4, std::uint16_t{2}), "frame version 2"},
      {patched(good, offsetof(FrameHeader, origin_len), std::uint16_t{0}), "origin length 0"},
      {patched(good, offsetof(FrameHeader, origin_len), std::uint16_t{5000}), "origin length 5000"},
      {patched(good, offsetof(FrameHeader, segment_count), std::uint16_t{33}), "segment count 33"},
      {patched(good, offsetof(FrameHeader, header_bytes), std::uint16_t{8}), "header length 8"},
      {patched(good, offsetof(FrameHeader, segment_count), std::uint16_t{30}), "header length"},  // table past the end
      {patched(good, offsetof(FrameHeader, export_seq), std::uint64_t{0}), "export sequence 0"},
  };
  for (const Case& c : cases) {
    why.clear();
    EXPECT_FALSE(decode_frame(as_bytes(c.bytes), why)) << c.reason;
    EXPECT_NE(why.find(c.reason), std::string::npos) << "wanted '" << c.reason << "', got '" << why << "'";
  }
}

// A raw cnats client of the test sends hostile frames to what a bridge imports.
TEST(BridgeFrame, HostileFramesFromNatsAreCountedAndOnlyTheValidOneReachesTheBus) {
  ImportTarget target;
  BridgeProcess& bridge = target.bridge;
  RawSubscriber& sub = target.sub;
  auto send = [&](const std::string& bytes) { ASSERT_TRUE(target.send(bytes)); };
  FrameWriter evil(0, 0, 9, "evil");
  const std::uint32_t lying[2] = {1, 1};
  send(framed(evil, 1, "ok"));                                                   // imported: the local topic is raw
  send("plain bytes, no frame");                                                 // bad_headers: no magic
  send(patched(framed(evil, 2, "v2"), 4, std::uint16_t{2}));                     // bad_headers: version
  send(framed(evil, 3, "a raw message with a segment table", lying));           // bad_headers: table on raw
  FrameWriter typed(12345, 1, 9, "evil");
  send(framed(typed, 4, "claims a type"));                                       // wrong_type
  send(framed(evil, 5, std::string(10000, 'x')));                               // oversized
  FrameWriter mine(0, 0, 9, "busB");
  send(framed(mine, 6, "our own, back from the network"));                                 // skipped silently
  target.flush();

  ASSERT_TRUE(eventually([&] { return bridge.counter("in/raw", "imported") == 1; })) << bridge.status().dump() << bridge.log();
  EXPECT_EQ(bridge.counter("in/raw", "malformed/bad_headers"), 3u) << bridge.status().dump();
  EXPECT_EQ(bridge.counter("in/raw", "malformed/wrong_type"), 1u);
  EXPECT_EQ(bridge.counter("in/raw", "malformed/oversized"), 1u);
  auto s = sub.take_wait(std::chrono::seconds(2));
  ASSERT_TRUE(s) << s.name();
  EXPECT_EQ(as_string(s->data()), "ok");
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(sub.take().code(), Errc::no_data);
  const std::string log = bridge.log();
  EXPECT_NE(log.find("refused a message (bad_headers): shorter than the 56-byte frame header"), std::string::npos) << log;
}

}  // namespace
}  // namespace shmbus::bridge::test
