// A subscriber process that joins late receives the topic's history (history_depth messages);
// one that asks for no history starts at the next message. Without a daemon the publisher's
// payload pool is reachable while its process lives, so the publisher waits here; the daemon
// keeps pools of exited publishers (daemon/tests: PoolBroker).
#include <gtest/gtest.h>

#include "shmbus/shmbus.hpp"
#include "test_support.hpp"

namespace shmbus {
namespace {

using namespace shmbus::testing;
using namespace std::chrono_literals;

constexpr std::uint64_t kPublished = 10;
constexpr std::uint32_t kHistory = 4;

// Takes what is there now and reports each publisher counter, then kNone.
constexpr std::uint64_t kNone = ~0ULL;
int report_available(const Topic& shared, SubscriberOptions options, Pipe& report) {
  Topic topic = Topic::open_fd(shared.fd());
  RawSubscriber sub(topic, options);
  while (Result<RawSample> s = sub.take()) {
    std::optional<Stamp> stamp = check_stamped(s->data());
    if (!stamp || stamp->sequence != s->sequence()) return kChildBadData;
    if (!report.send(stamp->sequence)) return kChildPipeFailed;
  }
  return report.send(kNone) ? kChildOk : kChildPipeFailed;
}

TEST(History, LateJoinerInAnotherProcessGetsTheLastMessages) {
  TopicConfig c;
  c.name = unique_name("history");
  c.size_classes = {{256, 32}};
  c.queue_depth = 8;
  c.history_depth = kHistory;
  Topic topic = Topic::create(c);
  Pipe published, done;
  Child publisher = Child::spawn([&] {
    Topic mine = Topic::open_fd(topic.fd());
    RawPublisher pub(mine);
    for (std::uint64_t i = 0; i < kPublished; ++i) {
      if (!publish_stamped(pub, 0, i, 40).ok()) return static_cast<int>(kChildFirstFree);
    }
    if (!published.notify() || !done.await()) return static_cast<int>(kChildPipeFailed);
    return static_cast<int>(kChildOk);
  });
  ASSERT_TRUE(published.await());

  Pipe report;
  Child late = Child::spawn([&] { return report_available(topic, SubscriberOptions{}, report); });
  std::vector<std::uint64_t> got;
  for (std::optional<std::uint64_t> s; (s = report.receive<std::uint64_t>()) && *s != kNone;) got.push_back(*s);
  EXPECT_EQ(got, (std::vector<std::uint64_t>{6, 7, 8, 9}));
  EXPECT_EQ(late.wait(), kChildOk);

  Child fresh = Child::spawn([&] { return report_available(topic, SubscriberOptions{.with_history = false}, report); });
  EXPECT_EQ(report.receive<std::uint64_t>(), kNone) << "a subscriber without history got old messages";
  EXPECT_EQ(fresh.wait(), kChildOk);
  done.notify();
  EXPECT_EQ(publisher.wait(), kChildOk);
}

}  // namespace
}  // namespace shmbus
