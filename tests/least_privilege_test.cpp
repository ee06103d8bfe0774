// Least privilege (docs/design.md property 4): a subscriber can read a publisher's payload but has
// no way to change it. Payload lives in the publisher's own memfd, sealed
// SHRINK|GROW|FUTURE_WRITE|SEAL after the publisher mapped it, and subscribers map it
// read-only. docs/linux-facts.md §3: a read-only fd can be reopened writable through /proc, so the
// seals, not the fd's access mode, are what must stop the subscriber. This test is that
// subscriber, in a process of its own, trying every way in.
#include <gtest/gtest.h>

#include <cerrno>
#include <fcntl.h>
#include <filesystem>
#include <linux/falloc.h>
#include <string>
#include <sys/mman.h>
#include <unistd.h>

#include "shmbus/shmbus.hpp"
#include "test_support.hpp"

namespace shmbus {
namespace {

using namespace shmbus::testing;
using namespace std::chrono_literals;

constexpr std::uint32_t kBody = 3000;
constexpr std::uint64_t kAfterAttack = 200;
constexpr int kRounds = 50;

struct AttackReport {
  std::uint32_t reopened_rdwr;    // the /proc reopen with O_RDWR itself succeeded (expected)
  std::uint32_t succeeded;        // modifications that went through (must be 0)
  std::uint32_t attempts;
  std::uint32_t first_intact;     // the message under attack still checks out afterwards
  std::uint32_t read_only_view;   // locate_payload() says the subscriber's mapping is read-only
  std::uint64_t later_intact;     // messages published after the attack that checked out
  char first_success[64];         // what went through first, if anything
};

// Tries every way to modify the pool behind `fd` (this process's read-only pool fd) and the
// read-only mapping at `mapped`; counts what succeeds.
void attack(int fd, const void* mapped, std::size_t pool_size, AttackReport& r) {
  auto record = [&](bool went_through, const char* what) {
    ++r.attempts;
    if (!went_through) return;
    if (r.succeeded++ == 0) std::snprintf(r.first_success, sizeof r.first_success, "%s", what);
  };
  const std::string proc = "/proc/self/fd/" + std::to_string(fd);
  int rw = open(proc.c_str(), O_RDWR | O_CLOEXEC);
  r.reopened_rdwr += rw >= 0 ? 1 : 0;
  const char junk[64] = "subscriber was here";
  for (int via : {fd, rw}) {
    if (via < 0) continue;
    record(pwrite(via, junk, sizeof junk, 0) >= 0, "pwrite");
    void* w = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, via, 0);
    record(w != MAP_FAILED, "writable shared mmap");
    if (w != MAP_FAILED) munmap(w, 4096);
    record(ftruncate(via, 0) == 0, "ftruncate to 0");
    record(ftruncate(via, static_cast<off_t>(pool_size) * 2) == 0, "ftruncate to grow");
    record(fallocate(via, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, static_cast<off_t>(pool_size)) == 0,
           "punching a hole");
    record(fcntl(via, F_ADD_SEALS, F_SEAL_WRITE) == 0, "adding a seal");
  }
  // The mapping the library made: make it writable in place.
  void* page = reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(mapped) & ~std::uintptr_t{4095});
  record(mprotect(page, 4096, PROT_READ | PROT_WRITE) == 0, "mprotect of the subscriber's mapping");
  if (rw >= 0) close(rw);
}

int subscriber(const Topic& shared, Pipe& ready, Pipe& attacked, Pipe& report) {
  Topic topic = Topic::open_fd(shared.fd());
  RawSubscriber sub(topic, SubscriberOptions{.wait_mode = WaitMode::block});
  if (!ready.notify()) return kChildPipeFailed;
  AttackReport r{};
  {
    Result<RawSample> first = sub.take_wait(10s);
    if (!first || !check_stamped(first->data())) return kChildBadData;
    std::optional<Topic::PayloadLocation> at = topic.locate_payload(first->data().data());
    if (!at) return kChildBadData;
    r.read_only_view = at->writable ? 0 : 1;
    for (int i = 0; i < kRounds; ++i) attack(at->fd, first->data().data(), at->mapping_size, r);
    r.first_intact = check_stamped(first->data()) ? 1 : 0;
  }
  if (!attacked.notify()) return kChildPipeFailed;
  for (std::uint64_t i = 0; i < kAfterAttack; ++i) {
    Result<RawSample> s = sub.take_wait(10s);
    if (!s) break;
    std::optional<Stamp> stamp = check_stamped(s->data());
    if (stamp && stamp->sequence == i + 1) ++r.later_intact;
  }
  return report.send(r) ? kChildOk : kChildPipeFailed;
}

// Both backings: a file-backed region keeps only control words in its file; payload is in the
// publishers' sealed pools just the same.
class LeastPrivilege : public ::testing::TestWithParam<RegionOptions::Backing> {};

TEST_P(LeastPrivilege, SubscriberCannotChangeThePayloadThroughAReopenedPoolFd) {
  TopicConfig c;
  c.name = unique_name("least-privilege");
  c.size_classes = {{4096, 64}};
  c.queue_depth = 32;
  c.policy = SlowSubscriberPolicy::block;
  RegionOptions options;
  options.backing = GetParam();
  std::filesystem::path dir;
  if (options.backing == RegionOptions::Backing::file) {
    dir = std::filesystem::temp_directory_path() / unique_name("least-privilege-dir");
    std::filesystem::create_directories(dir);
    options.directory = dir;
  }
  Topic topic = Topic::create(c, options);
  Pipe ready, attacked, report;
  Child sub = Child::spawn([&] { return subscriber(topic, ready, attacked, report); });
  ASSERT_TRUE(ready.await());

  RawPublisher pub(topic);
  ASSERT_TRUE(publish_stamped(pub, 0, 0, kBody).ok());
  ASSERT_TRUE(attacked.await()) << describe_exit(sub.wait(1s));
  // The publisher is unharmed: it still writes its pool and every message arrives intact.
  for (std::uint64_t i = 1; i <= kAfterAttack; ++i) ASSERT_TRUE(publish_stamped(pub, 0, i, kBody).ok()) << i;

  std::optional<AttackReport> r = report.receive<AttackReport>();
  ASSERT_TRUE(r) << describe_exit(sub.wait(1s));
  EXPECT_EQ(r->reopened_rdwr, static_cast<std::uint32_t>(kRounds))
      << "the /proc reopen with O_RDWR failed: this test no longer shows that the seals are what protect";
  EXPECT_GT(r->attempts, 0u);
  EXPECT_EQ(r->succeeded, 0u) << "first modification that went through: " << r->first_success;
  EXPECT_EQ(r->read_only_view, 1u) << "the subscriber's payload mapping is writable";
  EXPECT_EQ(r->first_intact, 1u) << "the message under attack changed";
  EXPECT_EQ(r->later_intact, kAfterAttack);
  EXPECT_EQ(sub.wait(), kChildOk);
  if (!dir.empty()) std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Backings, LeastPrivilege,
                         ::testing::Values(RegionOptions::Backing::anonymous, RegionOptions::Backing::file),
                         [](const auto& info) {
                           return info.param == RegionOptions::Backing::file ? std::string("File") : std::string("Anonymous");
                         });

}  // namespace
}  // namespace shmbus
