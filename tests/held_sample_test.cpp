// Samples held under a policy that respects cursors (block): the subscriber pins them with its
// cursor instead of a counted reference (bus/layout.hpp, protocol summary). A held sample must
// stay intact however far the publisher goes on, must never stop the publisher for good, and
// keeps its place in the queue only until its subscriber waits or takes half a lap past it.
#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "shmbus/shmbus.hpp"
#include "test_support.hpp"

namespace shmbus {
namespace {

using namespace shmbus::testing;
using namespace std::chrono_literals;

constexpr std::uint32_t kQueue = 8;
constexpr std::uint32_t kBody = 40;

TopicConfig block_topic(const std::string& tag, std::chrono::milliseconds block_timeout) {
  TopicConfig c;
  c.name = unique_name(tag);
  c.size_classes = {{128, kQueue + 8}};
  c.queue_depth = kQueue;
  c.policy = SlowSubscriberPolicy::block;
  c.block_timeout = block_timeout;
  return c;
}

// A publisher process that publishes stamped messages 0..n-1, failing on the first publish
// that does not succeed.
Child spawn_publisher(const Topic& topic, std::uint64_t n) {
  return Child::spawn([&topic, n] {
    Topic mine = Topic::open_fd(topic.fd());
    RawPublisher pub(mine);
    for (std::uint64_t i = 0; i < n; ++i) {
      if (!publish_stamped(pub, 1, i, kBody).ok()) return static_cast<int>(kChildTimedOut);
    }
    return static_cast<int>(kChildOk);
  });
}

std::uint64_t free_chunks(const Topic& topic) { return topic.stats().classes[0].free; }

TEST(HeldSample, OneHeldForManyLapsStaysIntactAndThePublisherProcessNeverStops) {
  const std::uint64_t n = 50 * kQueue;
  Topic topic = Topic::create(block_topic("held-laps", 10'000ms));
  RawSubscriber sub(topic);
  Child publisher = spawn_publisher(topic, n);
  Result<RawSample> first = sub.take_wait(10s);
  ASSERT_TRUE(static_cast<bool>(first)) << first.name();
  ASSERT_EQ(first->sequence(), 0u);
  // Keep the first message while taking and releasing all the others: its slot is reused
  // fifty times over, so it survives only if it was turned into a counted reference in time.
  for (std::uint64_t i = 1; i < n; ++i) {
    Result<RawSample> s = sub.take_wait(10s);
    ASSERT_TRUE(static_cast<bool>(s)) << "message " << i << ": " << s.name();
    ASSERT_EQ(s->sequence(), i);
    std::optional<Stamp> stamp = check_stamped(s->data());
    ASSERT_TRUE(static_cast<bool>(stamp)) << "message " << i << " is torn";
    ASSERT_EQ(stamp->sequence, i);
  }
  EXPECT_EQ(publisher.wait(), 0) << "the publisher process stopped";
  std::optional<Stamp> kept = check_stamped(first->data());
  ASSERT_TRUE(static_cast<bool>(kept)) << "the held sample was overwritten";
  EXPECT_EQ(kept->sequence, 0u);
  const std::uint64_t free_while_held = free_chunks(topic);
  { RawSample released = std::move(first.value()); }
  EXPECT_EQ(free_chunks(topic), free_while_held + 1) << topic.describe_pool();
}

TEST(HeldSample, KeepsItsPlaceInABlockQueueUntilReleased) {
  Topic topic = Topic::create(block_topic("held-place", 50ms));
  RawPublisher pub(topic);
  RawSubscriber sub(topic);
  ASSERT_TRUE(publish_stamped(pub, 1, 0, kBody).ok());
  Result<RawSample> held = sub.take();
  ASSERT_TRUE(static_cast<bool>(held));
  // Held, it still counts against the queue: seven more fit, the eighth waits for it.
  for (std::uint64_t i = 1; i < kQueue; ++i) ASSERT_TRUE(publish_stamped(pub, 1, i, kBody).ok()) << i;
  EXPECT_EQ(publish_stamped(pub, 1, kQueue, kBody).code(), Errc::timeout);
  { RawSample released = std::move(held.value()); }  // its place is free now
  EXPECT_TRUE(publish_stamped(pub, 1, kQueue, kBody).ok());
  EXPECT_TRUE(check_stamped(sub.take()->data()).has_value());
}

TEST(HeldSample, StopsHoldingThePublisherBackHalfALapLater) {
  Topic topic = Topic::create(block_topic("held-half", 50ms));
  RawPublisher pub(topic);
  RawSubscriber sub(topic);
  for (std::uint64_t i = 0; i < kQueue; ++i) ASSERT_TRUE(publish_stamped(pub, 1, i, kBody).ok()) << i;
  Result<RawSample> held = sub.take();
  ASSERT_TRUE(static_cast<bool>(held));
  // Take (without waiting) and release the next half queue: the held sample is then more than
  // half a lap old, and no longer holds the queue.
  for (std::uint64_t i = 1; i <= kQueue / 2; ++i) ASSERT_TRUE(static_cast<bool>(sub.take())) << i;
  for (std::uint64_t i = kQueue; i <= kQueue + kQueue / 2; ++i) {
    ASSERT_TRUE(publish_stamped(pub, 1, i, kBody).ok()) << i;
  }
  std::optional<Stamp> kept = check_stamped(held->data());
  ASSERT_TRUE(static_cast<bool>(kept));
  EXPECT_EQ(kept->sequence, 0u);
}

TEST(HeldSample, StopsHoldingThePublisherBackWhenItsSubscriberWaits) {
  Topic topic = Topic::create(block_topic("held-wait", 50ms));
  RawPublisher pub(topic);
  RawSubscriber sub(topic);
  ASSERT_TRUE(publish_stamped(pub, 1, 0, kBody).ok());
  Result<RawSample> held = sub.take();
  ASSERT_TRUE(static_cast<bool>(held));
  // Waiting for the next message must not wait on ourselves: the held sample leaves the queue.
  EXPECT_EQ(sub.wait(1ms).code(), Errc::timeout);
  for (std::uint64_t i = 1; i <= kQueue; ++i) ASSERT_TRUE(publish_stamped(pub, 1, i, kBody).ok()) << i;
  EXPECT_EQ(publish_stamped(pub, 1, kQueue + 1, kBody).code(), Errc::timeout);
  // It now holds a counted reference: tools see it, and it is intact.
  EXPECT_EQ(topic.stats().classes[0].held, 1u) << topic.describe_pool();
  std::optional<Stamp> kept = check_stamped(held->data());
  ASSERT_TRUE(static_cast<bool>(kept));
  EXPECT_EQ(kept->sequence, 0u);
}

// Samples may be released from any thread: the taking thread finishes such releases at its
// next take or wait. Here every sample is released by a second thread while the first keeps
// taking from a publisher process (run under ThreadSanitizer too).
TEST(HeldSample, ReleasedOnAnotherThreadWhileTheSubscriberKeepsTaking) {
  const std::uint64_t n = static_cast<std::uint64_t>(scaled(100'000));
  // The pool holds the queue, the samples in flight to the releasing thread, and loans.
  TopicConfig c = block_topic("held-threads", 10'000ms);
  c.max_held_per_subscriber = 4;
  Topic topic = Topic::create(c);
  RawSubscriber sub(topic);
  Child publisher = spawn_publisher(topic, n);
  DestroyingThread<RawSample> releaser;
  std::uint64_t bad = 0, next = 0;
  while (next < n) {
    Result<RawSample> s = sub.take_wait(10s);
    if (!s && s.code() == Errc::too_many_held) {
      std::this_thread::yield();  // the releaser is behind
      continue;
    }
    ASSERT_TRUE(static_cast<bool>(s)) << "message " << next << ": " << s.name() << "\n" << topic.describe_pool();
    std::optional<Stamp> stamp = check_stamped(s->data());
    if (s->sequence() != next || !stamp || stamp->sequence != next) ++bad;
    ++next;
    releaser.hand(std::move(s.value()));
  }
  releaser.finish();
  EXPECT_EQ(bad, 0u);
  EXPECT_EQ(publisher.wait(), 0) << "the publisher process stopped";
  EXPECT_EQ(sub.take().code(), Errc::no_data);  // finishes the releases left to this thread
  const TopicStats st = topic.stats();
  EXPECT_EQ(st.classes[0].held, 0u) << topic.describe_pool();
  EXPECT_EQ(st.classes[0].free + st.classes[0].in_ring, st.classes[0].total) << topic.describe_pool();
}

}  // namespace
}  // namespace shmbus
