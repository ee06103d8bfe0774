// One publisher process, several subscriber processes, a million messages: every message is
// checksummed by every subscriber. Block policy loses nothing; drop-oldest loses only what it
// reports, exactly.
#include <gtest/gtest.h>

#include <vector>

#include "shmbus/shmbus.hpp"
#include "test_support.hpp"

namespace shmbus {
namespace {

using namespace shmbus::testing;
using namespace std::chrono_literals;

constexpr std::uint32_t kBody = 32;  // 64-byte messages: the test measures the bus, not memcpy

// What a subscriber child saw, sent to the parent through a pipe.
struct Report {
  std::uint64_t received = 0;
  std::uint64_t lost_reported = 0;  // sum of lost_before()
  std::uint64_t lost_counter = 0;   // RawSubscriber::lost() at the end
  std::uint64_t bad_checksum = 0;
  std::uint64_t bad_order = 0;      // sequence gap not explained by lost_before(), or a repeat
  std::uint64_t last_sequence = 0;
  std::int32_t error = 0;           // an Errc other than timeout/no_data, or -1 on timeout
};

TopicConfig topic_config(SlowSubscriberPolicy policy, std::uint32_t queue_depth) {
  TopicConfig c;
  c.name = unique_name("one-to-many");
  c.size_classes = {{128, queue_depth + 64}};
  c.queue_depth = queue_depth;
  c.policy = policy;
  c.block_timeout = 10s;  // a stuck subscriber shows up as a failed publish, not a hang
  return c;
}

// Publishes n stamped messages; the publisher's own counter equals the topic sequence.
int publish_n(const Topic& shared, Pipe& go, std::uint64_t n) {
  Topic topic = Topic::open_fd(shared.fd());  // this process's own mapping
  RawPublisher pub(topic);
  if (!go.await()) return kChildPipeFailed;
  for (std::uint64_t i = 0; i < n; ++i) {
    if (Status st = publish_stamped(pub, 0, i, kBody); !st.ok()) return kChildFirstFree + static_cast<int>(st.code());
  }
  return kChildOk;
}

// Takes until it has seen sequence n-1 (the last message is never overwritten), checking
// every message. `extra_passes` re-verifies each checksum to make this subscriber slow.
int subscribe_until(const Topic& shared, Pipe& ready, Pipe& report, std::uint64_t n, int extra_passes) {
  Topic topic = Topic::open_fd(shared.fd());
  RawSubscriber sub(topic);
  if (!ready.notify()) return kChildPipeFailed;
  Report r;
  std::uint64_t expected = 0;  // next sequence if nothing were lost
  while (expected < n) {
    Result<RawSample> s = sub.take_wait(10s);
    if (!s) {
      r.error = s.code() == Errc::timeout ? -1 : static_cast<std::int32_t>(s.code());
      break;
    }
    ++r.received;
    r.lost_reported += s->lost_before();
    if (s->sequence() != expected + s->lost_before()) ++r.bad_order;
    std::optional<Stamp> stamp = check_stamped(s->data());
    for (int i = 0; i < extra_passes; ++i) stamp = check_stamped(s->data());
    if (!stamp || stamp->sequence != s->sequence()) ++r.bad_checksum;
    r.last_sequence = s->sequence();
    expected = s->sequence() + 1;
  }
  if (r.error == 0 && sub.take().code() != Errc::no_data) ++r.bad_order;  // nothing past the end
  r.lost_counter = sub.lost();
  return report.send(r) ? kChildOk : kChildPipeFailed;
}

// Starts `subscribers` subscriber children (subscriber 0 slowed by `slow_passes`), then the
// publisher child, and collects the reports.
std::vector<Report> run_one_to_many(const Topic& topic, int subscribers, std::uint64_t n, int slow_passes) {
  Pipe ready, go, report;
  std::vector<Child> children;
  for (int i = 0; i < subscribers; ++i) {
    int passes = i == 0 ? slow_passes : 0;
    children.push_back(Child::spawn([&, passes] { return subscribe_until(topic, ready, report, n, passes); }));
  }
  for (int i = 0; i < subscribers; ++i) EXPECT_TRUE(ready.await()) << "subscriber " << i << " did not start";
  Child publisher = Child::spawn([&] { return publish_n(topic, go, n); });
  EXPECT_TRUE(go.notify());
  std::vector<Report> out;
  for (int i = 0; i < subscribers; ++i) {
    std::optional<Report> r = report.receive<Report>(120s);
    EXPECT_TRUE(r) << "no report from a subscriber";
    if (r) out.push_back(*r);
  }
  int pub_status = publisher.wait(120s);
  EXPECT_EQ(pub_status, kChildOk) << "publisher: " << describe_exit(pub_status);
  for (std::size_t i = 0; i < children.size(); ++i) {
    int st = children[i].wait(60s);
    EXPECT_EQ(st, kChildOk) << "subscriber " << i << ": " << describe_exit(st);
  }
  return out;
}

TEST(OneToMany, BlockPolicyDeliversEveryMessageExactlyOnceToEverySubscriber) {
  const std::uint64_t n = static_cast<std::uint64_t>(scaled(1'000'000));
  Topic topic = Topic::create(topic_config(SlowSubscriberPolicy::block, 1024));
  std::vector<Report> reports = run_one_to_many(topic, 3, n, /*slow_passes=*/0);
  ASSERT_EQ(reports.size(), 3u);
  for (const Report& rep : reports) {
    EXPECT_EQ(rep.error, 0);
    EXPECT_EQ(rep.received, n);
    EXPECT_EQ(rep.lost_reported, 0u);
    EXPECT_EQ(rep.lost_counter, 0u);
    EXPECT_EQ(rep.bad_checksum, 0u);
    EXPECT_EQ(rep.bad_order, 0u);
    EXPECT_EQ(rep.last_sequence, n - 1);
  }
  EXPECT_EQ(topic.stats().published, n);
}

TEST(OneToMany, DropOldestReportsExactlyWhatEachSubscriberLost) {
  const std::uint64_t n = static_cast<std::uint64_t>(scaled(1'000'000));
  // A short queue and one subscriber doing 20x the work: it must fall behind and lose.
  Topic topic = Topic::create(topic_config(SlowSubscriberPolicy::drop_oldest, 16));
  std::vector<Report> reports = run_one_to_many(topic, 3, n, /*slow_passes=*/20);
  ASSERT_EQ(reports.size(), 3u);
  std::uint64_t lost_anywhere = 0;
  for (const Report& rep : reports) {
    EXPECT_EQ(rep.error, 0);
    EXPECT_EQ(rep.received + rep.lost_reported, n) << "received " << rep.received << ", lost " << rep.lost_reported;
    EXPECT_EQ(rep.lost_counter, rep.lost_reported);
    EXPECT_EQ(rep.bad_checksum, 0u);
    EXPECT_EQ(rep.bad_order, 0u);
    EXPECT_EQ(rep.last_sequence, n - 1);
    lost_anywhere += rep.lost_reported;
  }
  EXPECT_GT(lost_anywhere, 0u) << "no subscriber fell behind: the test did not exercise drop-oldest";
  EXPECT_EQ(topic.stats().published, n);
}

}  // namespace
}  // namespace shmbus
