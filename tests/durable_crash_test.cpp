// Durable log under real SIGKILLs: publishers killed at random moments lose nothing whose
// publish() returned, leave no half message, and block nobody; a lock held by the dead is
// taken over at once.
#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <random>
#include <thread>

#include "durable/layout.hpp"
#include "durable/segment.hpp"
#include "shmbus/durable.hpp"
#include "durable_crash_support.hpp"
#include "test_support.hpp"

namespace shmbus {
namespace {

using namespace shmbus::testing;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

DurableConfig crash_log(const fs::path& dir) {
  DurableConfig c;
  c.directory = dir;
  c.topic = "stream";
  c.segment_size = 256 * 1024;  // small: kills land in rolls too
  return c;
}

TEST(DurableCrash, PublisherKilledAtRandomMomentsLosesNoReturnedMessage) {
  TempDir dir("durable-crash");
  DurableAppender parent(crash_log(dir.path()));
  SharedWords shared;
  std::atomic<std::uint64_t>& last_returned = shared.words[0];
  CheckedReader r{DurableReader::oldest(dir.path(), "stream")};
  std::mt19937 rng(12345);
  const int iterations = static_cast<int>(scaled(220));
  std::uint64_t killed_mid_stream = 0;
  // Every kill lands mid-stream by construction: the child says on a pipe when it has appended
  // a few messages, and the parent kills it a random delay after that, while it goes on.
  constexpr std::uint32_t kBeforeReady = 8;
  Pipe streaming;
  for (int it = 0; it < iterations; ++it) {
    last_returned.store(kNoSequence, std::memory_order_relaxed);
    Child child = Child::spawn([&]() -> int {
      DurableAppender log(crash_log(dir.path()));
      return append_until_killed(log, last_returned, streaming, kBeforeReady);
    });
    ASSERT_TRUE(streaming.await()) << "iteration " << it << ": the child did not start appending";
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 2000));
    child.kill_and_reap();
    std::uint64_t returned = last_returned.load(std::memory_order_acquire);
    if (returned != kNoSequence) ++killed_mid_stream;
    // Appending works at once, with the dead child's lock or half record in the way.
    auto t0 = std::chrono::steady_clock::now();
    Result<DurableLoan> loan = parent.loan(stamped_size(8));
    ASSERT_TRUE(loan) << loan.name() << " " << parent.last_error();
    write_stamped(loan->data(), 1, loan->sequence(), 8);
    std::uint64_t mine = loan->sequence();
    ASSERT_TRUE(parent.publish(*loan));
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 500ms);
    ASSERT_NO_FATAL_FAILURE(r.drain());
    if (returned != kNoSequence) {
      EXPECT_GE(r.last, returned) << "iteration " << it;
    }
    EXPECT_EQ(r.last, mine) << "iteration " << it;
  }
  EXPECT_EQ(killed_mid_stream, static_cast<std::uint64_t>(iterations));
  EXPECT_GT(list_durable_segments(dir.path(), "stream").size(), 2u);
  // A fresh reader sees the same history.
  CheckedReader again{DurableReader::oldest(dir.path(), "stream")};
  ASSERT_NO_FATAL_FAILURE(again.drain());
  EXPECT_EQ(again.messages, r.messages);
}

TEST(DurableCrash, PublisherKilledMidMessageBlocksNeitherOtherPublishersNorReaders) {
  TempDir dir("durable-mid");
  { DurableAppender create(crash_log(dir.path())); }
  constexpr std::uint64_t kEach = 3000;
  constexpr std::uint32_t kVictim = 9;
  Pipe holding;
  Child victim = Child::spawn([&]() -> int {
    DurableAppender log(crash_log(dir.path()));
    for (std::uint64_t i = 0; i < 100; ++i) {
      Result<DurableLoan> loan = log.loan(stamped_size(64));
      if (!loan) return kChildFirstFree;
      write_stamped(loan->data(), kVictim, i, 64);
      if (!log.publish(*loan)) return kChildFirstFree;
    }
    Result<DurableLoan> half = log.loan(stamped_size(64));
    if (!half) return kChildFirstFree;
    std::memset(half->data().data(), 0xab, 16);  // half a message, never published
    holding.notify();
    for (;;) pause();
  });
  ASSERT_TRUE(holding.await());
  std::vector<Child> publishers;
  for (std::uint32_t p = 0; p < 2; ++p) {
    publishers.push_back(Child::spawn([&, p]() -> int {
      DurableAppender log(crash_log(dir.path()));
      for (std::uint64_t i = 0; i < kEach; ++i) {
        Result<DurableLoan> loan = log.loan(stamped_size(64));
        if (!loan) return kChildFirstFree + static_cast<int>(loan.code());
        write_stamped(loan->data(), p, i, 64);
        if (!log.publish(*loan)) return kChildFirstFree;
      }
      return static_cast<int>(kChildOk);
    }));
  }
  victim.kill_and_reap();
  // A reader meets the victim's claimed record and goes past it once it is dead.
  DurableReader reader = DurableReader::oldest(dir.path(), "stream");
  std::uint64_t per[kVictim + 1] = {};
  std::uint64_t total = 0;
  const std::uint64_t want = 100 + 2 * kEach;
  while (total < want) {
    Result<DurableSample> s = reader.next_wait(10s);
    ASSERT_TRUE(s) << s.name() << " after " << total << " messages: " << reader.last_error();
    std::optional<Stamp> stamp = check_stamped(s->data);
    ASSERT_TRUE(stamp.has_value()) << "sequence " << s->sequence;
    ASSERT_TRUE(stamp->publisher == kVictim || stamp->publisher < 2);
    ASSERT_EQ(stamp->sequence, per[stamp->publisher]) << "publisher " << stamp->publisher;
    ++per[stamp->publisher];
    ++total;
  }
  for (Child& c : publishers) EXPECT_EQ(c.wait(30s), 0);
  EXPECT_EQ(per[kVictim], 100u);
  EXPECT_EQ(per[0], kEach);
  EXPECT_EQ(per[1], kEach);
  EXPECT_EQ(reader.next().code(), Errc::no_data);
}

TEST(DurableCrash, LockOfADeadHolderIsTakenOverAndItsTornClaimRepaired) {
  TempDir dir("durable-lock");
  DurableAppender log(crash_log(dir.path()));
  for (std::uint64_t i = 0; i < 10; ++i) {
    Result<DurableLoan> loan = log.loan(stamped_size(8));
    ASSERT_TRUE(loan);
    write_stamped(loan->data(), 1, loan->sequence(), 8);
    ASSERT_TRUE(log.publish(*loan));
  }
  tear_a_claim_as_a_dead_holder(dir.path() / "stream" / "00000000000000000000.log");
  ASSERT_NO_FATAL_FAILURE(expect_the_torn_claim_repaired(log, dir.path(), "stream"));
}

TEST(DurableCrash, LockOfADeadHolderOnAnEmptySegmentIsTakenOverWithoutSealingIt) {
  // A publisher killed in its first claim on a fresh segment: the segment's own file must not
  // be mistaken for a next one that a dead roller made.
  TempDir dir("durable-empty");
  DurableAppender log(crash_log(dir.path()));
  auto seg = detail::DurableSegment::open(dir.path() / "stream" / "00000000000000000000.log");
  seg->header().append_lock.store((static_cast<std::uint64_t>(getpid()) << 32) | 0xdeadu);
  Result<DurableLoan> loan = log.loan(stamped_size(8));
  ASSERT_TRUE(loan) << loan.name() << " " << log.last_error();
  EXPECT_EQ(loan->sequence(), 0u);
  write_stamped(loan->data(), 1, loan->sequence(), 8);
  ASSERT_TRUE(log.publish(*loan));
  EXPECT_FALSE(list_durable_segments(dir.path(), "stream").front().sealed);
  CheckedReader r{DurableReader::oldest(dir.path(), "stream")};
  ASSERT_NO_FATAL_FAILURE(r.drain());
  EXPECT_EQ(r.messages, 1u);
}

}  // namespace
}  // namespace shmbus
