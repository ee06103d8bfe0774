// A pool slot (layout.hpp, "Payload pools") is shared memory every participant can write, so a
// hostile or broken one can make it name anything. A subscriber that meets a message of a pool
// it has not mapped opens what the slot names, /proc/<pid>/fd/<n>, and must neither hang (an
// open() of a FIFO blocks) nor map anything but the publisher's sealed memfd. Each case
// rewrites the slot of a live publisher's pool after it published one message; a subscriber in
// a process of its own, which has not mapped that pool yet, then takes. Outcome for every
// forgery: the take returns at once with no_data and the message counted in lost() (there is
// no Errc for it: an unreadable pool reads as a lost message, see docs/usage.md).
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <csignal>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "shmbus/shmbus.hpp"
#include "test_support.hpp"
#include "topic_admin.hpp"
#include "topic_map.hpp"

namespace shmbus {
namespace {

using namespace shmbus::testing;
using namespace std::chrono_literals;

constexpr std::uint32_t kBody = 100;

// What the pool slot names.
struct Named {
  std::int32_t pid;
  std::int32_t fd;
  std::uint64_t inode;
};

// Rewrites a pool slot under its sequence lock (odd while rewritten), keeping its generation:
// what any process that maps the region writable can do.
void forge(detail::PoolSlot& ps, Named n) {
  const std::uint32_t seq = ps.seq.load();
  ps.seq.store(seq | 1);
  ps.owner_pid.store(n.pid);
  ps.owner_fd.store(n.fd);
  ps.inode.store(n.inode);
  ps.seq.store((seq | 1) + 1);
}

// The subscriber child's exit codes.
constexpr int kTookIt = 10;      // read the message, intact
constexpr int kLostIt = 11;      // no_data at once, the message counted lost
constexpr int kSomethingElse = 12;
constexpr int kTooSlow = 13;     // returned, but only after a second or more

std::string outcome(int code) {
  switch (code) {
    case kTookIt: return "took the message";
    case kLostIt: return "counted it lost at once";
    case kSomethingElse: return "something else";
    case kTooSlow: return "returned only after a second or more";
    case 128 + SIGALRM: return "hung (killed by its alarm)";
    default: return "exit status " + std::to_string(code);
  }
}

// One message from a live publisher of a fresh anonymous topic; `rewrite` then gets the
// genuine slot and the pool size and says what the slot should name instead (or nothing);
// a subscriber process that has not mapped the pool takes. Returns what the subscriber did.
std::string take_after(const std::function<std::optional<Named>(Named genuine, std::uint64_t pool_bytes)>& rewrite) {
  TopicConfig cfg;
  cfg.name = unique_name("forged-pool");
  cfg.size_classes = {{256, 8}};
  cfg.queue_depth = 4;
  Topic topic = Topic::create(cfg);
  if (!topic.external_pools()) return "not a topic with external pools";
  Topic reader = Topic::open_fd(topic.fd());  // a map of its own: it has no pool views yet
  RawSubscriber sub(reader, {.with_history = false});
  RawPublisher pub(topic);
  std::vector<std::byte> body(kBody, std::byte{0x5a});
  if (!pub.publish_copy(body).ok()) return "publish failed";
  detail::PoolSlot& ps = detail::TopicAccess::map(topic).pool_slot(pub.slot());
  const Named genuine{ps.owner_pid.load(), ps.owner_fd.load(), ps.inode.load()};
  if (auto n = rewrite(genuine, detail::TopicAccess::map(topic).pool_bytes())) forge(ps, *n);
  Child subscriber = Child::spawn([&] {
    alarm(3);  // a take that blocks in open() ends here
    const auto start = std::chrono::steady_clock::now();
    auto s = sub.take();
    const bool quick = std::chrono::steady_clock::now() - start < 1s;
    if (s.ok() && s->data().size() == kBody && s->data()[0] == std::byte{0x5a}) return quick ? kTookIt : kTooSlow;
    if (s.code() == Errc::no_data && sub.lost() == 1) return quick ? kLostIt : kTooSlow;
    return kSomethingElse;
  });
  return outcome(subscriber.wait(10s));
}

// A file of `bytes` bytes in the test's temporary directory, open read-write.
int file_of(const TempDir& dir, const char* name, std::uint64_t bytes) {
  int fd = open((dir.path() / name).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0 || ftruncate(fd, static_cast<off_t>(bytes)) != 0) throw std::runtime_error("temporary file");
  return fd;
}

std::uint64_t inode_of(int fd) {
  struct stat st {};
  if (fstat(fd, &st) != 0) throw std::runtime_error("fstat");
  return static_cast<std::uint64_t>(st.st_ino);
}

// A process holding a memfd of `bytes` bytes (sealed like a pool, or not at all) until it is
// killed; its pid, fd number and the memfd's inode.
struct MemfdHolder {
  Child child;
  Named named;
};
MemfdHolder memfd_in_another_process(std::uint64_t bytes, bool sealed) {
  Pipe report;
  Child child = Child::spawn([&] {
    int fd = memfd_create("not-the-pool", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0 || ftruncate(fd, static_cast<off_t>(bytes)) != 0) return 1;
    if (sealed && fcntl(fd, F_ADD_SEALS, detail::pool_seals()) != 0) return 1;
    report.send(Named{getpid(), fd, inode_of(fd)});
    pause();
    return 0;
  });
  std::optional<Named> named = report.receive<Named>();
  if (!named) throw std::runtime_error("the memfd holder did not report");
  return {std::move(child), *named};
}

TEST(PoolSlotForgery, GenuineSlotIsReadSoTheRefusalsBelowAreAboutTheForgeries) {
  EXPECT_EQ(take_after([](Named, std::uint64_t) { return std::nullopt; }), "took the message");
}

TEST(PoolSlotForgery, SlotNamingAFifoIsRefusedWithoutOpeningIt) {
  TempDir dir("pool-forgery");
  const auto fifo_path = dir.path() / "fifo";
  ASSERT_EQ(mkfifo(fifo_path.c_str(), 0600), 0);
  // Held by O_PATH: no reader, no writer, so an open(O_RDONLY) of it would block for good.
  int fifo = open(fifo_path.c_str(), O_PATH | O_CLOEXEC);
  ASSERT_GE(fifo, 0);
  EXPECT_EQ(take_after([&](Named, std::uint64_t) { return Named{getpid(), fifo, inode_of(fifo)}; }),
            "counted it lost at once");
  close(fifo);
}

TEST(PoolSlotForgery, SlotNamingASocketOrADeviceIsRefused) {
  int pair[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  EXPECT_EQ(take_after([&](Named, std::uint64_t) { return Named{getpid(), pair[0], inode_of(pair[0])}; }),
            "counted it lost at once");
  close(pair[0]);
  close(pair[1]);
  int zero = open("/dev/zero", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(zero, 0);
  EXPECT_EQ(take_after([&](Named, std::uint64_t) { return Named{getpid(), zero, inode_of(zero)}; }),
            "counted it lost at once");
  close(zero);
}

TEST(PoolSlotForgery, SlotNamingARegularFileOfThePoolsSizeIsRefusedForItsMissingSeals) {
  TempDir dir("pool-forgery");
  int file = -1;
  EXPECT_EQ(take_after([&](Named, std::uint64_t bytes) {
              file = file_of(dir, "lookalike", bytes);
              return Named{getpid(), file, inode_of(file)};
            }),
            "counted it lost at once");
  if (file >= 0) close(file);
}

TEST(PoolSlotForgery, SlotNamingAnotherProcesssMemfdIsRefused) {
  // Sealed like a pool and of its size, but not the inode the slot claims.
  std::optional<MemfdHolder> sealed;
  EXPECT_EQ(take_after([&](Named genuine, std::uint64_t bytes) {
              sealed.emplace(memfd_in_another_process(bytes, /*sealed=*/true));
              return Named{sealed->named.pid, sealed->named.fd, genuine.inode};
            }),
            "counted it lost at once");
  // The very inode the slot claims, but unsealed: whoever mapped it could be written under.
  std::optional<MemfdHolder> unsealed;
  EXPECT_EQ(take_after([&](Named, std::uint64_t bytes) {
              unsealed.emplace(memfd_in_another_process(bytes, /*sealed=*/false));
              return unsealed->named;
            }),
            "counted it lost at once");
}

TEST(PoolSlotForgery, SlotNamingAHugeFdOrNoRealPidIsRefused) {
  EXPECT_EQ(take_after([](Named genuine, std::uint64_t) { return Named{genuine.pid, INT_MAX, genuine.inode}; }),
            "counted it lost at once");
  EXPECT_EQ(take_after([](Named genuine, std::uint64_t) { return Named{genuine.pid, -3, genuine.inode}; }),
            "counted it lost at once");
  for (std::int32_t pid : {0, 1, -7, INT_MAX}) {
    EXPECT_EQ(take_after([pid](Named genuine, std::uint64_t) { return Named{pid, genuine.fd, genuine.inode}; }),
              "counted it lost at once")
        << "pid " << pid;
  }
}

}  // namespace
}  // namespace shmbus
