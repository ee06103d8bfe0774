// Temporary files of a creator killed mid-create (a segment reserved in full but never linked)
// are removed when the log is next opened; those of a live creator are left alone.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <optional>
#include <random>
#include <thread>

#include "shmbus/durable.hpp"
#include "test_support.hpp"

namespace shmbus {
namespace {

using namespace shmbus::testing;
namespace fs = std::filesystem;

DurableConfig rolling_log(const fs::path& dir) {
  DurableConfig c;
  c.directory = dir;
  c.topic = "rolls";
  c.segment_size = 64 * 1024;  // 15 messages of 4 KiB: the appender spends its time creating segments
  return c;
}

std::vector<fs::path> leftovers(const fs::path& log_path) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(log_path, ec)) {
    if (e.path().filename().string().find(".tmp.") != std::string::npos) out.push_back(e.path());
  }
  return out;
}

TEST(DurableLeftovers, SegmentsOfCreatorsKilledMidCreateAreRemovedAtTheNextOpenAndTheLogGoesOn) {
  TempDir dir("durable-leftovers");
  const fs::path log_path = dir.path() / "rolls";
  // The log exists before the first child: one killed before it made the directory would
  // leave retention nothing to list (it threw "cannot list", ~1 run in 15 under load).
  { DurableAppender make(rolling_log(dir.path())); }
  std::mt19937 rng(std::random_device{}());
  int killed_mid_create = 0;
  for (int attempt = 0; attempt < 200 && killed_mid_create < 3; ++attempt) {
    Child writer = Child::spawn([&]() -> int {
      DurableAppender log(rolling_log(dir.path()));
      std::vector<std::byte> m(4000, std::byte{9});
      for (int i = 0; i < 300; ++i) {  // 20 segments, then done: a kill after that finds nothing
        if (!log.append(m)) return kChildFirstFree;
      }
      return kChildOk;
    });
    std::this_thread::sleep_for(std::chrono::microseconds(500 + rng() % 3000));
    writer.kill_and_reap();
    apply_durable_retention(dir.path(), "rolls", RetentionPolicy{.max_segments = 4});  // bounded memory
    if (leftovers(log_path).empty()) continue;
    ++killed_mid_create;
    DurableAppender reopened(rolling_log(dir.path()));  // the next open removes them
    EXPECT_TRUE(leftovers(log_path).empty()) << leftovers(log_path).front();
    std::vector<std::byte> m(100, std::byte{1});
    ASSERT_TRUE(reopened.append(m)) << reopened.last_error();
  }
  ASSERT_GT(killed_mid_create, 0) << "no kill in 200 landed inside a segment's creation";
  // What is retained reads in order (tombstones skipped), across every kill.
  DurableReader r = DurableReader::oldest(dir.path(), "rolls");
  std::uint64_t read = 0, last = 0;
  Result<DurableSample> s = r.next();
  if (s.code() == Errc::lost_history) s = r.next();  // counted what retention removed
  for (; s; s = r.next(), ++read) {
    if (read > 0) ASSERT_GT(s->sequence, last);
    last = s->sequence;
  }
  EXPECT_EQ(s.code(), Errc::no_data) << r.last_error();
  EXPECT_GT(read, 0u);
}

TEST(DurableLeftovers, ATemporaryFileOfALiveCreatorIsKept) {
  TempDir dir("durable-leftovers-live");
  { DurableAppender make(rolling_log(dir.path())); }
  const fs::path log_path = dir.path() / "rolls";
  // A dead creator's file, and one named after a live process (ours), as a creator at work.
  Child gone = Child::spawn([] { return kChildOk; });
  const pid_t dead = gone.pid();
  ASSERT_EQ(gone.wait(), kChildOk);
  const fs::path dead_tmp = log_path / (".00000000000000000040.log.tmp." + std::to_string(dead));
  const fs::path live_tmp = log_path / (".00000000000000000041.log.tmp." + std::to_string(getpid()));
  for (const fs::path& p : {dead_tmp, live_tmp}) {
    int fd = ::open(p.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(posix_fallocate(fd, 0, 64 * 1024), 0);
    ::close(fd);
  }
  DurableAppender reopened(rolling_log(dir.path()));
  EXPECT_FALSE(fs::exists(dead_tmp)) << "a dead creator's reserved segment stays, holding its disk space";
  EXPECT_TRUE(fs::exists(live_tmp)) << "a live creator's file was removed under it";
}

}  // namespace
}  // namespace shmbus

namespace shmbus {
namespace {

// The next segment's file is reserved in steps while the second half of a segment is written
// (a spare under a temporary name), and the roll links that very file into place.
TEST(DurableSpare, TheRollLinksTheFileReservedWhileTheSegmentBeforeWasWritten) {
  TempDir dir("durable-spare");
  DurableConfig c;
  c.directory = dir.path();
  c.topic = "spare";
  c.segment_size = 4 << 20;
  DurableAppender log(c);
  const fs::path log_path = dir.path() / "spare";
  std::vector<std::byte> m(1000, std::byte{7});
  std::uint64_t n = 0;
  // Write until the spare is reserved in full (by three quarters of the segment).
  auto spare = [&]() -> std::optional<fs::path> {
    for (const fs::directory_entry& e : fs::directory_iterator(log_path)) {
      if (e.path().filename().string().starts_with(".spare-")) return e.path();
    }
    return std::nullopt;
  };
  for (; n < 3200 && !(spare() && fs::file_size(*spare()) == c.segment_size); ++n) ASSERT_TRUE(log.append(m));
  ASSERT_TRUE(spare().has_value()) << "no spare after " << n << " messages";
  EXPECT_GT(n, 1900u) << "reserved before half the segment was written";
  struct stat reserved {};
  ASSERT_EQ(::stat(spare()->c_str(), &reserved), 0);
  EXPECT_GE(static_cast<std::uint64_t>(reserved.st_blocks) * 512, c.segment_size) << "not allocated in full";
  while (list_durable_segments(dir.path(), "spare").size() < 2) ASSERT_TRUE(log.append(m));
  struct stat second {};
  ASSERT_EQ(::stat(list_durable_segments(dir.path(), "spare")[1].path.c_str(), &second), 0);
  EXPECT_EQ(second.st_ino, reserved.st_ino) << "the roll did not use the spare";
  EXPECT_FALSE(spare().has_value()) << "a spare left after the roll used it";
}

}  // namespace
}  // namespace shmbus
