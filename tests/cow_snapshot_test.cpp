// Copy-on-write views and snapshots, against a publisher in another process running flat out.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shmbus/shmbus.hpp"

namespace shmbus {
namespace {

namespace fs = std::filesystem;

std::uint64_t fnv1a(const std::byte* p, std::size_t n) {
  std::uint64_t h = 1469598103934665603ULL;
  for (std::size_t i = 0; i < n; ++i) h = (h ^ static_cast<std::uint8_t>(p[i])) * 1099511628211ULL;
  return h;
}

// Payload: [u64 sequence][u64 checksum of the rest][bytes...]
void fill(std::span<std::byte> buf, std::uint64_t seq) {
  std::memcpy(buf.data(), &seq, 8);
  for (std::size_t i = 16; i < buf.size(); ++i) buf[i] = static_cast<std::byte>((seq * 131 + i) & 0xff);
  std::uint64_t sum = fnv1a(buf.data() + 16, buf.size() - 16);
  std::memcpy(buf.data() + 8, &sum, 8);
}

bool intact(std::span<const std::byte> buf, std::uint64_t expected_seq) {
  if (buf.size() < 16) return false;
  std::uint64_t seq, sum;
  std::memcpy(&seq, buf.data(), 8);
  std::memcpy(&sum, buf.data() + 8, 8);
  return seq == expected_seq && sum == fnv1a(buf.data() + 16, buf.size() - 16);
}

TopicConfig config(const std::string& name) {
  TopicConfig c;
  c.name = name + "-" + std::to_string(getpid());
  c.size_classes = {{3 * 4096, 24}};
  c.queue_depth = 8;
  c.history_depth = 8;
  return c;
}

TEST(CowView, PrivateWritesStayPrivateWhileThePoolIsReused) {
  Topic topic = Topic::create(config("cow"));
  RawPublisher pub(topic);
  RawSubscriber viewer(topic);
  RawSubscriber reader(topic);
  {
    Result<RawLoan> loan = pub.loan(3 * 4096);
    ASSERT_TRUE(loan);
    std::memset(loan->data().data(), 'A', 3 * 4096);
    ASSERT_TRUE(pub.publish(std::move(loan.value())).ok());
  }
  Result<RawSample> mine = viewer.take();
  ASSERT_TRUE(mine);
  const std::byte* original = mine->data().data();
  Result<CowView> view = CowView::from(std::move(mine.value()));
  ASSERT_TRUE(view) << view.name();
  EXPECT_NE(view->data().data(), original) << "a view must be a mapping of its own";
  std::memset(view->data().data() + 4096, 'Z', 4096);  // write the middle page only

  Result<RawSample> theirs = reader.take();
  ASSERT_TRUE(theirs);
  EXPECT_EQ(theirs->data().data(), original);
  for (std::byte b : theirs->data()) ASSERT_EQ(static_cast<char>(b), 'A') << "the view's write leaked out";
  theirs = Errc::no_data;  // release the reader's reference

  // Later messages reuse every other chunk of the pool many times over.
  for (int i = 0; i < 500; ++i) {
    Result<RawLoan> loan = pub.loan(3 * 4096);
    ASSERT_TRUE(loan) << loan.name() << " at " << i;
    std::memset(loan->data().data(), 'a' + i % 26, 3 * 4096);
    ASSERT_TRUE(pub.publish(std::move(loan.value())).ok());
    while (reader.take()) {
    }
  }
  auto v = view->data();
  for (std::size_t i = 0; i < v.size(); ++i) {
    char want = (i >= 4096 && i < 2 * 4096) ? 'Z' : 'A';
    ASSERT_EQ(static_cast<char>(v[i]), want) << "byte " << i;
  }
}

// The only publisher publishes its n-th message as sequence n, so each message says which
// sequence it must have; its checksum says whether it is whole.
TEST(Snapshot, NeverTornUnderAFullSpeedPublisherInAnotherProcess) {
#ifdef SHMBUS_TEST_SCALE_DOWN
  const int snapshots = 10;
#else
  const int snapshots = 60;
#endif
  TopicConfig c = config("snap");
  // Nearly every message needs the 8 KiB class: 32 in the ring, up to 32 more that a snapshot
  // holds while the publisher laps them, and the publisher's loan. 64 ran out now and then.
  c.size_classes = {{256, 64}, {8192, 80}};
  c.queue_depth = 32;
  c.history_depth = 32;
  Topic topic = Topic::create(c);
  auto* stop = static_cast<std::atomic<int>*>(
      mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(stop, MAP_FAILED);
  stop->store(0);
  pid_t child = fork();
  if (child == 0) {
    RawPublisher pub(topic);
    std::uint64_t seq = 0;
    while (stop->load(std::memory_order_relaxed) == 0) {
      std::size_t size = 16 + (seq * 977) % 8000;
      Result<RawLoan> loan = pub.loan(size);
      if (!loan) _exit(2);
      fill(loan->data(), seq);
      if (!pub.publish(std::move(loan.value())).ok()) _exit(3);
      ++seq;
    }
    _exit(seq > 0 ? 0 : 4);
  }
  fs::path file = fs::temp_directory_path() / ("shmbus-snap-" + std::to_string(getpid()));
  std::size_t checked = 0;
  for (int i = 0; i < snapshots; ++i) {
    std::size_t saved = save_snapshot(topic, file);
    Snapshot snap = Snapshot::open(file);
    ASSERT_EQ(snap.messages().size(), saved);
    EXPECT_EQ(snap.topic_name(), topic.name());
    std::uint64_t previous = 0;
    for (const SnapshotMessage& m : snap.messages()) {
      ASSERT_EQ(m.segments.size(), 1u);
      ASSERT_TRUE(intact(m.segments[0], m.sequence)) << "torn or misnumbered message " << m.sequence;
      if (&m != &snap.messages().front()) {
        EXPECT_GT(m.sequence, previous);
      }
      previous = m.sequence;
      ++checked;
    }
    usleep(1000);
  }
  stop->store(1);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "publisher status " << status;
  EXPECT_GT(checked, static_cast<std::size_t>(snapshots));  // snapshots were not all empty
  fs::remove(file);
  munmap(stop, 4096);
}

TEST(Snapshot, TruncatedOrForeignFilesAreRefused) {
  Topic topic = Topic::create(config("snapfile"));
  RawPublisher pub(topic);
  for (std::uint64_t i = 0; i < 4; ++i) {
    Result<RawLoan> loan = pub.loan(1000);
    ASSERT_TRUE(loan);
    fill(loan->data(), i);
    ASSERT_TRUE(pub.publish(std::move(loan.value())).ok());
  }
  fs::path file = fs::temp_directory_path() / ("shmbus-snapfile-" + std::to_string(getpid()));
  ASSERT_EQ(save_snapshot(topic, file), 4u);
  EXPECT_EQ(Snapshot::open(file).messages().size(), 4u);
  fs::resize_file(file, fs::file_size(file) - 100);
  try {
    Snapshot::open(file);
    ADD_FAILURE() << "a truncated snapshot was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::region_too_short) << e.what();
  }
  fs::resize_file(file, 0);
  fs::resize_file(file, 4096);  // zeros: not a snapshot
  try {
    Snapshot::open(file);
    ADD_FAILURE() << "a foreign file was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::not_a_region) << e.what();
  }
  fs::remove(file);
}

}  // namespace
}  // namespace shmbus
