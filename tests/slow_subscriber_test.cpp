// Under drop-oldest, a subscriber process that never takes does not hold anyone up: the
// publisher never waits or fails, the other subscriber processes receive every message, and
// the idle one, when it finally takes, is told exactly how much it missed.
#include <gtest/gtest.h>

#include <vector>

#include "shmbus/shmbus.hpp"
#include "test_support.hpp"

namespace shmbus {
namespace {

using namespace shmbus::testing;
using namespace std::chrono_literals;

constexpr std::uint32_t kQueue = 16;
constexpr std::uint64_t kBatch = 8;  // the publisher waits for the active subscribers' acks per batch

struct IdleReport {
  std::uint64_t first_sequence;
  std::uint64_t first_lost_before;
  std::uint64_t taken;
};

TEST(SlowSubscriber, IdleSubscriberDoesNotStallTheOthersUnderDropOldest) {
  const std::uint64_t n = 2000;
  TopicConfig c;
  c.name = unique_name("idle");
  c.size_classes = {{128, kQueue + 32}};
  c.queue_depth = kQueue;
  c.policy = SlowSubscriberPolicy::drop_oldest;
  Topic topic = Topic::create(c);
  Pipe ready, wake_idle, idle_report;
  // The idle subscriber registers, then sits until told to look.
  Child idle = Child::spawn([&] {
    Topic mine = Topic::open_fd(topic.fd());
    RawSubscriber sub(mine);
    if (!ready.notify() || !wake_idle.await(120s)) return static_cast<int>(kChildPipeFailed);
    IdleReport r{0, 0, 0};
    while (Result<RawSample> s = sub.take()) {
      if (r.taken++ == 0) r = {s->sequence(), s->lost_before(), 1};
    }
    return idle_report.send(r) ? static_cast<int>(kChildOk) : static_cast<int>(kChildPipeFailed);
  });
  // Two active subscribers acknowledge the end of each batch, so the publisher stays within
  // their queue without any help from the idle one.
  constexpr int kActive = 2;
  std::vector<std::unique_ptr<Pipe>> acks;
  std::vector<Child> active;
  for (int a = 0; a < kActive; ++a) {
    acks.push_back(std::make_unique<Pipe>());
    Pipe& ack = *acks.back();
    active.push_back(Child::spawn([&] {
      Topic mine = Topic::open_fd(topic.fd());
      RawSubscriber sub(mine);
      if (!ready.notify()) return static_cast<int>(kChildPipeFailed);
      for (std::uint64_t i = 0; i < n; ++i) {
        Result<RawSample> s = sub.take_wait(10s);
        if (!s) return static_cast<int>(kChildTimedOut);
        std::optional<Stamp> stamp = check_stamped(s->data());
        if (!stamp || stamp->sequence != i || s->sequence() != i || s->lost_before() != 0) return static_cast<int>(kChildBadData);
        if ((i + 1) % kBatch == 0 && !ack.send(i)) return static_cast<int>(kChildPipeFailed);
      }
      return sub.lost() == 0 ? static_cast<int>(kChildOk) : static_cast<int>(kChildBadData);
    }));
  }
  for (int i = 0; i < kActive + 1; ++i) ASSERT_TRUE(ready.await());

  RawPublisher pub(topic);
  for (std::uint64_t i = 0; i < n; ++i) {
    ASSERT_TRUE(publish_stamped(pub, 0, i, 16).ok()) << i;
    if ((i + 1) % kBatch == 0) {
      for (int a = 0; a < kActive; ++a) ASSERT_EQ(acks[a]->receive<std::uint64_t>(10s), i) << "active subscriber " << a;
    }
  }
  for (int a = 0; a < kActive; ++a) EXPECT_EQ(active[a].wait(), kChildOk) << "active subscriber " << a;

  // The idle subscriber is still registered, n messages behind.
  bool found_idle = false;
  for (const ClientSlotInfo& ci : topic.stats().clients) {
    if (ci.pid == idle.pid()) {
      found_idle = true;
      EXPECT_EQ(ci.backlog, n);
    }
  }
  EXPECT_TRUE(found_idle);
  ASSERT_TRUE(wake_idle.notify());
  std::optional<IdleReport> r = idle_report.receive<IdleReport>();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->first_sequence, n - kQueue);
  EXPECT_EQ(r->first_lost_before, n - kQueue);
  EXPECT_EQ(r->taken, kQueue);
  EXPECT_EQ(idle.wait(), kChildOk);
}

}  // namespace
}  // namespace shmbus
