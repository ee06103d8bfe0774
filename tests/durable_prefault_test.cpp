// Durable log, one process: the appender populates the segment's pages ahead of its writes
// (DurableConfig::prefault_window, DurableAppender::prefault), on tmpfs and on the disk
// filesystem of /var/tmp, so that writing a message takes no page fault. Checked through
// /proc/self/pagemap: a page is "present" once this process's page table maps it.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cstring>

#include "shmbus/durable.hpp"
#include "test_support.hpp"

namespace shmbus {
namespace {

using namespace shmbus::testing;
namespace fs = std::filesystem;

constexpr std::uint64_t kPage = 4096;

// Bit 63 of the page's /proc/self/pagemap entry: mapped in this process.
bool page_present(const void* address) {
  int fd = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) ADD_FAILURE() << "cannot open /proc/self/pagemap: " << std::strerror(errno);
  std::uint64_t entry = 0;
  off_t at = static_cast<off_t>(reinterpret_cast<std::uintptr_t>(address) / kPage * sizeof entry);
  bool ok = fd >= 0 && ::pread(fd, &entry, sizeof entry, at) == static_cast<ssize_t>(sizeof entry);
  if (fd >= 0) ::close(fd);
  if (!ok) ADD_FAILURE() << "cannot read /proc/self/pagemap";
  return (entry >> 63) != 0;
}

// A directory on the filesystem behind /var/tmp (ext4 or xfs on a usual machine, unlike the
// tmpfs of TempDir), removed on destruction.
class DiskDir {
 public:
  DiskDir() {
    std::string tmpl = "/var/tmp/shmbus-prefault-XXXXXX";
    if (::mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
  }
  ~DiskDir() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

DurableConfig log_in(const fs::path& dir, std::uint64_t window) {
  DurableConfig c;
  c.directory = dir;
  c.topic = "prefault";
  c.segment_size = 8ull << 20;
  c.prefault_window = window;
  return c;
}

// Appends `count` messages of `size` bytes; returns the last loan's data address, published.
const std::byte* append_some(DurableAppender& log, std::size_t size, int count) {
  const std::byte* last = nullptr;
  for (int i = 0; i < count; ++i) {
    Result<DurableLoan> loan = log.loan(size);
    EXPECT_TRUE(loan.ok()) << log.last_error();
    if (!loan) return nullptr;
    std::memset(loan->data().data(), 0x5a, size);
    last = loan->data().data();
    EXPECT_TRUE(log.publish(*loan).ok());
  }
  return last;
}

void expect_window_populated_ahead(const fs::path& dir) {
  SCOPED_TRACE(dir.string());
  const std::uint64_t window = 1ull << 20;
  DurableAppender log(log_in(dir, window));
  // A few loans fill the window (one 256 KiB step each); none of these pages was written.
  const std::byte* at = append_some(log, 64, 16);
  ASSERT_NE(at, nullptr);
  EXPECT_TRUE(page_present(at + kPage));
  EXPECT_TRUE(page_present(at + window / 2));
  EXPECT_TRUE(page_present(at + window - 2 * kPage));
  // Writing on through 2 MiB keeps the window ahead of the writer.
  at = append_some(log, 4000, 512);
  ASSERT_NE(at, nullptr);
  EXPECT_TRUE(page_present(at + window - 2 * kPage));
  // Nothing is read back but what was published.
  DurableReader reader = DurableReader::oldest(dir, "prefault");
  int read = 0;
  while (Result<DurableSample> s = reader.next()) {
    ASSERT_EQ(s->data[0], std::byte{0x5a});
    ++read;
  }
  EXPECT_EQ(read, 16 + 512);
}

TEST(DurablePrefault, PagesAheadOfTheWriterArePopulatedOnTmpfs) {
  TempDir dir("durable-prefault");
  expect_window_populated_ahead(dir.path());
}

TEST(DurablePrefault, PagesAheadOfTheWriterArePopulatedOnTheDiskFilesystem) {
  DiskDir dir;
  ASSERT_FALSE(dir.path().empty()) << "cannot create a directory in /var/tmp";
  expect_window_populated_ahead(dir.path());
}

TEST(DurablePrefault, WithoutAWindowPagesAheadStayUnmapped) {
  TempDir dir("durable-prefault-off");
  DurableAppender log(log_in(dir.path(), 0));
  const std::byte* at = append_some(log, 64, 16);
  ASSERT_NE(at, nullptr);
  EXPECT_FALSE(page_present(at + 64 * kPage));
}

TEST(DurablePrefault, PrefaultPopulatesTheRestOfTheSegmentAtOnce) {
  TempDir dir("durable-prefault-all");
  DurableConfig c = log_in(dir.path(), 0);
  DurableAppender log(c);
  const std::byte* at = append_some(log, 64, 1);
  ASSERT_NE(at, nullptr);
  EXPECT_FALSE(page_present(at + (4ull << 20)));
  ASSERT_TRUE(log.prefault(c.segment_size).ok()) << log.last_error();
  EXPECT_TRUE(page_present(at + (4ull << 20)));
  EXPECT_TRUE(page_present(at + (7ull << 20)));
}

// The appender keeps no reference count per loan; a segment it rolled away from stays mapped
// while a loan in it is out (an unmapped one would crash the publish below).
TEST(DurableLoanKeepsItsSegment, LoanHeldAcrossRollsIsPublishedIntactAfterThem) {
  TempDir dir("durable-loan-roll");
  DurableConfig c = log_in(dir.path(), 1ull << 20);
  c.segment_size = 64 * 1024;
  DurableAppender log(c);
  Result<DurableLoan> held = log.loan(1000);
  ASSERT_TRUE(held.ok()) << log.last_error();
  append_some(log, 1000, 200);  // three segments and more
  ASSERT_GE(list_durable_segments(dir.path(), "prefault").size(), 3u);
  std::memset(held->data().data(), 0xa1, 1000);
  ASSERT_TRUE(log.publish(*held).ok());
  DurableReader reader = DurableReader::oldest(dir.path(), "prefault");
  Result<DurableSample> first = reader.next();
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->sequence, 0u);
  EXPECT_EQ(first->data.size(), 1000u);
  EXPECT_EQ(first->data[999], std::byte{0xa1});
  int rest = 0;
  while (reader.next()) ++rest;
  EXPECT_EQ(rest, 200);
}

}  // namespace
}  // namespace shmbus
