// Without a bus daemon, what a subscriber gets when publishers of a topic come and go (each new
// publisher in a slot creates a new generation of that slot's pool, layout.hpp "Payload
// pools"): a generation it mapped while its publisher lived stays readable while any of its
// messages is queued, after the publisher exited and a newer one took the slot; a generation
// it never mapped before its publisher exited is out of reach, and its messages are counted
// lost, never misread. With a daemon every one arrives (daemon/tests/pool_broker_test.cpp,
// PublishersInARow*). Real processes: each publisher is a forked process that exits.
#include <gtest/gtest.h>

#include <string>

#include "shmbus/shmbus.hpp"
#include "test_support.hpp"

namespace shmbus {
namespace {

using namespace shmbus::testing;
using namespace std::chrono_literals;

constexpr std::uint32_t kBody = 64;
constexpr int kNotSlotZero = kChildFirstFree;

// What the subscriber takes now: "took p.s ..." (publisher, sequence), then "lost N" in all.
std::string take_all(RawSubscriber& sub) {
  std::string took;
  for (;;) {
    auto s = sub.take();
    if (!s) {
      return "took" + took + (s.code() == Errc::no_data ? "" : std::string(" then ") + s.name()) + " lost " +
             std::to_string(sub.lost());
    }
    std::optional<Stamp> st = check_stamped(s->data());
    took += st ? " " + std::to_string(st->publisher) + "." + std::to_string(st->sequence) : " corrupt";
  }
}

TEST(PoolGenerationsWithoutDaemon, AMappedGenerationOutlivesItsPublisherAndAnUnmappedOneIsCountedLost) {
  TopicConfig cfg;
  cfg.name = unique_name("generations");
  cfg.size_classes = {{256, 32}};
  cfg.queue_depth = 16;  // far from full: any loss here is the pool's, not the queue's
  Topic topic = Topic::create(cfg);
  ASSERT_TRUE(topic.external_pools());
  Topic reader = Topic::open_fd(topic.fd());  // the subscriber's own map, with its own views
  RawSubscriber sub(reader, {.with_history = false});

  // Publisher 1 publishes 1.0, and 1.1 only after the subscriber has read 1.0 (and so mapped
  // its pool), then exits.
  Pipe first_out, go_on;
  Child one = Child::spawn([&] {
    RawPublisher pub(topic);
    if (pub.slot() != 0) return kNotSlotZero;
    if (!publish_stamped(pub, 1, 0, kBody).ok() || !first_out.notify()) return int{kChildFirstFree + 1};
    if (!go_on.receive<char>(10s)) return int{kChildTimedOut};
    return publish_stamped(pub, 1, 1, kBody).ok() ? int{kChildOk} : int{kChildFirstFree + 1};
  });
  ASSERT_TRUE(first_out.receive<char>(10s));
  EXPECT_EQ(take_all(sub), "took 1.0 lost 0");
  ASSERT_TRUE(go_on.notify());
  ASSERT_EQ(one.wait(10s), kChildOk);
  // Publishers 2 and 3 each take slot 0 over (a new generation), publish one message, exit.
  for (std::uint32_t p : {2u, 3u}) {
    Child next = Child::spawn([&] {
      RawPublisher pub(topic);
      if (pub.slot() != 0) return kNotSlotZero;
      return publish_stamped(pub, p, 0, kBody).ok() ? int{kChildOk} : int{kChildFirstFree + 1};
    });
    ASSERT_EQ(next.wait(10s), kChildOk) << "publisher " << p;
  }
  // 1.1 arrives (its generation was mapped while publisher 1 lived); 2.0 and 3.0 cannot (their
  // publishers exited before this process mapped their pools), and are counted lost.
  EXPECT_EQ(take_all(sub), "took 1.1 lost 2");
}

}  // namespace
}  // namespace shmbus
