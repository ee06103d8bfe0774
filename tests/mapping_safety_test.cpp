// Mapping safety with real processes and real faults: a region file truncated under a busy
// publisher and subscriber (three ways), the SIGBUS guard passing foreign faults on, and
// space reserved up front on a small tmpfs.
#include <gtest/gtest.h>

#include <csetjmp>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shmbus/shmbus.hpp"

namespace shmbus {
namespace {

namespace fs = std::filesystem;

fs::path fresh_dir(const std::string& tag) {
  fs::path dir = fs::path("/dev/shm") / ("shmbus-test-" + tag + "-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

TopicConfig file_topic(const std::string& name) {
  TopicConfig c;
  c.name = name;
  c.size_classes = {{4096, 64}};
  c.queue_depth = 16;
  return c;
}

RegionOptions in_dir(const fs::path& dir) {
  RegionOptions o;
  o.backing = RegionOptions::Backing::file;
  o.directory = dir;
  return o;
}

// Exit codes of the children below.
enum : int { kSawRegionLost = 10, kNeverSawLoss = 11, kOtherTopicBroken = 12, kSetupFailed = 13 };

// Uses the file-backed topic until an API call reports region_lost, then checks that an
// unrelated anonymous topic in the same process still works.
[[noreturn]] void run_client(const fs::path& file, bool publisher, int ready_fd) {
  try {
    Topic topic = Topic::open_file(file);
    Topic other = Topic::create(file_topic("other-" + std::to_string(getpid())));
    RawPublisher other_pub(other);
    RawSubscriber other_sub(other);
    std::optional<RawPublisher> pub;
    std::optional<RawSubscriber> sub;
    if (publisher) pub.emplace(topic);
    else sub.emplace(topic);
    char one = 1;
    if (write(ready_fd, &one, 1) != 1) _exit(kSetupFailed);
    bool lost = false;
    for (long i = 0; i < 200'000'000 && !lost; ++i) {
      if (publisher) {
        Result<RawLoan> loan = pub->loan(4000);
        if (!loan) { lost = loan.code() == Errc::region_lost; continue; }
        std::memset(loan->data().data(), static_cast<int>(i), 4000);  // touch every page
        Status st = pub->publish(std::move(loan.value()));
        lost = st.code() == Errc::region_lost;
      } else {
        Result<RawSample> s = sub->take();
        if (s) {
          volatile std::byte sink{};
          for (std::byte b : s->data()) sink = b;  // read every byte in place
          (void)sink;
        }
        lost = !s && s.code() == Errc::region_lost;
      }
    }
    if (!lost) _exit(kNeverSawLoss);
    // Every later call on the lost topic keeps failing cleanly.
    if (publisher && pub->loan(10).code() != Errc::region_lost) _exit(kNeverSawLoss);
    if (!publisher && sub->take().code() != Errc::region_lost) _exit(kNeverSawLoss);
    // The other topic is untouched.
    std::byte payload[8]{};
    if (!other_pub.publish_copy(payload).ok() || !other_sub.take()) _exit(kOtherTopicBroken);
    _exit(kSawRegionLost);
  } catch (...) {
    _exit(kSetupFailed);
  }
}

enum class Truncation { by_path, by_open_rdonly_trunc, by_ftruncate };

void truncate_region(const fs::path& file, Truncation how) {
  switch (how) {
    case Truncation::by_path:
      ASSERT_EQ(truncate(file.c_str(), 4096), 0);
      break;
    case Truncation::by_open_rdonly_trunc: {  // breaks no read lease (docs/linux-facts.md §1)
      int fd = open(file.c_str(), O_RDONLY | O_TRUNC);
      ASSERT_GE(fd, 0);
      close(fd);
      break;
    }
    case Truncation::by_ftruncate: {
      int fd = open(file.c_str(), O_RDWR);
      ASSERT_GE(fd, 0);
      ASSERT_EQ(ftruncate(fd, 8192), 0);
      close(fd);
      break;
    }
  }
}

pid_t spawn_client(const fs::path& file, bool publisher) {
  int p[2];
  EXPECT_EQ(pipe(p), 0);
  pid_t pid = fork();
  if (pid == 0) {
    close(p[0]);
    run_client(file, publisher, p[1]);
  }
  close(p[1]);
  char c;
  EXPECT_EQ(read(p[0], &c, 1), 1) << "client did not start";
  close(p[0]);
  return pid;
}

class TruncationTest : public ::testing::TestWithParam<Truncation> {};

TEST_P(TruncationTest, PublisherAndSubscriberSurviveAndReportRegionLost) {
#ifdef SHMBUS_TEST_SCALE_DOWN
  const int rounds = 3;
#else
  const int rounds = 10;
#endif
  fs::path dir = fresh_dir("trunc");
  for (int round = 0; round < rounds; ++round) {
    std::string name = "victim" + std::to_string(round);
    fs::path file;
    {
      Topic topic = Topic::create(file_topic(name), in_dir(dir));
      file = topic.path();
    }
    pid_t pub = spawn_client(file, true);
    pid_t sub = spawn_client(file, false);
    usleep(static_cast<useconds_t>(2000 + round * 1000));  // let them run hot first
    truncate_region(file, GetParam());
    for (pid_t pid : {pub, sub}) {
      int status = 0;
      ASSERT_EQ(waitpid(pid, &status, 0), pid);
      ASSERT_TRUE(WIFEXITED(status)) << "client killed by signal " << WTERMSIG(status) << " in round " << round;
      EXPECT_EQ(WEXITSTATUS(status), kSawRegionLost) << (pid == pub ? "publisher" : "subscriber") << " round " << round;
    }
    fs::remove(file);
  }
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(ThreeWays, TruncationTest,
                         ::testing::Values(Truncation::by_path, Truncation::by_open_rdonly_trunc,
                                           Truncation::by_ftruncate));

// A mapping of our own, outside shmbus, whose file we truncate: touching it raises SIGBUS.
volatile char* own_truncated_mapping() {
  char path[] = "/dev/shm/shmbus-own-XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0 || ftruncate(fd, 4 * 4096) != 0) _exit(kSetupFailed);
  void* p = mmap(nullptr, 4 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED || ftruncate(fd, 0) != 0) _exit(kSetupFailed);
  unlink(path);
  return static_cast<volatile char*>(p);
}

sigjmp_buf g_app_jump;
volatile sig_atomic_t g_app_handler_ran = 0;
void app_sigbus_handler(int) {
  g_app_handler_ran = 1;
  siglongjmp(g_app_jump, 1);
}

TEST(SigbusGuard, ForeignFaultReachesTheApplicationsHandler) {
  pid_t pid = fork();
  if (pid == 0) {
    signal(SIGBUS, app_sigbus_handler);                         // the application's handler first,
    Topic topic = Topic::create(file_topic("guard-chain"));     // then the guard chains it
    volatile char* mine = own_truncated_mapping();
    if (sigsetjmp(g_app_jump, 1) == 0) {
      mine[2 * 4096] = 1;
      _exit(kNeverSawLoss);
    }
    // The topic still works after the application handled its own fault.
    RawPublisher pub(topic);
    RawSubscriber sub(topic, {.with_history = false});
    std::byte b[4]{};
    bool ok = pub.publish_copy(b).ok() && sub.take();
    _exit(g_app_handler_ran && ok ? 0 : kOtherTopicBroken);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(SigbusGuard, ForeignFaultStillKillsAProcessWithoutHandler) {
  pid_t pid = fork();
  if (pid == 0) {
    Topic topic = Topic::create(file_topic("guard-default"));
    volatile char* mine = own_truncated_mapping();
    mine[2 * 4096] = 1;
    _exit(kNeverSawLoss);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status)) << "exited with " << WEXITSTATUS(status);
  EXPECT_EQ(WTERMSIG(status), SIGBUS);
}

TEST(SpaceReservation, SmallTmpfsFailsAtCreationAndNeverSigbusesLater) {
  if (geteuid() != 0) GTEST_SKIP() << "mounting a small tmpfs needs root";
  fs::path dir = fs::path("/tmp") / ("shmbus-small-tmpfs-" + std::to_string(getpid()));
  fs::create_directories(dir);
  if (mount("tmpfs", dir.c_str(), "tmpfs", 0, "size=1m") != 0) {
    fs::remove_all(dir);
    GTEST_SKIP() << "cannot mount tmpfs here: " << std::strerror(errno);
  }
  // Payload in the region file, so that the file is what must hold it (publishers' own pools
  // are memfds, reserved in memory, not on this filesystem).
  RegionOptions in_file = in_dir(dir);
  in_file.payload_in_region = true;
  TopicConfig big = file_topic("too-big");
  big.size_classes = {{64 * 1024, 64}};  // 4 MiB of payload
  try {
    Topic::create(big, in_file);
    ADD_FAILURE() << "a 4 MiB topic was created on a 1 MiB tmpfs";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::no_space);
    EXPECT_NE(std::string(e.what()).find(dir.string()), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir / "too-big.shmbus")) << "a half-reserved file was left behind";
  {
    TopicConfig fits = file_topic("fits");
    fits.size_classes = {{4096, 128}};  // ~0.6 MiB in all
    Topic topic = Topic::create(fits, in_file);
    RawPublisher pub(topic);
    RawSubscriber sub(topic);
    for (int i = 0; i < 1000; ++i) {  // every chunk written many times: no SIGBUS
      Result<RawLoan> loan = pub.loan(4096);
      ASSERT_TRUE(loan) << loan.name();
      std::memset(loan->data().data(), i, 4096);
      ASSERT_TRUE(pub.publish(std::move(loan.value())).ok());
      ASSERT_TRUE(sub.take());
    }
  }
  umount(dir.c_str());
  fs::remove_all(dir);
}

}  // namespace
}  // namespace shmbus
