// Single-process behaviour of the raw and typed APIs: ordering, history, policies, errors.
#include <gtest/gtest.h>

#include <cstring>

#include "shmbus/shmbus.hpp"
#include "test_messages.capnp.h"

namespace shmbus {
namespace {

TopicConfig small_topic(const std::string& name) {
  TopicConfig c;
  c.name = name;
  c.size_classes = {{256, 64}, {4096, 16}};
  c.queue_depth = 8;
  return c;
}

std::span<const std::byte> bytes_of(const std::string& s) {
  return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

TEST(PubSubBasic, RawMessagesArriveInOrderInPlace) {
  Topic topic = Topic::create(small_topic("basic"));
  RawPublisher pub(topic);
  RawSubscriber sub(topic);
  for (int i = 0; i < 5; ++i) {
    Result<RawLoan> loan = pub.loan(100);
    ASSERT_TRUE(loan) << loan.name();
    std::memset(loan->data().data(), 'a' + i, 100);
    ASSERT_TRUE(pub.publish(std::move(loan.value()), 50).ok());
  }
  for (int i = 0; i < 5; ++i) {
    Result<RawSample> s = sub.take();
    ASSERT_TRUE(s) << s.name();
    EXPECT_EQ(s->sequence(), static_cast<std::uint64_t>(i));
    ASSERT_EQ(s->data().size(), 50u);
    EXPECT_EQ(static_cast<char>(s->data()[0]), 'a' + i);
    std::optional<Topic::PayloadLocation> at = topic.locate_payload(s->data().data());
    ASSERT_TRUE(at) << "the payload lies in no pool mapping of the topic";
    EXPECT_LE(at->offset + s->data().size(), at->mapping_size);
  }
  EXPECT_EQ(sub.take().code(), Errc::no_data);
}

TEST(PubSubBasic, DropOldestCountsExactLosses) {
  Topic topic = Topic::create(small_topic("drop"));
  RawPublisher pub(topic);
  RawSubscriber sub(topic);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(pub.publish_copy(bytes_of("x")).ok());
  Result<RawSample> s = sub.take();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->sequence(), 12u);  // queue depth 8: 20 - 8
  EXPECT_EQ(s->lost_before(), 12u);
  std::uint64_t n = 1;
  while (sub.take()) ++n;
  EXPECT_EQ(n, 8u);
  EXPECT_EQ(sub.lost(), 12u);
}

TEST(PubSubBasic, FailPolicyRefusesWhenQueueFull) {
  TopicConfig c = small_topic("fail");
  c.policy = SlowSubscriberPolicy::fail_publish;
  Topic topic = Topic::create(c);
  RawPublisher pub(topic);
  RawSubscriber sub(topic);
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(pub.publish_copy(bytes_of("x")).ok());
  EXPECT_EQ(pub.publish_copy(bytes_of("x")).code(), Errc::subscriber_queue_full);
  ASSERT_TRUE(sub.take());
  EXPECT_TRUE(pub.publish_copy(bytes_of("x")).ok());
}

TEST(PubSubBasic, BlockPolicyTimesOut) {
  TopicConfig c = small_topic("block");
  c.policy = SlowSubscriberPolicy::block;
  c.block_timeout = std::chrono::milliseconds(20);
  Topic topic = Topic::create(c);
  RawPublisher pub(topic);
  RawSubscriber sub(topic);
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(pub.publish_copy(bytes_of("x")).ok());
  EXPECT_EQ(pub.publish_copy(bytes_of("x")).code(), Errc::timeout);
}

TEST(PubSubBasic, LateJoinerGetsHistory) {
  TopicConfig c = small_topic("history");
  c.history_depth = 3;
  Topic topic = Topic::create(c);
  RawPublisher pub(topic);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(pub.publish_copy(bytes_of(std::to_string(i))).ok());
  RawSubscriber sub(topic);
  std::vector<std::uint64_t> seqs;
  while (auto s = sub.take()) seqs.push_back(s->sequence());
  EXPECT_EQ(seqs, (std::vector<std::uint64_t>{7, 8, 9}));
}

TEST(PubSubBasic, PoolExhaustionNamesTopicAndHolders) {
  TopicConfig c = small_topic("exhaust");
  c.size_classes = {{64, 4}};
  Topic topic = Topic::create(c);
  RawPublisher pub(topic);
  std::vector<RawLoan> loans;
  for (int i = 0; i < 4; ++i) loans.push_back(std::move(pub.loan(10).value()));
  Result<RawLoan> more = pub.loan(10);
  EXPECT_EQ(more.code(), Errc::pool_exhausted);
  std::string why = pub.explain(more.code(), 10);
  EXPECT_NE(why.find("exhaust"), std::string::npos) << why;
  EXPECT_NE(why.find("4 loaned by publishers"), std::string::npos) << why;
  loans.clear();
  EXPECT_TRUE(pub.loan(10));
}

TEST(PubSubBasic, TypedRoundTripInPlace) {
  Topic topic = Topic::create(small_topic("typed"));
  Publisher<test::Reading> pub(topic);
  Subscriber<test::Reading> sub(topic);
  {
    auto loan = pub.loan();
    ASSERT_TRUE(loan.ok()) << loan.status().name();
    auto r = loan.init();
    r.setSeq(42);
    r.setBody(kj::StringPtr("hello").asBytes());
    ASSERT_TRUE(pub.publish(loan).ok());
  }
  auto s = sub.take();
  ASSERT_TRUE(s) << s.name();
  EXPECT_EQ(s->root().getSeq(), 42u);
  EXPECT_EQ(kj::heapString(s->root().getBody().asChars()), "hello");
}

TEST(PubSubBasic, TypedMessageGrowsPastFirstChunk) {
  TopicConfig c = small_topic("grow");
  c.max_message_size = 64 * 1024;
  Topic topic = Topic::create(c);
  Publisher<test::Blob> pub(topic);
  Subscriber<test::Blob> sub(topic);
  {
    auto loan = pub.loan();
    auto parts = loan.init().initParts(4);
    for (unsigned i = 0; i < 4; ++i) {
      auto d = parts.init(i, 3000);
      std::memset(d.begin(), 'A' + i, d.size());
    }
    ASSERT_TRUE(pub.publish(loan).ok());
  }
  auto s = sub.take();
  ASSERT_TRUE(s) << s.name();
  EXPECT_GT(s->segment_count(), 1u);
  auto parts = s->root().getParts();
  ASSERT_EQ(parts.size(), 4u);
  for (unsigned i = 0; i < 4; ++i) {
    ASSERT_EQ(parts[i].size(), 3000u);
    EXPECT_EQ(parts[i][2999], 'A' + i);
  }
}

TEST(PubSubBasic, ForeignFileIsRefused) {
  char path[] = "/tmp/shmbus-foreignXXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  std::string junk(8192, 'j');
  ASSERT_EQ(write(fd, junk.data(), junk.size()), 8192);
  close(fd);
  try {
    Topic::open_file(path);
    FAIL() << "foreign file was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::not_a_region);
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos);
  }
  unlink(path);
}

}  // namespace
}  // namespace shmbus
