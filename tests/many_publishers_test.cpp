// Several publisher processes on one block-policy topic: every subscriber process receives
// every message of every publisher, each publisher's messages in the order it published them.
#include <gtest/gtest.h>

#include <array>
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

}  // namespace
}  // namespace shmbus
