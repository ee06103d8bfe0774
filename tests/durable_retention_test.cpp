// Durable log retention and damage: segments removed under a slow reader (it gets
// lost_history with the count, then goes on), retention by count, size and age, and a segment
// truncated under readers and an appender in other processes (errors, no deaths).
#include <gtest/gtest.h>

#include <unistd.h>

#include "shmbus/durable.hpp"
#include "test_support.hpp"

namespace shmbus {
namespace {

using namespace shmbus::testing;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

DurableConfig kept_log(const fs::path& dir) {
  DurableConfig c;
  c.directory = dir;
  c.topic = "kept";
  c.segment_size = 64 * 1024;
  return c;
}

void append_n(DurableAppender& log, std::uint64_t n) {
  for (std::uint64_t i = 0; i < n; ++i) {
    Result<DurableLoan> loan = log.loan(stamped_size(100));
    ASSERT_TRUE(loan) << loan.name();
    write_stamped(loan->data(), 1, loan->sequence(), 100);
    ASSERT_TRUE(log.publish(*loan));
  }
}

TEST(DurableRetention, SlowReaderGetsTheLossWithItsCountAndGoesOnFromTheOldestKept) {
  TempDir dir("durable-ret");
  DurableAppender log(kept_log(dir.path()));
  append_n(log, 3000);
  DurableReader slow = DurableReader::oldest(dir.path(), "kept");
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(slow.next());
  std::vector<DurableSegmentInfo> before = list_durable_segments(dir.path(), "kept");
  ASSERT_GE(before.size(), 4u);
  RetentionReport report = apply_durable_retention(dir.path(), "kept", RetentionPolicy{.max_segments = 2});
  EXPECT_EQ(report.segments_removed, before.size() - 2);
  std::vector<DurableSegmentInfo> after = list_durable_segments(dir.path(), "kept");
  ASSERT_EQ(after.size(), 2u);
  EXPECT_EQ(report.messages_removed, after.front().first_sequence);
  // The reader finishes the segment it is in (its mapping keeps the unlinked file), then
  // learns exactly how much it lost.
  std::uint64_t expected = 10;
  for (;;) {
    Result<DurableSample> s = slow.next();
    if (!s) {
      ASSERT_EQ(s.code(), Errc::lost_history) << slow.last_error();
      break;
    }
    ASSERT_EQ(s->sequence, expected++);
  }
  EXPECT_EQ(expected, before[1].first_sequence);
  EXPECT_EQ(slow.lost(), after.front().first_sequence - before[1].first_sequence);
  EXPECT_NE(slow.last_error().find(std::to_string(slow.lost()) + " messages"), std::string::npos) << slow.last_error();
  expected = after.front().first_sequence;
  while (Result<DurableSample> s = slow.next()) {
    ASSERT_EQ(s->sequence, expected++);
    ASSERT_TRUE(check_stamped(s->data));
  }
  EXPECT_EQ(expected, 3000u);
  // A reader asking for a removed sequence is told too.
  DurableReader late = DurableReader::at_sequence(dir.path(), "kept", 5);
  EXPECT_EQ(late.next().code(), Errc::lost_history);
  EXPECT_EQ(late.lost(), after.front().first_sequence - 5);
  EXPECT_EQ(late.next()->sequence, after.front().first_sequence);
}

TEST(DurableRetention, RetentionBySizeAndByAgeKeepsTheNewestSegment) {
  TempDir dir("durable-age");
  DurableAppender log(kept_log(dir.path()));
  append_n(log, 3000);
  std::vector<DurableSegmentInfo> segments = list_durable_segments(dir.path(), "kept");
  ASSERT_GE(segments.size(), 4u);
  std::uint64_t n = segments.size();
  EXPECT_EQ(apply_durable_retention(dir.path(), "kept", RetentionPolicy{}).segments_removed, 0u);
  RetentionPolicy by_size;
  by_size.max_bytes = 3 * 64 * 1024;
  EXPECT_EQ(apply_durable_retention(dir.path(), "kept", by_size).segments_removed, n - 3);
  // By age, at an injected time: everything but the newest is older than 1 s an hour from now.
  RetentionPolicy by_age;
  by_age.max_age = 1s;
  std::uint64_t now = segments.back().last_time_ns;
  EXPECT_EQ(apply_durable_retention(dir.path(), "kept", by_age, now).segments_removed, 0u);
  EXPECT_EQ(apply_durable_retention(dir.path(), "kept", by_age, now + 3600'000'000'000ull).segments_removed, 2u);
  ASSERT_EQ(list_durable_segments(dir.path(), "kept").size(), 1u);
  append_n(log, 1);  // the appender goes on
}

TEST(DurableRetention, SegmentTruncatedUnderReadersAndAnAppenderIsReportedAndKillsNobody) {
  TempDir dir("durable-trunc");
  DurableConfig config = kept_log(dir.path());
  config.segment_size = 1 << 20;
  DurableAppender log(config);
  append_n(log, 2000);  // about 270 KiB into the first segment
  fs::path seg = dir.path() / "kept" / "00000000000000000000.log";
  Pipe ready, go;
  Child reader = Child::spawn([&]() -> int {
    DurableReader r = DurableReader::oldest(dir.path(), "kept");
    for (int i = 0; i < 100; ++i) {
      if (!r.next()) return kChildFirstFree;
    }
    ready.notify();
    if (!go.await()) return kChildPipeFailed;
    for (;;) {
      Result<DurableSample> s = r.next();
      if (!s) return s.code() == Errc::region_lost ? static_cast<int>(kChildOk) : kChildFirstFree + static_cast<int>(s.code());
    }
  });
  DurableReader mine = DurableReader::at_sequence(dir.path(), "kept", 50);
  ASSERT_TRUE(ready.await());
  ASSERT_EQ(::truncate(seg.c_str(), 64 * 1024), 0);
  ASSERT_TRUE(go.notify());
  EXPECT_EQ(reader.wait(30s), 0) << "the reader in another process";
  Errc seen = Errc::ok;
  for (int i = 0; i < 5000 && seen == Errc::ok; ++i) {
    Result<DurableSample> s = mine.next();
    if (!s) seen = s.code();
  }
  EXPECT_EQ(seen, Errc::region_lost) << mine.last_error();
  EXPECT_NE(mine.last_error().find(seg.string()), std::string::npos) << mine.last_error();
  Result<DurableLoan> loan = log.loan(100);
  Status published = loan ? log.publish(*loan) : Status(loan.code());
  EXPECT_EQ(published.code(), Errc::region_lost);
  // A new reader refuses the truncated file, naming it.
  try {
    DurableReader again = DurableReader::oldest(dir.path(), "kept");
    ADD_FAILURE() << "a truncated segment was opened";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::region_too_short);
  }
}

}  // namespace
}  // namespace shmbus
