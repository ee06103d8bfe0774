// Several publisher processes on one topic. Block policy: every subscriber process receives
// every message of every publisher, each publisher's messages in the order it published them.
// Drop-oldest on a two-slot ring: publishers lap each other all the time, and the ring slot's
// one-writer rule (bus/layout.hpp) must still leave every message whole and every chunk owned.
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <vector>

#include "shmbus/shmbus.hpp"
#include "test_support.hpp"

namespace shmbus {
namespace {

using namespace shmbus::testing;
using namespace std::chrono_literals;

constexpr std::uint32_t kPublishers = 3;
constexpr std::uint32_t kSubscribers = 2;

struct Report {
  std::array<std::uint64_t, kPublishers> received{};
  std::uint64_t bad_checksum = 0;
  std::uint64_t bad_order = 0;  // a publisher's counter out of order, or a topic sequence gap
  std::int32_t error = 0;
};

int subscribe_all(const Topic& shared, Pipe& ready, Pipe& report, std::uint64_t per_publisher) {
  Topic topic = Topic::open_fd(shared.fd());
  RawSubscriber sub(topic);
  if (!ready.notify()) return kChildPipeFailed;
  Report r;
  std::uint64_t expected = 0;
  for (std::uint64_t total = 0; total < per_publisher * kPublishers; ++total) {
    Result<RawSample> s = sub.take_wait(10s);
    if (!s) {
      r.error = static_cast<std::int32_t>(s.code());
      break;
    }
    if (s->sequence() != expected++ || s->lost_before() != 0) ++r.bad_order;
    std::optional<Stamp> stamp = check_stamped(s->data());
    if (!stamp || stamp->publisher >= kPublishers) {
      ++r.bad_checksum;
      continue;
    }
    if (stamp->sequence != r.received[stamp->publisher]) ++r.bad_order;
    r.received[stamp->publisher] = stamp->sequence + 1;
  }
  return report.send(r) ? kChildOk : kChildPipeFailed;
}

int publish_n(const Topic& shared, Pipe& go, std::uint32_t id, std::uint64_t n) {
  Topic topic = Topic::open_fd(shared.fd());
  RawPublisher pub(topic);
  if (!go.await()) return kChildPipeFailed;
  for (std::uint64_t i = 0; i < n; ++i) {
    if (Status st = publish_stamped(pub, id, i, 24); !st.ok()) return kChildFirstFree + static_cast<int>(st.code());
  }
  return kChildOk;
}

TEST(ManyPublishers, EverySubscriberGetsEveryMessageOfEveryPublisherInOrder) {
  const std::uint64_t per_publisher = static_cast<std::uint64_t>(scaled(200'000));
  TopicConfig c;
  c.name = unique_name("many-pubs");
  c.size_classes = {{128, 512}};
  c.queue_depth = 256;
  c.policy = SlowSubscriberPolicy::block;
  c.block_timeout = 10s;
  Topic topic = Topic::create(c);
  Pipe ready, go, report;
  std::vector<Child> subscribers, publishers;
  for (std::uint32_t i = 0; i < kSubscribers; ++i) {
    subscribers.push_back(Child::spawn([&] { return subscribe_all(topic, ready, report, per_publisher); }));
  }
  for (std::uint32_t i = 0; i < kSubscribers; ++i) ASSERT_TRUE(ready.await());
  for (std::uint32_t id = 0; id < kPublishers; ++id) {
    publishers.push_back(Child::spawn([&, id] { return publish_n(topic, go, id, per_publisher); }));
  }
  for (std::uint32_t id = 0; id < kPublishers; ++id) ASSERT_TRUE(go.notify());  // all start together
  for (std::uint32_t i = 0; i < kSubscribers; ++i) {
    std::optional<Report> r = report.receive<Report>(120s);
    ASSERT_TRUE(r) << "no report from a subscriber";
    EXPECT_EQ(r->error, 0) << errc_name(static_cast<Errc>(r->error));
    EXPECT_EQ(r->bad_checksum, 0u);
    EXPECT_EQ(r->bad_order, 0u);
    for (std::uint32_t id = 0; id < kPublishers; ++id) EXPECT_EQ(r->received[id], per_publisher) << "publisher " << id;
  }
  for (Child& p : publishers) EXPECT_EQ(p.wait(), kChildOk);
  for (Child& s : subscribers) EXPECT_EQ(s.wait(), kChildOk);
  EXPECT_EQ(topic.stats().published, per_publisher * kPublishers);
}

// Four publishers on a two-slot drop-oldest ring: nearly every publish finds the slot's previous
// lap claimed by another publisher, often not yet committed, and must wait for it
// (PublisherCore::wait_for_previous_lap) before it writes the slot with plain stores. Two writers
// in one slot would lose a chunk (its ring reference never dropped) or pair one message's
// sequence with another's chunk; the subscriber and the final pool count would see either.
TEST(ManyPublishers, PublishersLappingEachOtherOnATwoSlotRingLoseNoChunk) {
  constexpr std::uint32_t kLappers = 4;
  // Kept small: on a loaded 2-core machine (ctest -j2) every lap can wait for a claimant that
  // is off the CPU, and the test then runs at scheduler speed (see bench/NOTES.md).
  const std::uint64_t per_publisher = static_cast<std::uint64_t>(scaled(50'000));
  TopicConfig c;
  c.name = unique_name("lapping-pubs");
  c.size_classes = {{128, 64}};  // one pool, shared: the ring's 2, a loan per publisher, slack
  c.queue_depth = 2;
  c.policy = SlowSubscriberPolicy::drop_oldest;
  RegionOptions shared_pool;  // the subscriber reads messages of publishers that have exited
  shared_pool.payload_in_region = true;
  Topic topic = Topic::create(c, shared_pool);
  SubscriberOptions no_history;
  no_history.with_history = false;
  RawSubscriber sub(topic, no_history);
  Pipe go;
  std::vector<Child> publishers;
  for (std::uint32_t id = 0; id < kLappers; ++id) {
    publishers.push_back(Child::spawn([&, id] { return publish_n(topic, go, id, per_publisher); }));
  }
  for (std::uint32_t id = 0; id < kLappers; ++id) ASSERT_TRUE(go.notify());

  // Take alongside until every sequence is accounted for, received or lost.
  std::array<std::uint64_t, kLappers> next_of{};
  std::uint64_t received = 0, lost = 0, bad = 0;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (received + lost < per_publisher * kLappers && std::chrono::steady_clock::now() < deadline) {
    Result<RawSample> s = sub.take_wait(100ms);  // sleeps when idle: the CPUs are the publishers'
    if (!s) {
      ASSERT_EQ(s.code(), Errc::timeout) << s.name();
      continue;
    }
    ++received;
    lost += s->lost_before();
    std::optional<Stamp> stamp = check_stamped(s->data());
    if (!stamp || stamp->publisher >= kLappers || stamp->sequence < next_of[stamp->publisher]) {
      ++bad;
      continue;
    }
    next_of[stamp->publisher] = stamp->sequence + 1;
  }
  for (Child& p : publishers) EXPECT_EQ(p.wait(), kChildOk);
  EXPECT_EQ(received + lost, per_publisher * kLappers) << "received " << received << ", lost " << lost;
  EXPECT_EQ(bad, 0u) << "messages torn, misattributed or out of a publisher's order";
  EXPECT_GT(received, 0u);
  EXPECT_EQ(topic.stats().published, per_publisher * kLappers);
  for (const SizeClassUsage& u : topic.stats().classes) {
    EXPECT_EQ(u.loaned, 0u) << topic.describe_pool();
    EXPECT_EQ(u.in_ring, c.queue_depth) << topic.describe_pool();
    EXPECT_EQ(u.free + u.in_ring, u.total) << topic.describe_pool();
  }
}

}  // namespace
}  // namespace shmbus
