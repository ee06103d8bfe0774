// Issue 21: every wait of the data plane ends, whatever another participant wrote into the
// region's words, and the daemon's damage check names what it finds broken. Each test forges
// one state a lying participant can leave, then runs the call in a child process (a hang
// there is a failure within seconds, not a hung suite) and checks when and how it returned.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string>

#include "layout.hpp"
#include "shmbus/shmbus.hpp"
#include "test_support.hpp"
#include "topic_admin.hpp"

namespace shmbus {
namespace {

using namespace shmbus::testing;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

enum HostileExit : int { kWrongStatus = kChildFirstFree, kTooSlow, kReturnedTooSoon };

template <typename T>
T* section_of(const Topic& topic, detail::SectionId id) {
  auto* base = static_cast<std::byte*>(const_cast<void*>(topic.mapping_base()));
  const auto& header = *reinterpret_cast<const detail::RegionHeader*>(base);
  return reinterpret_cast<T*>(base + header.sections[id].offset);
}
detail::TopicControl& control_of(const Topic& t) { return *section_of<detail::TopicControl>(t, detail::kSectionControl); }
detail::PublisherSlot& publisher_slot_of(const Topic& t, std::uint32_t slot) {
  return section_of<detail::PublisherSlot>(t, detail::kSectionPublishers)[slot];
}
detail::RingSlot& ring_slot_of(const Topic& t, std::uint64_t seq) {
  return section_of<detail::RingSlot>(t, detail::kSectionRing)[seq & (control_of(t).ring_capacity - 1)];
}

TopicConfig hostile_config(SlowSubscriberPolicy policy = SlowSubscriberPolicy::drop_oldest) {
  TopicConfig c;
  c.name = unique_name("hostile-wait");
  c.queue_depth = 4;
  c.policy = policy;
  c.block_timeout = 100ms;
  c.max_publishers = 2;
  c.max_subscribers = 2;
  c.size_classes = {{256, 16}};
  return c;
}

// A pid that named a process a moment ago: the child is reaped, so the pid is free.
pid_t reaped_pid() {
  Child c = Child::spawn([] { return 0; });
  const pid_t pid = c.pid();
  c.wait();
  return pid;
}

// Publishes one lap of the ring, so that the next publish lands on a slot with a lap behind it.
void publish_a_lap(const Topic& topic, RawPublisher& pub) {
  for (std::uint64_t seq = 0; seq < control_of(topic).ring_capacity; ++seq) {
    ASSERT_TRUE(publish_stamped(pub, 0, seq, 16).ok()) << seq;
  }
}

// publish_a_lap(), then a participant lowers the commit word of the slot the next publish
// needs: its previous lap now looks uncommitted. Returns that next sequence.
std::uint64_t lower_the_next_slots_commit(const Topic& topic, RawPublisher& pub) {
  publish_a_lap(topic, pub);
  const std::uint64_t next = control_of(topic).tail.load();
  ring_slot_of(topic, next).commit.store(0);
  return next;
}

TEST(HostileWaits, APublishBehindALoweredCommitWordGoesOnOnceNoLiveClaimantCanWriteTheSlot) {
  Topic topic = Topic::create(hostile_config());
  Child child = Child::spawn([&]() -> int {
    RawPublisher pub(topic);
    // Nobody holds a claim that could ever commit the lowered slot's previous lap.
    const std::uint64_t next = lower_the_next_slots_commit(topic, pub);
    const auto start = Clock::now();
    const Status st = publish_stamped(pub, 0, next, 16);
    if (Clock::now() - start > 2s) return kTooSlow;
    return st.ok() ? int{kChildOk} : int{kWrongStatus};
  });
  EXPECT_EQ(child.wait(20s), kChildOk) << describe_exit(child.wait(0ms));
}

TEST(HostileWaits, APublishBehindAClaimThatNeverCommitsTimesOutAfterItsBound) {
  Topic topic = Topic::create(hostile_config());
  Child child = Child::spawn([&]() -> int {
    RawPublisher pub(topic);
    const std::uint64_t next = lower_the_next_slots_commit(topic, pub);
    // And a live participant (this very process, so its identity checks out) sits in the
    // other publisher slot in the middle of taking a sequence, for ever.
    detail::PublisherSlot& mine = publisher_slot_of(topic, pub.slot());
    detail::PublisherSlot& wedged = publisher_slot_of(topic, 1 - pub.slot());
    wedged.pid.store(getpid());
    wedged.owner.start_time.store(mine.owner.start_time.load());
    wedged.owner.pid_ns.store(mine.owner.pid_ns.load());
    wedged.claimed_plus1.store(~0ULL);
    wedged.state.store(detail::kSlotActive);
    const auto start = Clock::now();
    const Status st = publish_stamped(pub, 0, next, 16);
    const auto took = Clock::now() - start;
    wedged.claimed_plus1.store(0);
    wedged.state.store(detail::kSlotFree);
    if (took > 4s) return kTooSlow;
    if (took < 900ms) return kReturnedTooSoon;  // at least kMinLapWaitNs for a live claimant
    return st.code() == Errc::timeout ? int{kChildOk} : int{kWrongStatus};
  });
  EXPECT_EQ(child.wait(20s), kChildOk);
}

TEST(HostileWaits, ReclaimingADeadClaimantEndsWithinItsBudgetWhenTailIsForgedNearTwoToThe64) {
  Topic topic = Topic::create(hostile_config());
  RawPublisher pub(topic);
  publish_a_lap(topic, pub);
  // A dead publisher in the middle of taking a sequence (its hole is for fill_holes() to
  // tombstone), and a `tail` that says 2^63 sequences were taken.
  detail::PublisherSlot& mine = publisher_slot_of(topic, pub.slot());
  detail::PublisherSlot& dead = publisher_slot_of(topic, 1 - pub.slot());
  dead.pid.store(reaped_pid());
  dead.owner.start_time.store(1);
  dead.owner.pid_ns.store(mine.owner.pid_ns.load());
  dead.claimed_plus1.store(~0ULL);
  dead.state.store(detail::kSlotActive);
  control_of(topic).tail.store(1ULL << 63);
  Child child = Child::spawn([&]() -> int {
    const auto start = Clock::now();
    (void)topic.reclaim_dead_owners(500ms);
    return Clock::now() - start > 3s ? int{kTooSlow} : int{kChildOk};
  });
  EXPECT_EQ(child.wait(20s), kChildOk);
  EXPECT_NE(detail::find_damage(topic), std::nullopt) << "a tail 2^63 beyond every commit is damage";
}

TEST(DamageCheck, NamesTheBrokenWordAndLeavesASoundOrHoledTopicAlone) {
  Topic topic = Topic::create(hostile_config());
  const std::vector<std::byte> baseline = detail::immutable_words(topic);
  RawPublisher pub(topic);
  RawSubscriber sub(topic);
  publish_a_lap(topic, pub);
  EXPECT_EQ(detail::find_damage(topic, baseline), std::nullopt);
  // A publisher that took a sequence and never committed it (killed): a hole, not damage.
  control_of(topic).tail.fetch_add(1);
  EXPECT_EQ(detail::find_damage(topic, baseline), std::nullopt);

  detail::RingSlot& rs = ring_slot_of(topic, 0);
  const std::uint32_t chunk = rs.chunk.load();
  rs.chunk.store(1'000'000);
  std::optional<std::string> what = detail::find_damage(topic, baseline);
  ASSERT_TRUE(what.has_value());
  EXPECT_NE(what->find("ring slot 0: chunk index 1000000"), std::string::npos) << *what;
  rs.chunk.store(chunk);

  const std::uint64_t tail = control_of(topic).tail.load();
  control_of(topic).tail.store(tail + (1ULL << 40));
  what = detail::find_damage(topic, baseline);
  ASSERT_TRUE(what.has_value());
  EXPECT_NE(what->find("beyond the newest commit"), std::string::npos) << *what;
  control_of(topic).tail.store(tail);

  publisher_slot_of(topic, 1).state.store(77);
  what = detail::find_damage(topic, baseline);
  ASSERT_TRUE(what.has_value());
  EXPECT_NE(what->find("publisher slot 1: state 77"), std::string::npos) << *what;
  publisher_slot_of(topic, 1).state.store(detail::kSlotFree);

  EXPECT_EQ(detail::find_damage(topic, baseline), std::nullopt);
  control_of(topic).block_timeout_ns = 1;  // a configuration word
  what = detail::find_damage(topic, baseline);
  ASSERT_TRUE(what.has_value());
  EXPECT_NE(what->find("topic configuration"), std::string::npos) << *what;
  EXPECT_EQ(detail::find_damage(topic), std::nullopt) << "without a baseline, configuration words are not compared";
}

}  // namespace
}  // namespace shmbus
