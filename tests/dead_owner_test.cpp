// Anyone can reclaim the slots of a process that is provably dead, without knowing which
// process it was: the slot records the owner's start time and pid namespace.
#include <gtest/gtest.h>

#include <csignal>
#include <sys/wait.h>
#include <unistd.h>

#include "shmbus/shmbus.hpp"

namespace shmbus {
namespace {

TopicConfig config() {
  TopicConfig c;
  c.name = "dead-owner-" + std::to_string(getpid());
  c.size_classes = {{256, 32}};
  c.queue_depth = 8;
  return c;
}

std::uint32_t free_chunks(const Topic& t) { return t.stats().classes.at(0).free; }

TEST(DeadOwner, SlotsOfAKilledProcessAreReclaimedAndLiveOnesAreNot) {
  Topic topic = Topic::create(config());
  RawPublisher my_pub(topic);
  RawSubscriber my_sub(topic);
  std::byte payload[16]{};
  ASSERT_TRUE(my_pub.publish_copy(payload).ok());
  Result<RawSample> mine = my_sub.take();  // a live holder: must keep its sample
  ASSERT_TRUE(mine);

  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t child = fork();
  if (child == 0) {
    RawPublisher pub(topic);
    RawSubscriber sub(topic);
    std::vector<RawLoan> loans;
    for (int i = 0; i < 3; ++i) loans.push_back(std::move(pub.loan(100).value()));
    Result<RawSample> held = sub.take();  // nothing new for it: publish one first
    (void)held;
    RawPublisher pub2(topic);
    (void)!pub2.publish_copy(payload);
    Result<RawSample> got = sub.take();
    char ok = got ? 1 : 0;
    (void)!write(ready[1], &ok, 1);
    pause();
    _exit(0);
  }
  char ok = 0;
  ASSERT_EQ(read(ready[0], &ok, 1), 1);
  ASSERT_EQ(ok, 1);
  EXPECT_EQ(topic.reclaim_dead_owners(), 0u) << "the child is alive";
  const std::uint32_t before = free_chunks(topic);
  kill(child, SIGKILL);
  int status;
  waitpid(child, &status, 0);
  // pub, pub2 and sub of the child; my own slots stay.
  EXPECT_EQ(topic.reclaim_dead_owners(), 3u);
  EXPECT_EQ(free_chunks(topic), before + 3 /* loans */);  // its sample is also in the ring
  EXPECT_EQ(topic.reclaim_dead_owners(), 0u);
  ASSERT_TRUE(mine);
  EXPECT_EQ(mine->data().size(), 16u);
  ASSERT_TRUE(my_pub.publish_copy(payload).ok());
  EXPECT_TRUE(my_sub.take());
}

}  // namespace
}  // namespace shmbus
