// Durable log replay: from a sequence, from a time, replay-then-live under a publisher at full
// speed (no gap, no duplicate), and named readers resuming after their process was killed.
#include <gtest/gtest.h>

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "shmbus/durable.hpp"
#include "test_support.hpp"

namespace shmbus {
namespace {

using namespace shmbus::testing;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

DurableConfig replay_log(const fs::path& dir) {
  DurableConfig c;
  c.directory = dir;
  c.topic = "history";
  c.segment_size = 128 * 1024;
  return c;
}

void append_n(DurableAppender& log, std::uint64_t n, std::uint32_t body = 40) {
  for (std::uint64_t i = 0; i < n; ++i) {
    Result<DurableLoan> loan = log.loan(stamped_size(body));
    ASSERT_TRUE(loan) << loan.name();
    write_stamped(loan->data(), 1, loan->sequence(), body);
    ASSERT_TRUE(log.publish(*loan));
  }
}

TEST(DurableReplay, ReaderStartsAtAnySequenceAcrossSegments) {
  TempDir dir("durable-seq");
  DurableAppender log(replay_log(dir.path()));
  append_n(log, 5000);
  ASSERT_GT(list_durable_segments(dir.path(), "history").size(), 3u);
  for (std::uint64_t start : {0ull, 1ull, 63ull, 1234ull, 2048ull, 4999ull}) {
    DurableReader r = DurableReader::at_sequence(dir.path(), "history", start);
    EXPECT_EQ(r.position(), start);
    Result<DurableSample> s = r.next();
    ASSERT_TRUE(s) << start << ": " << s.name();
    EXPECT_EQ(s->sequence, start);
    EXPECT_EQ(check_stamped(s->data)->sequence, start);
  }
  DurableReader end = DurableReader::at_sequence(dir.path(), "history", 5000);
  EXPECT_EQ(end.next().code(), Errc::no_data);
  append_n(log, 1);
  Result<DurableSample> s = end.next();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->sequence, 5000u);
}

TEST(DurableReplay, ReaderStartsAtTheFirstMessageAtOrAfterATime) {
  TempDir dir("durable-time");
  DurableAppender log(replay_log(dir.path()));
  append_n(log, 3000);
  std::vector<std::pair<std::uint64_t, std::uint64_t>> times;  // sequence, time
  DurableReader all = DurableReader::oldest(dir.path(), "history");
  while (Result<DurableSample> s = all.next()) times.emplace_back(s->sequence, s->time_ns);
  ASSERT_EQ(times.size(), 3000u);
  for (std::size_t pick : {0ul, 1ul, 700ul, 1500ul, 2999ul}) {
    std::uint64_t t = times[pick].second;
    // The first message stamped at t or later (several may share a time).
    std::size_t first = pick;
    while (first > 0 && times[first - 1].second >= t) --first;
    DurableReader r = DurableReader::at_time(dir.path(), "history", t);
    Result<DurableSample> s = r.next();
    ASSERT_TRUE(s);
    EXPECT_EQ(s->sequence, times[first].first) << "time of " << pick;
    EXPECT_GE(s->time_ns, t);
  }
  EXPECT_EQ(DurableReader::at_time(dir.path(), "history", 0).next()->sequence, 0u);
  DurableReader future = DurableReader::at_time(dir.path(), "history", times.back().second + 1);
  EXPECT_EQ(future.next().code(), Errc::no_data);
}

TEST(DurableReplay, ReplayThenLiveUnderAFullSpeedPublisherHasNoGapAndNoDuplicate) {
  TempDir dir("durable-live");
  { DurableAppender log(replay_log(dir.path())); append_n(log, 2000); }
  const std::uint64_t kLive = static_cast<std::uint64_t>(scaled(60000));
  Pipe go;
  Child publisher = Child::spawn([&]() -> int {
    DurableAppender log(replay_log(dir.path()));
    if (!go.await()) return kChildPipeFailed;
    for (std::uint64_t i = 0; i < kLive; ++i) {
      Result<DurableLoan> loan = log.loan(stamped_size(40));
      if (!loan) return kChildFirstFree + static_cast<int>(loan.code());
      write_stamped(loan->data(), 1, loan->sequence(), 40);
      if (!log.publish(*loan)) return kChildFirstFree;
    }
    return static_cast<int>(kChildOk);
  });
  DurableReader r = DurableReader::at_sequence(dir.path(), "history", 500);
  ASSERT_TRUE(go.notify());  // history is still being read when the live stream starts
  std::uint64_t expected = 500;
  while (expected < 2000 + kLive) {
    Result<DurableSample> s = r.next_wait(10s);
    ASSERT_TRUE(s) << s.name() << " at " << expected << ": " << r.last_error();
    ASSERT_EQ(s->sequence, expected);
    std::optional<Stamp> stamp = check_stamped(s->data);
    ASSERT_TRUE(stamp);
    ASSERT_EQ(stamp->sequence, expected);
    ++expected;
  }
  EXPECT_EQ(publisher.wait(30s), 0);
  EXPECT_EQ(r.next().code(), Errc::no_data);
}

TEST(DurableReplay, NamedReaderResumesWhereItWasAfterItsProcessWasKilled) {
  TempDir dir("durable-named");
  { DurableAppender log(replay_log(dir.path())); append_n(log, 4000); }
  void* shared = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  auto* last_handled = static_cast<std::atomic<std::uint64_t>*>(shared);
  last_handled->store(~0ull);
  std::uint64_t resumed_at = 0;
  for (int round = 0; round < 5; ++round) {
    Pipe progress;
    Child reader = Child::spawn([&]() -> int {
      DurableReader r = DurableReader::named(dir.path(), "history", "audit");
      for (int n = 0;; ++n) {
        Result<DurableSample> s = r.next();
        if (!s) return s.code() == Errc::no_data ? static_cast<int>(kChildOk) : kChildFirstFree;
        if (!check_stamped(s->data)) return static_cast<int>(kChildBadData);
        last_handled->store(s->sequence, std::memory_order_release);  // pairs with the parent's acquire
        if (n == 300) progress.notify();
        if (n >= 300) pause();  // killed while it handles this sample
      }
    });
    ASSERT_TRUE(progress.await());
    reader.kill_and_reap();
    std::uint64_t handled = last_handled->load(std::memory_order_acquire);
    // Reopened under the same name: at the sample it held when killed (at least once), no gap.
    DurableReader again = DurableReader::named(dir.path(), "history", "audit");
    EXPECT_EQ(again.position(), handled) << "round " << round;
    resumed_at = again.position();
    EXPECT_EQ(resumed_at, static_cast<std::uint64_t>(round) * 300 + 300) << "round " << round;
  }
  // Another name starts at the oldest message.
  EXPECT_EQ(DurableReader::named(dir.path(), "history", "other").position(), 0u);
  munmap(shared, 4096);
}

}  // namespace
}  // namespace shmbus
