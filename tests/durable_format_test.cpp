// Durable log, one process: the segment format, append and read in place, roll-over, the
// refusal of foreign, truncated and newer-layout segments, and a full disk at roll time.
#include <gtest/gtest.h>

#include <sys/mount.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

#include "durable/layout.hpp"
#include "shmbus/durable.hpp"
#include "test_support.hpp"

namespace shmbus {
namespace {

using namespace shmbus::testing;
namespace fs = std::filesystem;

DurableConfig small_log(const fs::path& dir, std::uint64_t segment_size = 64 * 1024) {
  DurableConfig c;
  c.directory = dir;
  c.topic = "ticks";
  c.segment_size = segment_size;
  c.type_id = 42;
  c.schema = "schema bytes";
  return c;
}

Status append_stamped(DurableAppender& log, std::uint64_t sequence, std::uint32_t body) {
  Result<DurableLoan> loan = log.loan(stamped_size(body));
  if (!loan) return loan.code();
  write_stamped(loan->data(), 1, sequence, body);
  return log.publish(*loan);
}

// Reads everything there is; fails the test on a bad message or an out-of-order sequence.
std::uint64_t read_all_checked(DurableReader& reader, std::uint64_t first_sequence) {
  std::uint64_t expected = first_sequence;
  for (;;) {
    Result<DurableSample> s = reader.next();
    if (!s) {
      EXPECT_EQ(s.code(), Errc::no_data) << reader.last_error();
      return expected - first_sequence;
    }
    std::optional<Stamp> stamp = check_stamped(s->data);
    EXPECT_TRUE(stamp.has_value()) << "sequence " << s->sequence;
    EXPECT_EQ(s->sequence, expected);
    if (stamp) {
      EXPECT_EQ(stamp->sequence, s->sequence);
    }
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(s->data.data()) % 8, 0u);
    ++expected;
  }
}

void patch_file(const fs::path& file, std::size_t offset, const void* bytes, std::size_t size) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(static_cast<const char*>(bytes), static_cast<std::streamsize>(size));
}

template <typename F>
Error expect_error(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no shmbus::Error thrown";
  return Error(Errc::ok, "");
}

TEST(DurableFormat, AppendedMessagesAreReadBackInOrderWithTheirTimes) {
  TempDir dir("durable-fmt");
  DurableAppender log(small_log(dir.path(), 1 << 20));
  std::uint64_t before = 0;
  for (std::uint64_t i = 0; i < 1000; ++i) {
    Result<DurableLoan> loan = log.loan(stamped_size(static_cast<std::uint32_t>(i % 200)));
    ASSERT_TRUE(loan) << loan.name();
    EXPECT_EQ(loan->sequence(), i);
    EXPECT_GE(loan->time_ns(), before);
    before = loan->time_ns();
    write_stamped(loan->data(), 1, i, static_cast<std::uint32_t>(i % 200));
    ASSERT_TRUE(log.publish(*loan));
  }
  DurableReader reader = DurableReader::oldest(dir.path(), "ticks");
  EXPECT_EQ(read_all_checked(reader, 0), 1000u);
  EXPECT_EQ(reader.position(), 1000u);
  EXPECT_EQ(durable_schema(dir.path(), "ticks"), "schema bytes");
}

TEST(DurableFormat, AppendingRollsOverSegmentsAndReadersFollowThem) {
  TempDir dir("durable-roll");
  DurableAppender log(small_log(dir.path()));
  for (std::uint64_t i = 0; i < 3000; ++i) ASSERT_TRUE(append_stamped(log, i, 100)) << log.last_error();
  std::vector<DurableSegmentInfo> segments = list_durable_segments(dir.path(), "ticks");
  ASSERT_GE(segments.size(), 3u);
  for (std::size_t i = 0; i + 1 < segments.size(); ++i) {
    EXPECT_TRUE(segments[i].sealed);
    EXPECT_EQ(segments[i].next_sequence, segments[i + 1].first_sequence);
    EXPECT_LE(segments[i].last_time_ns, segments[i + 1].first_time_ns);
    EXPECT_EQ(segments[i].type_id, 42u);
  }
  EXPECT_FALSE(segments.back().sealed);
  EXPECT_EQ(segments.back().next_sequence, 3000u);
  DurableReader reader = DurableReader::oldest(dir.path(), "ticks");
  EXPECT_EQ(read_all_checked(reader, 0), 3000u);
  // A second appender (a restart) goes on where the log ends.
  DurableAppender again(small_log(dir.path()));
  ASSERT_TRUE(append_stamped(again, 3000, 100));
  EXPECT_EQ(read_all_checked(reader, 3000), 1u);
}

TEST(DurableFormat, DroppedLoanIsATombstoneThatReadersSkip) {
  TempDir dir("durable-drop");
  DurableAppender log(small_log(dir.path()));
  { Result<DurableLoan> dropped = log.loan(64); ASSERT_TRUE(dropped); }
  ASSERT_TRUE(append_stamped(log, 1, 10));
  DurableReader reader = DurableReader::oldest(dir.path(), "ticks");
  Result<DurableSample> s = reader.next();
  ASSERT_TRUE(s) << s.name();
  EXPECT_EQ(s->sequence, 1u);
  EXPECT_EQ(reader.next().code(), Errc::no_data);
}

TEST(DurableFormat, OversizedMessageAndBadNamesAreRefused) {
  TempDir dir("durable-big");
  DurableAppender log(small_log(dir.path()));
  EXPECT_EQ(log.loan(log.max_message_size() + 1).code(), Errc::message_too_large);
  ASSERT_TRUE(log.loan(log.max_message_size()));  // the largest fits (in a fresh segment)
  DurableConfig bad = small_log(dir.path());
  bad.topic = "../escape";
  EXPECT_EQ(expect_error([&] { DurableAppender a(bad); }).code(), Errc::invalid_config);
  bad = small_log(dir.path());
  bad.type_id = 7;
  Error e = expect_error([&] { DurableAppender a(bad); });
  EXPECT_EQ(e.code(), Errc::type_mismatch);
  EXPECT_NE(std::string(e.what()).find("type id 42"), std::string::npos) << e.what();
}

TEST(DurableFormat, ForeignTruncatedAndNewerSegmentsAreRefusedNamingTheFile) {
  TempDir dir("durable-refuse");
  { DurableAppender log(small_log(dir.path())); ASSERT_TRUE(append_stamped(log, 0, 10)); }
  fs::path seg = dir.path() / "ticks" / "00000000000000000000.log";
  ASSERT_TRUE(fs::exists(seg));
  auto open_it = [&] { DurableReader r = DurableReader::oldest(dir.path(), "ticks"); };

  std::uint32_t newer = detail::durable::kSegmentLayoutVersion + 1;
  patch_file(seg, offsetof(detail::durable::SegmentHeader, layout_version), &newer, sizeof newer);
  Error e = expect_error(open_it);
  EXPECT_EQ(e.code(), Errc::unknown_layout_version);
  EXPECT_NE(std::string(e.what()).find(seg.string()), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find("newer"), std::string::npos) << e.what();
  std::uint32_t ours = detail::durable::kSegmentLayoutVersion;
  patch_file(seg, offsetof(detail::durable::SegmentHeader, layout_version), &ours, sizeof ours);
  ASSERT_NO_THROW(open_it());

  fs::resize_file(seg, 32 * 1024);
  e = expect_error(open_it);
  EXPECT_EQ(e.code(), Errc::region_too_short);
  EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
  fs::resize_file(seg, 100);
  EXPECT_EQ(expect_error(open_it).code(), Errc::region_too_short);

  { std::ofstream(seg, std::ios::trunc) << std::string(8192, 'x'); }
  e = expect_error(open_it);
  EXPECT_EQ(e.code(), Errc::not_a_region);
  EXPECT_NE(std::string(e.what()).find(seg.string()), std::string::npos) << e.what();
  EXPECT_EQ(expect_error([&] { DurableAppender a(small_log(dir.path())); }).code(), Errc::not_a_region);
}

TEST(DurableFormat, FullDiskAtRollIsNoSpaceNamingTheDirectoryAndTheLogStaysReadable) {
  if (geteuid() != 0) GTEST_SKIP() << "mounting a small tmpfs needs root";
  TempDir base("durable-full");
  fs::path mnt = base.path() / "mnt";
  fs::create_directories(mnt);
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=160k") != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs here: " << std::strerror(errno);
  }
  struct Unmount {
    fs::path p;
    ~Unmount() { ::umount2(p.c_str(), MNT_DETACH); }
  } unmount{mnt};
  Errc failure = Errc::ok;
  std::uint64_t written = 0;
  {
    DurableAppender log(small_log(mnt));
    for (; written < 5000; ++written) {
      Status st = append_stamped(log, written, 200);
      if (!st) {
        failure = st.code();
        EXPECT_NE(log.last_error().find(mnt.string()), std::string::npos) << log.last_error();
        break;
      }
    }
    ASSERT_EQ(failure, Errc::no_space) << "wrote " << written;
    EXPECT_GT(written, 100u);
    EXPECT_EQ(append_stamped(log, written, 200).code(), Errc::no_space);  // still an error, no SIGBUS
    DurableReader reader = DurableReader::oldest(mnt, "ticks");
    EXPECT_EQ(read_all_checked(reader, 0), written);
    // Room made (retention drops the oldest segment): the same appender goes on at once.
    EXPECT_EQ(apply_durable_retention(mnt, "ticks", RetentionPolicy{.max_segments = 1}).segments_removed, 1u);
    ASSERT_TRUE(append_stamped(log, written, 200)) << log.last_error();
    EXPECT_EQ(read_all_checked(reader, written), 1u);
  }
  // No half-reserved file left behind.
  for (const auto& entry : fs::directory_iterator(mnt / "ticks")) {
    EXPECT_EQ(entry.path().filename().string().find(".tmp"), std::string::npos) << entry.path();
  }
}

}  // namespace
}  // namespace shmbus
