// The metrics counters (docs/metrics.md) count exactly what happened: child processes publish,
// lose under each slow-subscriber policy, fail loans by each reason and take malformed
// messages, and the parent reads the counts from the shared region while they still hold
// their slots (read_metrics(), as `shmbus metrics` and the daemon do).
#include <gtest/gtest.h>

#include <capnp/message.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "shmbus/metrics.hpp"
#include "shmbus/shmbus.hpp"
#include "test_messages.capnp.h"
#include "test_support.hpp"
#include "topic_admin.hpp"
#include "topic_map.hpp"

namespace shmbus {
namespace {

using namespace shmbus::testing;
using namespace std::chrono_literals;

// What a child did, as it counted it itself.
struct ChildCounts {
  std::uint64_t published = 0;
  std::uint64_t refused = 0;
  std::uint64_t timed_out = 0;
  std::uint64_t taken = 0;
  std::uint64_t lost = 0;
  std::uint64_t malformed = 0;
};

const ClientSlotInfo* find_slot(const TopicMetrics& m, ClientSlotInfo::Role role, pid_t pid) {
  for (const ClientSlotInfo& c : m.stats.clients) {
    if (c.role == role && c.pid == pid) return &c;
  }
  return nullptr;
}

TopicConfig small_topic(const std::string& tag, SlowSubscriberPolicy policy) {
  TopicConfig c;
  c.name = unique_name(tag);
  c.size_classes = {{64, 48}};
  c.queue_depth = 8;
  c.policy = policy;
  c.block_timeout = 20ms;
  return c;
}

// A child that publishes `attempts` messages of `size` bytes without waiting for anyone, counts
// what it was told, reports, and keeps its slot until `release` fires.
Child spawn_publisher(const Topic& topic, int attempts, std::size_t size, Pipe& report, Pipe& release) {
  return Child::spawn([&topic, attempts, size, &report, &release] {
    Topic mine = Topic::open_fd(topic.fd());
    RawPublisher pub(mine);
    ChildCounts n;
    std::vector<std::byte> bytes(size, std::byte{7});
    for (int i = 0; i < attempts; ++i) {
      Status st = pub.publish_copy(bytes);
      if (st.ok()) ++n.published;
      else if (st.code() == Errc::subscriber_queue_full) ++n.refused;
      else if (st.code() == Errc::timeout) ++n.timed_out;
      else return static_cast<int>(kChildFirstFree);
    }
    if (!report.send(n) || !release.await(60s)) return static_cast<int>(kChildPipeFailed);
    return static_cast<int>(kChildOk);
  });
}

// A child subscriber that registers, says so, waits for `go`, takes everything there is, and
// keeps its slot until `release`.
Child spawn_late_taker(const Topic& topic, Pipe& ready, Pipe& go, Pipe& report, Pipe& release) {
  return Child::spawn([&] {
    Topic mine = Topic::open_fd(topic.fd());
    RawSubscriber sub(mine, SubscriberOptions{.with_history = false});
    if (!ready.notify() || !go.await(60s)) return static_cast<int>(kChildPipeFailed);
    ChildCounts n;
    while (Result<RawSample> s = sub.take()) ++n.taken;
    n.lost = sub.lost();
    if (!report.send(n) || !release.await(60s)) return static_cast<int>(kChildPipeFailed);
    return static_cast<int>(kChildOk);
  });
}

TEST(MetricsCounters, DropOldestCountsPublishedBytesTakenAndOverwrittenAsTheProcessesSawThem) {
  Topic topic = Topic::create(small_topic("m-drop", SlowSubscriberPolicy::drop_oldest));
  Pipe ready, go, sub_report, pub_report, release;
  Child sub = spawn_late_taker(topic, ready, go, sub_report, release);
  ASSERT_TRUE(ready.await());
  Child pub = spawn_publisher(topic, 100, 40, pub_report, release);
  std::optional<ChildCounts> published = pub_report.receive<ChildCounts>();
  ASSERT_TRUE(published);
  ASSERT_TRUE(go.notify());
  std::optional<ChildCounts> took = sub_report.receive<ChildCounts>();
  ASSERT_TRUE(took);
  EXPECT_EQ(published->published, 100u);
  EXPECT_GT(took->lost, 0u);
  EXPECT_EQ(took->taken + took->lost, 100u);

  TopicMetrics m = read_metrics(topic);
  EXPECT_EQ(m.topic, topic.name());
  EXPECT_EQ(m.stats.published, 100u);
  const ClientSlotInfo* p = find_slot(m, ClientSlotInfo::Role::publisher, pub.pid());
  const ClientSlotInfo* s = find_slot(m, ClientSlotInfo::Role::subscriber, sub.pid());
  ASSERT_NE(p, nullptr);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(p->messages, 100u);
  EXPECT_EQ(p->counters.bytes, 100u * 40u);
  EXPECT_EQ(p->counters.refused, 0u);
  EXPECT_EQ(s->messages, took->taken);
  EXPECT_EQ(s->lost, took->lost);
  EXPECT_EQ(s->counters.malformed, 0u);
  release.notify();
  release.notify();
  EXPECT_EQ(pub.wait(), kChildOk);
  EXPECT_EQ(sub.wait(), kChildOk);
}

TEST(MetricsCounters, FailPublishCountsEveryRefusalAndBlockEveryTimeout) {
  for (SlowSubscriberPolicy policy : {SlowSubscriberPolicy::fail_publish, SlowSubscriberPolicy::block}) {
    SCOPED_TRACE(policy == SlowSubscriberPolicy::block ? "block" : "fail_publish");
    Topic topic = Topic::create(small_topic("m-refuse", policy));
    Pipe ready, go, sub_report, pub_report, release;
    Child sub = spawn_late_taker(topic, ready, go, sub_report, release);  // takes nothing until go
    ASSERT_TRUE(ready.await());
    Child pub = spawn_publisher(topic, 13, 16, pub_report, release);
    std::optional<ChildCounts> n = pub_report.receive<ChildCounts>();
    ASSERT_TRUE(n);
    EXPECT_EQ(n->published, 8u);  // the queue's depth, then the subscriber's queue is full
    const std::uint64_t failed = policy == SlowSubscriberPolicy::block ? n->timed_out : n->refused;
    EXPECT_EQ(failed, 5u);

    TopicMetrics m = read_metrics(topic);
    const ClientSlotInfo* p = find_slot(m, ClientSlotInfo::Role::publisher, pub.pid());
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(p->messages, n->published);
    EXPECT_EQ(p->counters.refused, n->refused);
    EXPECT_EQ(p->counters.timed_out, n->timed_out);
    EXPECT_EQ(p->counters.bytes, n->published * 16);
    ASSERT_TRUE(go.notify());
    ASSERT_TRUE(sub_report.receive<ChildCounts>());
    release.notify();
    release.notify();
    EXPECT_EQ(pub.wait(), kChildOk);
    EXPECT_EQ(sub.wait(), kChildOk);
  }
}

// Loans failing by each reason, and the pool's high-water mark: a child holds five loans at
// once, gives them back, loans once more, then provokes each failure a known number of times.
TEST(MetricsCounters, LoanFailuresAreCountedByReasonAndTheHighWaterMarkIsThePeak) {
  TopicConfig c = small_topic("m-loan", SlowSubscriberPolicy::drop_oldest);
  c.size_classes = {{64, 12}};
  c.max_loans_per_publisher = 16;
  Topic topic = Topic::create(c);
  Pipe report, release;
  Child child = Child::spawn([&] {
    Topic mine = Topic::open_fd(topic.fd());
    RawPublisher pub(mine);
    {
      std::vector<RawLoan> five;
      for (int i = 0; i < 5; ++i) {
        Result<RawLoan> l = pub.loan(64);
        if (!l) return static_cast<int>(kChildFirstFree);
        five.push_back(std::move(l.value()));
      }
    }
    if (!pub.loan(64)) return static_cast<int>(kChildFirstFree + 1);  // one more pop, below the peak
    for (int i = 0; i < 3; ++i) {
      if (pub.loan(65).code() != Errc::message_too_large) return static_cast<int>(kChildFirstFree + 2);
    }
    std::vector<RawLoan> all;  // the whole pool of 12, then two refusals
    for (int i = 0; i < 14; ++i) {
      Result<RawLoan> l = pub.loan(64);
      if (i < 12 && !l) return static_cast<int>(kChildFirstFree + 3);
      if (i >= 12 && l.code() != Errc::pool_exhausted) return static_cast<int>(kChildFirstFree + 4);
      if (l) all.push_back(std::move(l.value()));
    }
    if (!report.notify() || !release.await(60s)) return static_cast<int>(kChildPipeFailed);
    return static_cast<int>(kChildOk);
  });
  ASSERT_TRUE(report.await());
  TopicMetrics m = read_metrics(topic);
  const ClientSlotInfo* p = find_slot(m, ClientSlotInfo::Role::publisher, child.pid());
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->counters.loan_too_large, 3u);
  EXPECT_EQ(p->counters.loan_pool_exhausted, 2u);
  EXPECT_EQ(p->counters.loan_too_many_loans, 0u);
  ASSERT_TRUE(m.stats.high_water_kept);
  ASSERT_EQ(m.stats.classes.size(), 1u);
  EXPECT_EQ(m.stats.classes[0].high_water, 12u);  // the whole pool was out at the end
  EXPECT_EQ(m.stats.classes[0].loaned, 12u);
  release.notify();
  EXPECT_EQ(child.wait(), kChildOk);
}

TEST(MetricsCounters, HighWaterMarkStaysAtThePeakAfterTheChunksComeBack) {
  TopicConfig c = small_topic("m-peak", SlowSubscriberPolicy::drop_oldest);
  c.size_classes = {{64, 20}};
  Topic topic = Topic::create(c);
  Pipe report, release;
  Child child = Child::spawn([&] {
    Topic mine = Topic::open_fd(topic.fd());
    RawPublisher pub(mine);
    for (int round = 0; round < 3; ++round) {
      std::vector<RawLoan> held;
      for (int i = 0; i < 5 + round; ++i) {  // peaks of 5, 6, 7 chunks out at once
        Result<RawLoan> l = pub.loan(64);
        if (!l) return static_cast<int>(kChildFirstFree);
        held.push_back(std::move(l.value()));
      }
    }
    for (int i = 0; i < 4; ++i) {
      if (!pub.loan(64)) return static_cast<int>(kChildFirstFree + 1);  // one at a time
    }
    if (!report.notify() || !release.await(60s)) return static_cast<int>(kChildPipeFailed);
    return static_cast<int>(kChildOk);
  });
  ASSERT_TRUE(report.await());
  TopicMetrics m = read_metrics(topic);
  ASSERT_EQ(m.stats.classes.size(), 1u);
  EXPECT_EQ(m.stats.classes[0].high_water, 7u);
  EXPECT_EQ(m.stats.classes[0].loaned, 0u);
  release.notify();
  EXPECT_EQ(child.wait(), kChildOk);
}

TEST(MetricsCounters, MalformedMessagesAreCountedForTheSubscriberThatTookThem) {
  TopicConfig c;
  c.name = unique_name("m-malformed");
  c.type_id = capnp::typeId<test::Tree>();
  c.size_classes = {{1024, 32}};
  c.queue_depth = 8;
  Topic topic = Topic::create(c);
  Pipe ready, published, report, release;
  Child sub = Child::spawn([&] {
    Topic mine = Topic::open_fd(topic.fd());
    Subscriber<test::Tree> s(mine);
    if (!ready.notify() || !published.await(60s)) return static_cast<int>(kChildPipeFailed);
    ChildCounts n;
    for (int i = 0; i < 4; ++i) {
      auto r = s.take();
      if (r) ++n.taken;
      else if (r.code() == Errc::malformed_message) ++n.malformed;
    }
    if (!report.send(n) || !release.await(60s)) return static_cast<int>(kChildPipeFailed);
    return static_cast<int>(kChildOk);
  });
  ASSERT_TRUE(ready.await());
  {
    Publisher<test::Tree> typed(topic);
    // A struct pointer 1000 words past its one-word segment, twice; then two valid messages.
    const std::uint64_t out_of_bounds = (std::uint64_t{1000} << 2) | (std::uint64_t{1} << 32);
    for (int i = 0; i < 2; ++i) {
      Result<RawLoan> loan = typed.raw().loan(8);
      ASSERT_TRUE(loan);
      std::memcpy(loan->data().data(), &out_of_bounds, 8);
      ASSERT_TRUE(typed.raw().publish(std::move(loan.value()), 8).ok());
    }
    for (int i = 0; i < 2; ++i) {
      auto valid = typed.loan();
      ASSERT_TRUE(valid.ok());
      valid.init().setValue(i);
      ASSERT_TRUE(typed.publish(valid).ok());
    }
  }
  ASSERT_TRUE(published.notify());
  std::optional<ChildCounts> n = report.receive<ChildCounts>();
  ASSERT_TRUE(n);
  EXPECT_EQ(n->malformed, 2u);
  EXPECT_EQ(n->taken, 2u);
  TopicMetrics m = read_metrics(topic);
  const ClientSlotInfo* s = find_slot(m, ClientSlotInfo::Role::subscriber, sub.pid());
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->counters.malformed, 2u);
  EXPECT_EQ(s->messages, 4u);  // a malformed message is still taken from the queue
  release.notify();
  EXPECT_EQ(sub.wait(), kChildOk);
}

// Any client may scribble on the counters: reading them must neither crash nor report a
// pool mark beyond the pool.
TEST(MetricsCounters, ForgedCountersAreReadSafelyAndTheHighWaterMarkIsClamped) {
  TopicConfig c = small_topic("m-forged", SlowSubscriberPolicy::drop_oldest);
  Topic topic = Topic::create(c);
  RawPublisher pub(topic);
  ASSERT_TRUE(pub.publish_copy(std::vector<std::byte>(8)).ok());
  detail::TopicMap& map = detail::TopicAccess::map(topic);
  detail::PublisherSlot& slot = map.publisher(pub.slot());
  slot.refused.store(~0ULL);
  slot.published_bytes.store(~0ULL);
  // Every free list's high-water word, found through the region's section table.
  const detail::Section& section = map.header().sections[detail::kSectionFreeLists];
  auto* lists = reinterpret_cast<detail::FreeList*>(static_cast<std::byte*>(const_cast<void*>(topic.mapping_base())) +
                                                    section.offset);
  for (std::size_t i = 0; i < section.size / sizeof(detail::FreeList); ++i) lists[i].high_water.store(0xFFFF'FFF0u);
  TopicMetrics m = read_metrics(topic);
  const ClientSlotInfo* p = find_slot(m, ClientSlotInfo::Role::publisher, getpid());
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->counters.refused, ~0ULL);  // shown as it is: a statistic, not a fact to act on
  EXPECT_EQ(m.stats.classes[0].high_water, 48u);  // clamped to the class's chunk count
  EXPECT_NE(prometheus_text({m}).find("reason=\"refused\"} 18446744073709551615"), std::string::npos);
}

}  // namespace
}  // namespace shmbus
