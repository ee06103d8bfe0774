// Samples held under drop-oldest: the subscriber pins them (no counted reference, no write to
// the chunk header), and the publisher that overwrites a pinned message's ring slot turns the
// pin into a counted reference before it lets the chunk go (bus/layout.hpp, protocol
// summary). A held sample must stay intact however often the publisher laps the ring, and
// every reference the publisher counts for a subscriber must come back.
#include <gtest/gtest.h>

#include <deque>
#include <random>
#include <string>
#include <vector>

#include "shmbus/shmbus.hpp"
#include "test_support.hpp"

namespace shmbus {
namespace {

using namespace shmbus::testing;
using namespace std::chrono_literals;

constexpr std::uint32_t kBody = 40;

TopicConfig drop_oldest_topic(const std::string& tag, std::uint32_t queue) {
  TopicConfig c;
  c.name = unique_name(tag);
  c.size_classes = {{128, queue + 16}};
  c.queue_depth = queue;
  c.policy = SlowSubscriberPolicy::drop_oldest;
  return c;
}

// The busy chunks held by a subscriber, and how many of them are still pins.
struct HeldChunks {
  std::size_t held = 0;
  std::size_t pinned = 0;
};
HeldChunks held_chunks(const Topic& topic) {
  HeldChunks h;
  for (const Topic::ChunkInfo& c : topic.busy_chunks()) {
    if (c.state.find("held by subscriber") == std::string::npos) continue;
    ++h.held;
    if (c.state.find("pinned") != std::string::npos) ++h.pinned;
  }
  return h;
}

void expect_every_chunk_free_or_queued(const Topic& topic) {
  const TopicStats st = topic.stats();
  EXPECT_EQ(st.classes[0].held, 0u) << topic.describe_pool();
  EXPECT_EQ(st.classes[0].free + st.classes[0].in_ring, st.classes[0].total) << topic.describe_pool();
}

TEST(PinnedUnderDropOldest, HeldSamplesStayIntactWhileAPublisherProcessLapsTheRing) {
  constexpr std::uint32_t kQueue = 8;
  constexpr std::uint64_t kHeld = 3, kLaps = 50;
  Topic topic = Topic::create(drop_oldest_topic("pin-laps", kQueue));
  RawSubscriber sub(topic);
  Pipe published, go;
  Child publisher = Child::spawn([&topic, &published, &go] {
    Topic mine = Topic::open_fd(topic.fd());
    RawPublisher pub(mine);
    for (std::uint64_t i = 0; i < kHeld; ++i) {
      if (!publish_stamped(pub, 1, i, kBody).ok()) return static_cast<int>(kChildThrew);
    }
    published.notify();
    if (!go.await()) return static_cast<int>(kChildTimedOut);
    for (std::uint64_t i = kHeld; i < kHeld + kLaps * kQueue; ++i) {
      if (!publish_stamped(pub, 1, i, kBody).ok()) return static_cast<int>(kChildThrew);
    }
    return static_cast<int>(kChildOk);
  });
  // Take without waiting: a subscriber that waits counts its pins first (so that it never
  // holds a block-policy publisher back while it sleeps).
  ASSERT_TRUE(published.await());
  std::vector<RawSample> held;
  for (std::uint64_t i = 0; i < kHeld; ++i) {
    Result<RawSample> s = sub.take();
    ASSERT_TRUE(static_cast<bool>(s)) << "message " << i << ": " << s.name();
    ASSERT_EQ(s->sequence(), i);
    held.push_back(std::move(s.value()));
  }
  const HeldChunks before = held_chunks(topic);
  ASSERT_EQ(before.held, kHeld) << topic.describe_pool();
  ASSERT_EQ(before.pinned, kHeld) << "the samples were not taken pinned\n" << topic.describe_pool();
  // No take and no wait from here on: only the publisher can save the pins from reuse.
  ASSERT_TRUE(go.notify());
  ASSERT_EQ(publisher.wait(), 0) << "the publisher process failed";
  const HeldChunks after = held_chunks(topic);
  EXPECT_EQ(after.held, kHeld) << topic.describe_pool();
  EXPECT_EQ(after.pinned, 0u) << "the publisher left pins on chunks it overwrote\n" << topic.describe_pool();
  for (std::uint64_t i = 0; i < kHeld; ++i) {
    std::optional<Stamp> stamp = check_stamped(held[i].data());
    ASSERT_TRUE(static_cast<bool>(stamp)) << "held message " << i << " was overwritten";
    EXPECT_EQ(stamp->sequence, i) << "held message " << i << " now holds another message";
  }
  held.clear();
  // The subscriber was lapped: its next take reports the loss and resumes within the ring.
  Result<RawSample> next = sub.take();
  ASSERT_TRUE(static_cast<bool>(next)) << next.name();
  const std::uint64_t tail = kHeld + kLaps * kQueue;
  EXPECT_GE(next->sequence(), tail - kQueue);
  EXPECT_EQ(next->lost_before(), next->sequence() - kHeld);
  std::optional<Stamp> stamp = check_stamped(next->data());
  ASSERT_TRUE(static_cast<bool>(stamp));
  EXPECT_EQ(stamp->sequence, next->sequence());
  next = Result<RawSample>(Errc::no_data);
  expect_every_chunk_free_or_queued(topic);
}

// Subscriber processes hold up to three samples each for a random number of takes while a
// publisher process laps a four-slot ring as fast as it can: pins are stored, validated and
// counted by the publisher in every interleaving the machine produces. Every sample is checked
// when it is released, after being held, and every counted reference must come back.
TEST(PinnedUnderDropOldest, SubscriberProcessesHoldingSamplesNeverReadAnOverwrittenOne) {
  constexpr std::uint32_t kQueue = 4;
  constexpr int kSubscribers = 2;
  const std::uint64_t n = static_cast<std::uint64_t>(scaled(300'000));
  Topic topic = Topic::create(drop_oldest_topic("pin-race", kQueue));
  std::vector<Child> subscribers;
  std::vector<std::unique_ptr<Pipe>> ready;
  for (int k = 0; k < kSubscribers; ++k) {
    ready.push_back(std::make_unique<Pipe>());
    Pipe& my_ready = *ready.back();
    subscribers.push_back(Child::spawn([&topic, &my_ready, n, k] {
      Topic mine = Topic::open_fd(topic.fd());
      RawSubscriber sub(mine);
      my_ready.notify();
      std::mt19937 random(static_cast<unsigned>(k) + 1);
      std::deque<RawSample> holding;
      std::uint64_t bad = 0, last = 0;
      bool any = false;
      const auto deadline = std::chrono::steady_clock::now() + 120s;
      auto release_oldest = [&] {
        std::optional<Stamp> stamp = check_stamped(holding.front().data());
        if (!stamp || stamp->sequence != holding.front().sequence()) ++bad;
        holding.pop_front();
      };
      while (std::chrono::steady_clock::now() < deadline) {
        Result<RawSample> s = sub.take();
        if (!s) {
          if (s.code() != Errc::no_data) return static_cast<int>(kChildThrew);
          continue;  // busy: no wait, so that pins are never converted by the subscriber itself
        }
        if (any && s->sequence() <= last) ++bad;
        any = true;
        last = s->sequence();
        holding.push_back(std::move(s.value()));
        while (holding.size() > 3 || (!holding.empty() && random() % 4 == 0)) release_oldest();
        if (last == n - 1) break;
      }
      while (!holding.empty()) release_oldest();
      if (last != n - 1) return static_cast<int>(kChildTimedOut);
      return static_cast<int>(bad == 0 ? kChildOk : kChildBadData);
    }));
  }
  for (auto& r : ready) ASSERT_TRUE(r->await());
  // The publisher process stays alive until the subscribers are done: without a daemon, a
  // subscriber that first maps the pool after its publisher exited cannot (docs/usage.md,
  // "lost_before"), and a loaded machine may not run a subscriber before the last publish.
  Pipe done;
  Child publisher = Child::spawn([&topic, &done, n] {
    Topic mine = Topic::open_fd(topic.fd());
    RawPublisher pub(mine);
    for (std::uint64_t i = 0; i < n; ++i) {
      if (!publish_stamped(pub, 1, i, kBody).ok()) return static_cast<int>(kChildThrew);
    }
    return static_cast<int>(done.await(180s) ? kChildOk : kChildPipeFailed);
  });
  for (Child& c : subscribers) {
    const int status = c.wait(150s);
    EXPECT_EQ(status, 0) << "subscriber process: " << describe_exit(status)
                         << " (92: it read an overwritten or out-of-order sample)";
  }
  done.notify();
  ASSERT_EQ(publisher.wait(120s), 0) << "the publisher process failed";
  expect_every_chunk_free_or_queued(topic);
}

}  // namespace
}  // namespace shmbus
