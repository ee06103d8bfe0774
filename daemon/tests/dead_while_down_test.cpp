// A client that dies while no daemon runs leaves slots nobody's connection will ever close.
// The next daemon finds them from /proc (owner start time and pid namespace) and reclaims them.
#include <chrono>
#include <thread>

#include "daemon_harness.hpp"
#include "shmbus/client.hpp"
#include "shmbus/shmbus.hpp"

namespace shmbusd::test {
namespace {

using namespace std::chrono_literals;

std::uint32_t free_chunks(const shmbus::Topic& t) {
  std::uint32_t n = 0;
  for (const auto& c : t.stats().classes) n += c.free;
  return n;
}

TEST(Daemon, SlotsOfAClientThatDiedWhileTheDaemonWasDownAreReclaimed) {
  DaemonProcess d(make_temp_dir("downdeath"), {"--default-backing", "file"});
  d.start();
  shmbus::TopicConfig cfg;
  cfg.name = "orphans";
  cfg.size_classes = {{256, 32}};
  cfg.queue_depth = 8;
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t victim = fork();
  if (victim == 0) {
    shmbus::ClientOptions o;
    o.socket = d.socket();
    o.reconnect = false;
    shmbus::Client client(o);
    shmbus::Topic t = client.open_topic(cfg, shmbus::Role::publisher);
    shmbus::RawPublisher pub = client.publisher(t);
    std::vector<shmbus::RawLoan> loans;
    for (int i = 0; i < 5; ++i) loans.push_back(std::move(pub.loan(100).value()));
    (void)!write(ready[1], "r", 1);
    pause();
    _exit(0);
  }
  char c;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  std::filesystem::path file = d.dir() / "default.regions" / "orphans.shmbus";
  // Read-only: opening the file for writing while the daemon serves it would (rightly) make
  // the daemon revoke the region (lease_watch.hpp).
  shmbus::Topic t = shmbus::Topic::inspect_file(file);
  ASSERT_EQ(free_chunks(t), 32u - 5u);
  EXPECT_EQ(d.kill_now(SIGKILL), 128 + SIGKILL);
  ::kill(victim, SIGKILL);
  EXPECT_EQ(wait_exit(victim), 128 + SIGKILL);
  ASSERT_EQ(free_chunks(t), 32u - 5u) << "nobody has reclaimed anything yet";
  d.start();  // re-adopts the region file and sweeps it
  auto start = std::chrono::steady_clock::now();
  while (free_chunks(t) != 32u && std::chrono::steady_clock::now() - start < 5s) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(free_chunks(t), 32u) << t.describe_pool();
  EXPECT_TRUE(t.stats().clients.empty());
  std::filesystem::remove_all(d.dir());
}

}  // namespace
}  // namespace shmbusd::test
