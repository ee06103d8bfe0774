// Scale: a thousand small topics in each of two processes, and one topic with 64 subscribers
// spread over four processes, every subscriber receiving every message.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "shmbus/shmbus.hpp"
#include "test_support.hpp"

namespace shmbus {
namespace {

using namespace shmbus::testing;
using namespace std::chrono_literals;

TEST(Scale, ThousandTopicsEachCarryAMessageBetweenProcesses) {
  constexpr std::size_t kTopics = 1000;
  std::vector<Topic> topics;
  std::vector<RawSubscriber> subscribers;
  topics.reserve(kTopics);
  subscribers.reserve(kTopics);
  const std::string prefix = unique_name("thousand");
  for (std::size_t i = 0; i < kTopics; ++i) {
    TopicConfig c;
    c.name = prefix + "/" + std::to_string(i);
    c.size_classes = {{256, 8}};
    c.queue_depth = 4;
    topics.push_back(Topic::create(c));
    subscribers.emplace_back(topics.back());
  }
  // Another process maps all thousand and publishes one message on each, naming the topic; it
  // lives until we have read them (its payload pools go with it when there is no daemon).
  Pipe published, done;
  Child publisher = Child::spawn([&] {
    std::vector<Topic> mine;
    std::vector<RawPublisher> pubs;
    for (const Topic& t : topics) mine.push_back(Topic::open_fd(t.fd()));
    for (const Topic& t : mine) pubs.emplace_back(t);
    for (std::size_t i = 0; i < kTopics; ++i) {
      if (!publish_stamped(pubs[i], 0, i, 100, /*extra=*/i).ok()) return static_cast<int>(kChildFirstFree);
    }
    if (!published.notify() || !done.await()) return static_cast<int>(kChildPipeFailed);
    return static_cast<int>(kChildOk);
  });
  ASSERT_TRUE(published.await());
  for (std::size_t i = 0; i < kTopics; ++i) {
    Result<RawSample> s = subscribers[i].take();
    ASSERT_TRUE(s) << "topic " << i << ": " << s.name();
    std::optional<Stamp> stamp = check_stamped(s->data());
    ASSERT_TRUE(stamp) << "topic " << i;
    EXPECT_EQ(stamp->extra, i) << "a message landed on the wrong topic";
    EXPECT_EQ(subscribers[i].take().code(), Errc::no_data) << "topic " << i;
  }
  done.notify();
  EXPECT_EQ(publisher.wait(), kChildOk);
}

// Takes every message on each of 16 subscribers of one process, round-robin.
int sixteen_subscribers(const Topic& shared, Pipe& ready, std::uint64_t n) {
  constexpr int kPerProcess = 16;
  Topic topic = Topic::open_fd(shared.fd());
  std::vector<RawSubscriber> subs;
  for (int i = 0; i < kPerProcess; ++i) subs.emplace_back(topic, SubscriberOptions{.wait_mode = WaitMode::block});
  if (!ready.notify()) return kChildPipeFailed;
  std::vector<std::uint64_t> next(kPerProcess, 0);
  auto slowest = [&] { return static_cast<std::size_t>(std::min_element(next.begin(), next.end()) - next.begin()); };
  while (next[slowest()] < n) {
    bool progress = false;
    for (int i = 0; i < kPerProcess; ++i) {
      while (next[i] < n) {
        Result<RawSample> s = subs[i].take();
        if (!s) break;
        std::optional<Stamp> stamp = check_stamped(s->data());
        if (!stamp || stamp->sequence != next[i] || s->sequence() != next[i]) return kChildBadData;
        ++next[i];
        progress = true;
      }
    }
    if (!progress && subs[slowest()].wait(10s).code() == Errc::timeout) return kChildTimedOut;
  }
  return kChildOk;
}

TEST(Scale, SixtyFourSubscribersInFourProcessesAllReceiveEverything) {
  const std::uint64_t n = static_cast<std::uint64_t>(scaled(20'000));
  TopicConfig c;
  c.name = unique_name("sixty-four");
  c.size_classes = {{128, 160}};
  c.queue_depth = 64;
  c.max_subscribers = 64;
  c.policy = SlowSubscriberPolicy::block;
  c.block_timeout = 10s;
  Topic topic = Topic::create(c);
  Pipe ready;
  std::vector<Child> children;
  for (int p = 0; p < 4; ++p) children.push_back(Child::spawn([&] { return sixteen_subscribers(topic, ready, n); }));
  for (int p = 0; p < 4; ++p) ASSERT_TRUE(ready.await());
  std::size_t registered = 0;
  for (const ClientSlotInfo& ci : topic.stats().clients) registered += ci.role == ClientSlotInfo::Role::subscriber;
  ASSERT_EQ(registered, 64u);
  RawPublisher pub(topic);
  for (std::uint64_t i = 0; i < n; ++i) ASSERT_TRUE(publish_stamped(pub, 0, i, 32).ok()) << i;
  for (int p = 0; p < 4; ++p) {
    int st = children[p].wait(120s);
    EXPECT_EQ(st, kChildOk) << "process " << p << ": " << describe_exit(st);
  }
}

}  // namespace
}  // namespace shmbus
