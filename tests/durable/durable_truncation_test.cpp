// A segment file truncated by another process (truncate(2)): listing names it and shows the
// others, retention removes it in its turn, appenders inside it go on in a new segment by
// themselves, and readers skip past it with a loss error naming it.
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

DurableConfig small_log(const fs::path& dir, std::uint64_t segment_size = 64 * 1024) {
  DurableConfig c;
  c.directory = dir;
  c.topic = "cut";
  c.segment_size = segment_size;
  return c;
}

// Big enough that the appenders do not roll while the test runs: the truncated one is the tail.
constexpr std::uint64_t kNoRoll = 4 << 20;

void append_stamped(DurableAppender& log, std::uint32_t publisher, std::uint64_t n) {
  for (std::uint64_t i = 0; i < n; ++i) {
    Result<DurableLoan> loan = log.loan(stamped_size(200));
    ASSERT_TRUE(loan) << loan.name() << " " << log.last_error();
    write_stamped(loan->data(), publisher, loan->sequence(), 200);
    ASSERT_TRUE(log.publish(*loan)) << log.last_error();
  }
}

TEST(DurableTruncation, ListingNamesATruncatedSegmentShowsTheOthersAndRetentionRemovesItInItsTurn) {
  TempDir dir("durable-list-cut");
  DurableAppender log(small_log(dir.path()));
  ASSERT_NO_FATAL_FAILURE(append_stamped(log, 1, 1200));  // 232-byte records: 5 segments
  std::vector<DurableSegmentInfo> before = list_durable_segments(dir.path(), "cut");
  ASSERT_GE(before.size(), 4u);
  ASSERT_EQ(::truncate(before[1].path.c_str(), 1000), 0);  // the header goes too
  ASSERT_EQ(::truncate(before[2].path.c_str(), 8192), 0);  // the header stays, records go

  std::vector<DurableSegmentInfo> after = list_durable_segments(dir.path(), "cut");
  ASSERT_EQ(after.size(), before.size());
  for (std::size_t i = 0; i < after.size(); ++i) {
    EXPECT_EQ(after[i].first_sequence, before[i].first_sequence);
    EXPECT_EQ(after[i].next_sequence, before[i].next_sequence) << "segment " << i;
    if (i == 1 || i == 2) {
      EXPECT_NE(after[i].damage.find(before[i].path.string()), std::string::npos) << after[i].damage;
      EXPECT_NE(after[i].damage.find("truncated"), std::string::npos) << after[i].damage;
    } else {
      EXPECT_EQ(after[i].damage, "") << "segment " << i;
      EXPECT_EQ(after[i].last_time_ns, before[i].last_time_ns);
    }
  }
  EXPECT_EQ(after[1].size_bytes, 1000u);
  EXPECT_EQ(after[2].size_bytes, 8192u);
  // Time bounds from the nearest readable neighbours.
  EXPECT_EQ(after[1].first_time_ns, before[0].last_time_ns);
  EXPECT_EQ(after[1].last_time_ns, before[3].first_time_ns);
  EXPECT_EQ(after[2].first_time_ns, before[0].last_time_ns);

  // A reader from the oldest reads segment 0, then skips both damaged ones, saying so.
  DurableReader r = DurableReader::oldest(dir.path(), "cut");
  std::uint64_t read = 0, expected = 0;
  bool told = false;
  for (;;) {
    Result<DurableSample> s = r.next();
    if (!s && s.code() == Errc::no_data) break;
    if (!s) {
      ASSERT_EQ(s.code(), Errc::region_lost) << r.last_error();
      EXPECT_NE(r.last_error().find(before[1].path.string()), std::string::npos) << r.last_error();
      EXPECT_FALSE(told) << "reported twice: " << r.last_error();
      told = true;
      expected = before[3].first_sequence;
      continue;
    }
    ASSERT_EQ(s->sequence, expected);
    ASSERT_TRUE(check_stamped(s->data).has_value());
    ++expected;
    ++read;
  }
  EXPECT_TRUE(told);
  EXPECT_EQ(r.lost(), before[3].first_sequence - before[1].first_sequence);
  EXPECT_EQ(read, before.back().next_sequence - r.lost());

  // At a sequence inside a damaged segment: lost_history up to the next readable one.
  DurableReader at = DurableReader::at_sequence(dir.path(), "cut", before[2].first_sequence + 3);
  Result<DurableSample> s = at.next();
  ASSERT_EQ(s.code(), Errc::lost_history) << at.last_error();
  s = at.next();
  ASSERT_TRUE(s) << s.name() << " " << at.last_error();
  EXPECT_EQ(s->sequence, before[3].first_sequence);

  // Retention by count: the oldest goes first, then the damaged ones, in their turn.
  RetentionPolicy keep;
  keep.max_segments = after.size() - 2;
  RetentionReport removed = apply_durable_retention(dir.path(), "cut", keep);
  EXPECT_EQ(removed.segments_removed, 2u);
  EXPECT_FALSE(fs::exists(before[0].path));
  EXPECT_FALSE(fs::exists(before[1].path));
  EXPECT_TRUE(fs::exists(before[2].path));
  // By age: a damaged segment is as old as the next one's first time.
  RetentionPolicy by_age;
  by_age.max_age = 1ns;
  removed = apply_durable_retention(dir.path(), "cut", by_age, before[3].first_time_ns + 2);
  EXPECT_GE(removed.segments_removed, 1u);
  EXPECT_FALSE(fs::exists(before[2].path));
}

TEST(DurableTruncation, ANewAppenderOnALogWhoseNewestSegmentWasTruncatedGoesOnAfterIt) {
  TempDir dir("durable-cut-tail");
  std::uint64_t written = 0;
  {
    DurableAppender log(small_log(dir.path()));
    ASSERT_NO_FATAL_FAILURE(append_stamped(log, 1, 100));
    written = 100;
  }
  const fs::path tail = dir.path() / "cut" / "00000000000000000000.log";
  ASSERT_EQ(::truncate(tail.c_str(), 4096), 0);  // its header (with next sequence 100) stays
  DurableAppender again(small_log(dir.path()));
  Result<DurableLoan> loan = again.loan(stamped_size(8));
  ASSERT_TRUE(loan) << loan.name() << " " << again.last_error();
  EXPECT_EQ(loan->sequence(), written);  // numbered past the lost ones, exactly
  write_stamped(loan->data(), 2, loan->sequence(), 8);
  ASSERT_TRUE(again.publish(*loan));
  std::vector<DurableSegmentInfo> segs = list_durable_segments(dir.path(), "cut");
  ASSERT_EQ(segs.size(), 2u);
  EXPECT_NE(segs[0].damage, "");
  EXPECT_EQ(segs[0].next_sequence, written);
  // A reader meets the damage first, then reads the new message.
  DurableReader r = DurableReader::oldest(dir.path(), "cut");
  Result<DurableSample> s = r.next();
  ASSERT_EQ(s.code(), Errc::lost_history) << r.last_error();
  EXPECT_NE(r.last_error().find(tail.string()), std::string::npos) << r.last_error();
  s = r.next();
  ASSERT_TRUE(s) << s.name() << " " << r.last_error();
  EXPECT_EQ(s->sequence, written);
}

// The appender in a child process appends until told to stop, recording each returned
// sequence and its truncation losses in memory shared with the parent.
struct SharedReport {
  std::atomic<std::uint64_t> stop;
  std::atomic<std::uint64_t> last_returned[2];
  std::atomic<std::uint64_t> region_lost_returns[2];
  std::atomic<std::uint64_t> segments_lost[2];
  std::atomic<std::uint64_t> published_after_loss[2];
};

class Shared {
 public:
  Shared() {
    void* p = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    report = new (p) SharedReport{};
  }
  ~Shared() { munmap(report, 4096); }
  SharedReport* report;
};

int append_until_stopped(const fs::path& dir, std::uint32_t id, SharedReport& rep) {
  DurableAppender log(small_log(dir, kNoRoll));
  for (std::uint64_t i = 0; rep.stop.load(std::memory_order_acquire) == 0; ++i) {  // pairs with the parent's release
    Result<DurableLoan> loan = log.loan(stamped_size(64));
    if (!loan) return kChildFirstFree + static_cast<int>(loan.code());
    write_stamped(loan->data(), id, loan->sequence(), 64);
    Status st = log.publish(*loan);
    if (st.code() == Errc::region_lost) {
      if (log.last_error().find(".log: truncated under this appender") == std::string::npos) return kChildBadData;
      rep.region_lost_returns[id].fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    if (!st) return kChildFirstFree + static_cast<int>(st.code());
    rep.segments_lost[id].store(log.segments_lost(), std::memory_order_relaxed);
    if (log.segments_lost() != 0) rep.published_after_loss[id].fetch_add(1, std::memory_order_relaxed);
    rep.last_returned[id].store(loan->sequence(), std::memory_order_release);  // pairs with the parent's acquire
    if (i % 64 == 0) std::this_thread::sleep_for(50us);
  }
  return kChildOk;
}

void truncate_tail_under_appenders_and_reader(off_t keep) {
  TempDir dir("durable-cut-live");
  Shared shared;
  SharedReport& rep = *shared.report;
  { DurableAppender create(small_log(dir.path(), kNoRoll)); }
  DurableReader reader = DurableReader::oldest(dir.path(), "cut");
  std::vector<Child> appenders;
  for (std::uint32_t id = 0; id < 2; ++id) {
    appenders.push_back(Child::spawn([&, id] { return append_until_stopped(dir.path(), id, rep); }));
  }
  // Read along until both appenders are going, then cut the segment everyone is in.
  std::uint64_t next_expected = 0, read_before = 0;
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while ((rep.last_returned[0].load(std::memory_order_acquire) < 500 ||  // pairs with the child's release
          rep.last_returned[1].load(std::memory_order_acquire) < 500) &&
         std::chrono::steady_clock::now() < deadline) {
    Result<DurableSample> s = reader.next_wait(10ms);
    if (!s) continue;
    ASSERT_GE(s->sequence, next_expected);
    next_expected = s->sequence + 1;
    ++read_before;
  }
  ASSERT_GT(read_before, 0u);
  const fs::path tail = list_durable_segments(dir.path(), "cut").back().path;
  ASSERT_EQ(tail.filename(), "00000000000000000000.log");
  ASSERT_EQ(::truncate(tail.c_str(), keep), 0);

  // The reader gets region_lost naming the file once, then reads the appenders' new messages.
  bool told = false;
  std::uint64_t read_after = 0;
  deadline = std::chrono::steady_clock::now() + 20s;
  while (read_after < 1000 && std::chrono::steady_clock::now() < deadline) {
    Result<DurableSample> s = reader.next_wait(10ms);
    if (!s && (s.code() == Errc::timeout || s.code() == Errc::no_data)) continue;
    if (!s) {
      ASSERT_EQ(s.code(), Errc::region_lost) << reader.last_error();
      ASSERT_NE(reader.last_error().find(tail.string()), std::string::npos) << reader.last_error();
      told |= reader.last_error().find("going on in") != std::string::npos;
      continue;
    }
    ASSERT_GE(s->sequence, next_expected) << "a sequence used twice";
    std::optional<Stamp> stamp = check_stamped(s->data);
    ASSERT_TRUE(stamp.has_value()) << "sequence " << s->sequence;
    ASSERT_EQ(stamp->sequence, s->sequence);
    next_expected = s->sequence + 1;
    if (told) ++read_after;
  }
  EXPECT_TRUE(told) << reader.last_error();
  EXPECT_GE(read_after, 1000u);
  EXPECT_GT(reader.lost(), 0u);

  // Both appenders must have met the truncation before they stop: under load one of them can
  // sleep through the reader's 1000 messages (seen once in ~20 runs at load 8).
  deadline = std::chrono::steady_clock::now() + 20s;
  while ((rep.published_after_loss[0].load() == 0 || rep.published_after_loss[1].load() == 0) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  rep.stop.store(1, std::memory_order_release);  // pairs with the children's acquire
  for (Child& c : appenders) EXPECT_EQ(c.wait(20s), 0);
  for (std::uint32_t id = 0; id < 2; ++id) {
    EXPECT_EQ(rep.segments_lost[id].load(), 1u) << "appender " << id;
    EXPECT_LE(rep.region_lost_returns[id].load(), 1u) << "appender " << id;
    EXPECT_GT(rep.published_after_loss[id].load(), 0u) << "appender " << id;
  }
  // Both went on in the same new segment, numbered past the lost one's sequences.
  std::vector<DurableSegmentInfo> segs = list_durable_segments(dir.path(), "cut");
  ASSERT_EQ(segs.size(), 2u);
  EXPECT_NE(segs[0].damage, "");
  EXPECT_EQ(segs[1].damage, "");
  EXPECT_GE(segs[1].first_sequence, read_before);
}

TEST(DurableTruncation, AppendersInsideATruncatedSegmentGoOnInANewOneAndTheReaderSkipsItNamingIt) {
  truncate_tail_under_appenders_and_reader(4096);
}

TEST(DurableTruncation, TruncatedBelowItsHeaderTheNewSegmentIsNumberedPastAnythingTheLostOneHeld) {
  truncate_tail_under_appenders_and_reader(0);
}

}  // namespace
}  // namespace shmbus
