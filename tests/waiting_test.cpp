// Waiting for data: wait() times out with Errc::timeout when nothing comes; a subscriber
// asleep in another process wakes when a message is published; event_fd() becomes readable
// for poll/epoll when another process publishes.
#include <gtest/gtest.h>

#include <algorithm>
#include <poll.h>
#include <sys/epoll.h>
#include <thread>
#include <time.h>
#include <unistd.h>
#include <vector>

#include "shmbus/shmbus.hpp"
#include "test_support.hpp"
#include "topic_admin.hpp"
#include "topic_map.hpp"

namespace shmbus {
namespace {

using namespace shmbus::testing;
using namespace std::chrono_literals;

std::uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);  // one clock for all processes
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
}

TopicConfig wait_topic() {
  TopicConfig c;
  c.name = unique_name("wait");
  c.size_classes = {{256, 32}};
  c.queue_depth = 8;
  return c;
}

TEST(Waiting, WaitWithoutDataTimesOut) {
  Topic topic = Topic::create(wait_topic());
  for (WaitMode mode : {WaitMode::busy_poll, WaitMode::block, WaitMode::adaptive}) {
    RawSubscriber sub(topic, SubscriberOptions{.wait_mode = mode});
    auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(sub.wait(30ms).code(), Errc::timeout);
    EXPECT_EQ(sub.take_wait(30ms).code(), Errc::timeout);
    auto elapsed = std::chrono::steady_clock::now() - start;
    EXPECT_GE(elapsed, 60ms);
    EXPECT_LT(elapsed, 5s);
  }
}

TEST(Waiting, SleepingSubscriberInAnotherProcessWakesOnPublish) {
  Topic topic = Topic::create(wait_topic());
  const int rounds = 10;
  Pipe ready, report;
  Child sleeper = Child::spawn([&] {
    Topic mine = Topic::open_fd(topic.fd());
    RawSubscriber sub(mine, SubscriberOptions{.wait_mode = WaitMode::block});
    if (!ready.notify()) return static_cast<int>(kChildPipeFailed);
    for (int i = 0; i < rounds; ++i) {
      Result<RawSample> s = sub.take_wait(10s);
      std::uint64_t woke = monotonic_ns();
      if (!s) return static_cast<int>(kChildTimedOut);
      std::optional<Stamp> stamp = check_stamped(s->data());
      if (!stamp || stamp->sequence != static_cast<std::uint64_t>(i)) return static_cast<int>(kChildBadData);
      if (!report.send(woke)) return static_cast<int>(kChildPipeFailed);
    }
    return static_cast<int>(kChildOk);
  });
  ASSERT_TRUE(ready.await());
  RawPublisher pub(topic);
  std::vector<std::uint64_t> latency_us;
  for (int i = 0; i < rounds; ++i) {
    // Publish only once the child is asleep on the futex: the wake is what is under test.
    auto give_up = std::chrono::steady_clock::now() + 10s;
    while (detail::TopicAccess::map(topic).control().sleepers.load() == 0 && std::chrono::steady_clock::now() < give_up) {
      std::this_thread::sleep_for(1ms);
    }
    ASSERT_NE(detail::TopicAccess::map(topic).control().sleepers.load(), 0u) << "the subscriber never went to sleep";
    std::uint64_t published = monotonic_ns();
    ASSERT_TRUE(publish_stamped(pub, 0, static_cast<std::uint64_t>(i), 16).ok());
    std::optional<std::uint64_t> woke = report.receive<std::uint64_t>(15s);
    ASSERT_TRUE(woke) << "round " << i << ": " << describe_exit(sleeper.wait(1s));
    latency_us.push_back((*woke - published) / 1000);
  }
  EXPECT_EQ(sleeper.wait(), kChildOk);
  std::sort(latency_us.begin(), latency_us.end());
  // A missed wake would only be noticed by the sleeper's 100 ms safety slice.
  EXPECT_LT(latency_us[rounds / 2], 20'000u) << "median wake latency " << latency_us[rounds / 2] << " us";
}

TEST(Waiting, EventFdBecomesReadableWhenAnotherProcessPublishes) {
  Topic topic = Topic::create(wait_topic());
  const int rounds = 3;
  Pipe ready;
  Child listener = Child::spawn([&] {
    Topic mine = Topic::open_fd(topic.fd());
    RawSubscriber sub(mine);
    int efd = sub.event_fd();
    int ep = epoll_create1(EPOLL_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN;
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev) != 0) return static_cast<int>(kChildFirstFree);
    for (int i = 0; i < rounds; ++i) {
      // Quiet before the publish: a descriptor that is always readable would prove nothing.
      if (epoll_wait(ep, &ev, 1, 50) != 0) return static_cast<int>(kChildFirstFree + 1);
      if (!ready.notify()) return static_cast<int>(kChildPipeFailed);
      if (epoll_wait(ep, &ev, 1, 10'000) != 1) return static_cast<int>(kChildTimedOut);
      std::uint64_t count = 0;
      if (read(efd, &count, sizeof count) != sizeof count) return static_cast<int>(kChildFirstFree + 2);
      Result<RawSample> s = sub.take();
      if (!s) return static_cast<int>(kChildFirstFree + 3);
      std::optional<Stamp> stamp = check_stamped(s->data());
      if (!stamp || stamp->sequence != static_cast<std::uint64_t>(i)) return static_cast<int>(kChildBadData);
      if (sub.take().code() != Errc::no_data) return static_cast<int>(kChildBadData);
    }
    close(ep);
    return static_cast<int>(kChildOk);
  });
  RawPublisher pub(topic);
  for (int i = 0; i < rounds; ++i) {
    ASSERT_TRUE(ready.await()) << "round " << i << ": " << describe_exit(listener.wait(1s));
    ASSERT_TRUE(publish_stamped(pub, 0, static_cast<std::uint64_t>(i), 16).ok());
  }
  int st = listener.wait();
  EXPECT_EQ(st, kChildOk) << describe_exit(st);
}

}  // namespace
}  // namespace shmbus
