// The exclusive appender (DurableConfig::exclusive_appender): alone on its log while it lives,
// named to whoever is refused, and under real SIGKILLs, torn claims and truncation it keeps
// every crash property of the ordinary appender (tests/durable_crash_test.cpp, whose kill loop
// this follows with the same child, durable_crash_support.hpp), although it claims without the
// append lock's CAS.
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

DurableConfig exclusive_log(const fs::path& dir, bool exclusive = true) {
  DurableConfig c;
  c.directory = dir;
  c.topic = "alone";
  c.segment_size = 256 * 1024;  // small: kills land in rolls too
  c.exclusive_appender = exclusive;
  return c;
}

fs::path first_segment(const fs::path& dir) { return dir / "alone" / "00000000000000000000.log"; }

Status append_one(DurableAppender& log, std::uint32_t publisher, std::uint32_t body = 8) {
  Result<DurableLoan> loan = log.loan(stamped_size(body));
  if (!loan) return loan.code();
  write_stamped(loan->data(), publisher, loan->sequence(), body);
  return log.publish(*loan);
}

// What a child saw opening an appender: 1 = refused with too_many_publishers and a message
// containing `needle`, 2 = opened, else another failure.
int open_in_child(const fs::path& dir, bool exclusive, const std::string& needle) {
  try {
    DurableAppender log(exclusive_log(dir, exclusive));
    return 2;
  } catch (const Error& e) {
    return e.code() == Errc::too_many_publishers && std::string(e.what()).find(needle) != std::string::npos ? 1 : 3;
  }
}

TEST(DurableExclusive, ASecondAppenderOfEitherKindIsRefusedNamingTheHoldersPid) {
  TempDir dir("durable-excl-refuse");
  {
    DurableAppender alone(exclusive_log(dir.path()));
    ASSERT_TRUE(append_one(alone, 1));
    const std::string pid = "(pid " + std::to_string(getpid()) + ")";
    Child ordinary = Child::spawn([&] { return open_in_child(dir.path(), false, pid); });
    EXPECT_EQ(ordinary.wait(10s), 1);
    Child exclusive = Child::spawn([&] { return open_in_child(dir.path(), true, pid); });
    EXPECT_EQ(exclusive.wait(10s), 1);
    ASSERT_TRUE(append_one(alone, 1));  // the refused took nothing from it
  }
  // Gone: an ordinary appender opens, and an exclusive one is refused while it is open.
  DurableAppender ordinary(exclusive_log(dir.path(), false));
  Child exclusive = Child::spawn([&] { return open_in_child(dir.path(), true, "other appenders are open"); });
  EXPECT_EQ(exclusive.wait(10s), 1);
  ASSERT_TRUE(append_one(ordinary, 2));
  CheckedReader r{DurableReader::oldest(dir.path(), "alone")};
  ASSERT_NO_FATAL_FAILURE(r.drain());
  EXPECT_EQ(r.messages, 3u);
}

TEST(DurableExclusive, ItKeepsTheSegmentsAppendLockBetweenClaimsAndLetsGoAtTheEnd) {
  TempDir dir("durable-excl-lock");
  auto lock_word = [&] {
    return detail::DurableSegment::open(first_segment(dir.path()))->header().append_lock.load();
  };
  {
    DurableAppender alone(exclusive_log(dir.path()));
    ASSERT_TRUE(append_one(alone, 1));
    EXPECT_EQ(lock_word() >> 32, static_cast<std::uint64_t>(getpid()));  // held between claims
    ASSERT_TRUE(append_one(alone, 1));
  }
  EXPECT_EQ(lock_word(), 0u);
  {
    DurableAppender ordinary(exclusive_log(dir.path(), false));
    ASSERT_TRUE(append_one(ordinary, 2));
    EXPECT_EQ(lock_word(), 0u);  // an ordinary appender lets go after each claim
  }
}

TEST(DurableExclusive, RollsKeepEveryMessageInOrderAndLetGoOfTheSealedSegmentsLock) {
  TempDir dir("durable-excl-roll");
  DurableAppender alone(exclusive_log(dir.path()));
  for (std::uint32_t i = 0; i < 3000; ++i) ASSERT_TRUE(append_one(alone, 1, 16 + (i * 37) % 900)) << alone.last_error();
  std::vector<DurableSegmentInfo> segs = list_durable_segments(dir.path(), "alone");
  ASSERT_GT(segs.size(), 3u);
  for (std::size_t i = 0; i + 1 < segs.size(); ++i) {
    EXPECT_TRUE(segs[i].sealed);
    EXPECT_EQ(detail::DurableSegment::open(segs[i].path)->header().append_lock.load(), 0u) << segs[i].path;
  }
  CheckedReader r{DurableReader::oldest(dir.path(), "alone")};
  ASSERT_NO_FATAL_FAILURE(r.drain());
  EXPECT_EQ(r.messages, 3000u);
  EXPECT_EQ(r.last, 2999u);
}

// tests/durable_crash_test.cpp's kill loop with an exclusive appender in the child, and a new
// exclusive appender in the parent after each kill: the kernel let go of the dead one's flock,
// and its append lock (which it kept between claims, so a kill at any moment leaves it held)
// is taken over at once, its torn claim repaired.
TEST(DurableExclusive, AppenderKilledAtRandomMomentsLosesNoReturnedMessageAndTheNextOpensAtOnce) {
  TempDir dir("durable-excl-crash");
  { DurableAppender create(exclusive_log(dir.path())); }
  SharedWords shared;
  std::atomic<std::uint64_t>& last_returned = shared.words[0];
  CheckedReader r{DurableReader::oldest(dir.path(), "alone")};
  std::mt19937 rng(4242);
  const int iterations = static_cast<int>(scaled(220));
  std::uint64_t killed_mid_stream = 0, held_at_kill = 0;
  constexpr std::uint32_t kBeforeReady = 8;
  Pipe streaming;
  for (int it = 0; it < iterations; ++it) {
    last_returned.store(kNoSequence, std::memory_order_relaxed);
    Child child = Child::spawn([&]() -> int {
      DurableAppender log(exclusive_log(dir.path()));
      return append_until_killed(log, last_returned, streaming, kBeforeReady);
    });
    ASSERT_TRUE(streaming.await()) << "iteration " << it << ": the child did not start appending";
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 2000));
    child.kill_and_reap();
    std::uint64_t returned = last_returned.load(std::memory_order_acquire);
    if (returned != kNoSequence) ++killed_mid_stream;
    const std::vector<DurableSegmentInfo> segs = list_durable_segments(dir.path(), "alone");
    if (detail::DurableSegment::open(segs.back().path)->header().append_lock.load() != 0) ++held_at_kill;
    auto t0 = std::chrono::steady_clock::now();
    DurableAppender next(exclusive_log(dir.path()));  // no "held" error: the flock died with it
    Result<DurableLoan> loan = next.loan(stamped_size(8));
    ASSERT_TRUE(loan) << loan.name() << " " << next.last_error();
    write_stamped(loan->data(), 1, loan->sequence(), 8);
    std::uint64_t mine = loan->sequence();
    ASSERT_TRUE(next.publish(*loan));
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 500ms);
    ASSERT_NO_FATAL_FAILURE(r.drain());
    if (returned != kNoSequence) {
      EXPECT_GE(r.last, returned) << "iteration " << it;
    }
    EXPECT_EQ(r.last, mine) << "iteration " << it;
  }
  EXPECT_EQ(killed_mid_stream, static_cast<std::uint64_t>(iterations));
  EXPECT_GT(held_at_kill, static_cast<std::uint64_t>(iterations) / 2);  // the takeover was exercised
  EXPECT_GT(list_durable_segments(dir.path(), "alone").size(), 2u);
  CheckedReader again{DurableReader::oldest(dir.path(), "alone")};
  ASSERT_NO_FATAL_FAILURE(again.drain());
  EXPECT_EQ(again.messages, r.messages);
}

TEST(DurableExclusive, ATornClaimOfADeadHolderIsRepairedByTheNextExclusiveAppender) {
  TempDir dir("durable-excl-torn");
  {
    DurableAppender first(exclusive_log(dir.path()));
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(append_one(first, 1));
  }
  tear_a_claim_as_a_dead_holder(first_segment(dir.path()));
  DurableAppender next(exclusive_log(dir.path()));
  ASSERT_NO_FATAL_FAILURE(expect_the_torn_claim_repaired(next, dir.path(), "alone"));
}

TEST(DurableExclusive, TruncatedUnderItItGoesOnInANewSegmentNumberedPastTheLostOne) {
  TempDir dir("durable-excl-cut");
  DurableConfig c = exclusive_log(dir.path());
  c.segment_size = 4 << 20;  // no roll: the truncated segment is the one it holds
  DurableAppender alone(c);
  for (int i = 0; i < 500; ++i) ASSERT_TRUE(append_one(alone, 1, 64));
  ASSERT_EQ(::truncate(first_segment(dir.path()).c_str(), 4096), 0);
  // The first claim after it may land in the lost mapping (region_lost from publish), then
  // the appender goes on in a new segment.
  std::uint64_t lost_returns = 0, published = 0, first_new = kNoSequence;
  for (int i = 0; i < 100; ++i) {
    Result<DurableLoan> loan = alone.loan(stamped_size(64));
    ASSERT_TRUE(loan) << loan.name() << " " << alone.last_error();
    write_stamped(loan->data(), 1, loan->sequence(), 64);
    Status st = alone.publish(*loan);
    if (st.code() == Errc::region_lost) {
      ++lost_returns;
      continue;
    }
    ASSERT_TRUE(st) << st.name() << " " << alone.last_error();
    if (first_new == kNoSequence) first_new = loan->sequence();
    ++published;
  }
  EXPECT_LE(lost_returns, 1u);
  EXPECT_EQ(alone.segments_lost(), 1u);
  EXPECT_GE(first_new, 500u);
  std::vector<DurableSegmentInfo> segs = list_durable_segments(dir.path(), "alone");
  ASSERT_EQ(segs.size(), 2u);
  EXPECT_NE(segs[0].damage, "");
  EXPECT_EQ(segs[1].damage, "");
  DurableReader r = DurableReader::oldest(dir.path(), "alone");
  ASSERT_EQ(r.next().code(), Errc::lost_history) << r.last_error();
  std::uint64_t read = 0;
  while (Result<DurableSample> s = r.next()) {
    ASSERT_TRUE(check_stamped(s->data).has_value());
    ++read;
  }
  EXPECT_EQ(read, published);
}

}  // namespace
}  // namespace shmbus
