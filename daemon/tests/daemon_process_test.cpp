// shmbusd with real processes: start-up, readiness, pub/sub through the daemon, clean-up after
// a SIGKILLed client, and a SIGKILLed daemon restarted under running traffic.
#include <fcntl.h>
#include <poll.h>

#include <atomic>
#include <cstring>

#include "daemon_harness.hpp"
#include "shmbus/client.hpp"
#include "shmbus/shmbus.hpp"

namespace shmbusd::test {
namespace {

using namespace std::chrono_literals;

shmbus::TopicConfig topic_config(const std::string& name, shmbus::SlowSubscriberPolicy policy) {
  shmbus::TopicConfig c;
  c.name = name;
  c.size_classes = {{256, 128}};
  c.queue_depth = 32;
  c.policy = policy;
  c.block_timeout = 200ms;
  return c;
}

std::uint32_t free_chunks(const shmbus::Topic& t) {
  std::uint32_t n = 0;
  for (const auto& c : t.stats().classes) n += c.free;
  return n;
}

TEST(Daemon, SecondInstanceRefusesAndSaysWhy) {
  DaemonProcess first(make_temp_dir("second"));
  first.start();
  int err[2];
  ASSERT_EQ(pipe(err), 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(err[1], 2);
    execl(SHMBUSD_BINARY, SHMBUSD_BINARY, "--runtime-dir", first.dir().c_str(), nullptr);
    _exit(127);
  }
  close(err[1]);
  EXPECT_EQ(wait_exit(pid), 1);
  char buf[1024] = {};
  ssize_t n = read(err[0], buf, sizeof(buf) - 1);
  close(err[0]);
  ASSERT_GT(n, 0);
  EXPECT_NE(std::string(buf).find("already served by shmbusd pid " + std::to_string(first.pid())), std::string::npos)
      << buf;
  EXPECT_TRUE(can_connect(first.socket())) << "the first daemon must keep serving";
}

TEST(Daemon, ReadyIsSentOnlyOnceTheSocketAccepts) {
  auto dir = make_temp_dir("ready");
  std::string notify_path = (dir / "notify.sock").string();
  int ns = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, notify_path.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(bind(ns, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  DaemonProcess d(dir, {}, {"NOTIFY_SOCKET=" + notify_path});
  d.start(/*wait=*/false);
  std::string got;
  bool accepted_at_ready = false;
  auto end = std::chrono::steady_clock::now() + 10s;
  while (got.find("READY=1") == std::string::npos && std::chrono::steady_clock::now() < end) {
    pollfd p{ns, POLLIN, 0};
    if (poll(&p, 1, 100) == 1) {
      char buf[512] = {};
      ssize_t n = recv(ns, buf, sizeof(buf) - 1, 0);
      if (n > 0) got += std::string(buf, static_cast<std::size_t>(n)) + "\n";
      // Checked the moment READY arrives: connecting must already work.
      if (got.find("READY=1") != std::string::npos) accepted_at_ready = can_connect(d.socket());
    }
  }
  EXPECT_NE(got.find("READY=1"), std::string::npos) << got;
  EXPECT_TRUE(accepted_at_ready);
  EXPECT_EQ(d.kill_now(SIGTERM), 0) << "SIGTERM must stop shmbusd cleanly";
  char buf[512] = {};
  ssize_t n = recv(ns, buf, sizeof(buf) - 1, MSG_DONTWAIT);
  EXPECT_GT(n, 0);
  EXPECT_NE(std::string(buf).find("STOPPING=1"), std::string::npos) << buf;
  close(ns);
}

// A publisher process and this process's subscriber exchange messages through a topic the
// daemon created.
TEST(Daemon, ClientsExchangeMessagesThroughDaemonTopic) {
  DaemonProcess d(make_temp_dir("pubsub"));
  d.start();
  int go[2];
  ASSERT_EQ(pipe(go), 0);
  pid_t pub_pid = fork();
  if (pub_pid == 0) {
    char c;
    if (read(go[0], &c, 1) != 1) _exit(3);
    try {
      shmbus::Client client(client_at(d));
      shmbus::Topic t = client.open_topic(topic_config("pubsub", shmbus::SlowSubscriberPolicy::block), shmbus::Role::publisher);
      shmbus::RawPublisher pub = client.publisher(t);
      for (int i = 0; i < 200; ++i) {
        std::string s = "msg " + std::to_string(i);
        while (!pub.publish_copy(std::as_bytes(std::span<const char>(s.data(), s.size()))).ok()) {
        }
      }
    } catch (const std::exception& e) {
      fprintf(stderr, "publisher: %s\n", e.what());
      _exit(2);
    }
    _exit(0);
  }
  shmbus::Client client(client_at(d));
  shmbus::Topic t = client.open_topic(topic_config("pubsub", shmbus::SlowSubscriberPolicy::block), shmbus::Role::subscriber);
  shmbus::RawSubscriber sub = client.subscriber(t);
  ASSERT_EQ(write(go[1], "g", 1), 1);
  for (int i = 0; i < 200; ++i) {
    auto s = sub.take_wait(5s);
    ASSERT_TRUE(s) << s.name();
    std::string text(reinterpret_cast<const char*>(s->data().data()), s->data().size());
    ASSERT_EQ(text, "msg " + std::to_string(i));
  }
  EXPECT_EQ(wait_exit(pub_pid), 0);
  EXPECT_EQ(client.status().topics, 1u);
}

// A client SIGKILLed while it holds loans (and is mid-stream) and while it holds samples: the
// daemon gives every chunk back, and this process's own publisher/subscriber go on.
TEST(Daemon, SigkilledClientsChunksReturnToThePool) {
  DaemonProcess d(make_temp_dir("reclaim"));
  d.start();
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  auto cfg = topic_config("reclaim", shmbus::SlowSubscriberPolicy::drop_oldest);
  pid_t victim = fork();
  if (victim == 0) {
    try {
      shmbus::Client client(client_at(d));
      shmbus::Topic t = client.open_topic(cfg, shmbus::Role::publisher);
      client.open_topic(cfg, shmbus::Role::subscriber);
      shmbus::RawSubscriber sub = client.subscriber(t);
      shmbus::RawPublisher pub = client.publisher(t);
      for (int i = 0; i < 8; ++i) (void)pub.publish_copy(std::as_bytes(std::span<const char>("abc", 3)));
      std::vector<shmbus::RawSample> held;
      for (int i = 0; i < 5; ++i) held.push_back(std::move(sub.take().value()));
      std::vector<shmbus::RawLoan> loans;
      for (int i = 0; i < 6; ++i) loans.push_back(std::move(pub.loan(100).value()));
      if (write(ready[1], "r", 1) != 1) _exit(3);
      pause();
    } catch (const std::exception& e) {
      fprintf(stderr, "victim: %s\n", e.what());
      _exit(2);
    }
    _exit(0);
  }
  char c;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  shmbus::Client client(client_at(d));
  shmbus::Topic t = client.open_topic(cfg, shmbus::Role::subscriber);
  client.open_topic(cfg, shmbus::Role::publisher);
  shmbus::RawSubscriber my_sub = client.subscriber(t);
  shmbus::RawPublisher my_pub = client.publisher(t);
  std::uint32_t total = 2 * 128;  // each of the two publishers has a pool of its own
  std::uint32_t before = free_chunks(t);
  EXPECT_EQ(before, total - 8 - 6) << t.describe_pool();  // 8 in the ring (5 of them held), 6 loaned
  auto killed = std::chrono::steady_clock::now();
  ::kill(victim, SIGKILL);
  // The ring still references its 8 messages; everything else must come back.
  while (free_chunks(t) != total - 8 && std::chrono::steady_clock::now() - killed < 2s) {
    std::this_thread::sleep_for(100us);
  }
  auto took = std::chrono::steady_clock::now() - killed;
  EXPECT_EQ(free_chunks(t), total - 8) << t.describe_pool();
  // 10 ms is the promise; allow for a loaded CI machine but report the real figure.
  EXPECT_LT(took, 200ms);
  std::printf("reclaimed %u chunks %.2f ms after SIGKILL\n", total - 8 - before,
              std::chrono::duration<double, std::milli>(took).count());
  EXPECT_EQ(wait_exit(victim), 128 + SIGKILL);
  for (const auto& ci : t.stats().clients) EXPECT_EQ(ci.pid, getpid()) << "a dead client's slot is still active";
  ASSERT_TRUE(my_pub.publish_copy(std::as_bytes(std::span<const char>("after", 5))).ok());
  auto s = my_sub.take_wait(1s);
  ASSERT_TRUE(s) << s.name();
}

// shmbusd SIGKILLed and restarted under a publisher and a subscriber in block mode: not one
// message lost or corrupted, both reconnect on their own, and a new subscriber joins after.
void restart_under_traffic(const std::string& backing) {
  DaemonProcess d(make_temp_dir("restart"), {"--default-backing", backing});
  d.start();
  const int count = 20000;
  auto cfg = topic_config("restart", shmbus::SlowSubscriberPolicy::block);
  cfg.queue_depth = 64;
  int sub_ready[2];
  ASSERT_EQ(pipe(sub_ready), 0);
  pid_t sub_pid = fork();
  if (sub_pid == 0) {
    try {
      shmbus::Client client(client_at(d));
      shmbus::Topic t = client.open_topic(cfg, shmbus::Role::subscriber);
      shmbus::RawSubscriber sub = client.subscriber(t);
      if (write(sub_ready[1], "r", 1) != 1) _exit(3);
      for (int i = 0; i < count; ++i) {
        auto s = sub.take_wait(10s);
        if (!s) _exit(10);
        if (s->lost_before() != 0) _exit(11);
        std::string text(reinterpret_cast<const char*>(s->data().data()), s->data().size());
        if (text != std::to_string(i)) _exit(12);
      }
      // Stay until the daemon has seen us again (reconnected), so the test can check it.
      for (int i = 0; i < 500 && client.connection_count() < 2; ++i) std::this_thread::sleep_for(10ms);
      _exit(client.connection_count() >= 2 ? 0 : 13);
    } catch (const std::exception& e) {
      fprintf(stderr, "subscriber: %s\n", e.what());
      _exit(2);
    }
  }
  char c;
  ASSERT_EQ(read(sub_ready[0], &c, 1), 1);
  int pub_ready[2];
  ASSERT_EQ(pipe(pub_ready), 0);
  pid_t pub_pid = fork();
  if (pub_pid == 0) {
    try {
      shmbus::Client client(client_at(d));
      shmbus::Topic t = client.open_topic(cfg, shmbus::Role::publisher);
      shmbus::RawPublisher pub = client.publisher(t);
      if (write(pub_ready[1], "r", 1) != 1) _exit(3);
      for (int i = 0; i < count; ++i) {
        std::string s = std::to_string(i);
        while (!pub.publish_copy(std::as_bytes(std::span<const char>(s.data(), s.size()))).ok()) {
        }
        if (i % 64 == 0) std::this_thread::sleep_for(200us);  // spread the run over the restart
      }
      for (int i = 0; i < 500 && client.connection_count() < 2; ++i) std::this_thread::sleep_for(10ms);
      _exit(client.connection_count() >= 2 ? 0 : 13);
    } catch (const std::exception& e) {
      fprintf(stderr, "publisher: %s\n", e.what());
      _exit(2);
    }
  }
  // Both clients are set up (set-up calls need the daemon; the data plane does not).
  ASSERT_EQ(read(pub_ready[0], &c, 1), 1);
  std::this_thread::sleep_for(30ms);
  EXPECT_EQ(d.kill_now(SIGKILL), 128 + SIGKILL);
  std::this_thread::sleep_for(50ms);  // traffic goes on with no daemon at all
  d.start();
  // A new subscriber joins the existing topic through the new daemon (file regions are
  // re-adopted at start; anonymous ones once a client has handed them back).
  shmbus::Client client(client_at(d));
  std::optional<shmbus::Topic> t;
  for (int i = 0; i < 300 && !t; ++i) {
    if (client.status().topics == 0) {
      std::this_thread::sleep_for(10ms);
      continue;
    }
    t = client.open_topic("restart", shmbus::Role::subscriber);
  }
  ASSERT_TRUE(t) << "the restarted daemon never learned the topic";
  if (backing == "file") {
    // The killed daemon's lease stays on the file description its clients share; the new one
    // takes it over when they hand that description back, not lease-break-time (45 s) later.
    bool leased = false;
    for (int i = 0; i < 150 && !leased; ++i) {
      for (const shmbus::TopicListing& l : client.list_topics()) leased |= l.config.name == "restart" && l.leased;
      if (!leased) std::this_thread::sleep_for(20ms);
    }
    EXPECT_TRUE(leased) << "the restarted daemon holds no lease on the file region within 3 s";
  }
  {
    // Joins, then leaves at once: a block-policy subscriber that never takes would stall the
    // publisher (by design).
    shmbus::RawSubscriber late = client.subscriber(*t, {.with_history = false});
  }
  EXPECT_EQ(wait_exit(pub_pid, 60s), 0) << "publisher";
  EXPECT_EQ(wait_exit(sub_pid, 60s), 0) << "subscriber: 10 timeout, 11 lost, 12 corrupted, 13 no reconnect";
}

TEST(Daemon, RestartUnderTrafficLosesNothingFileRegions) { restart_under_traffic("file"); }
TEST(Daemon, RestartUnderTrafficLosesNothingAnonymousRegionsHandedBack) { restart_under_traffic("anonymous"); }

}  // namespace
}  // namespace shmbusd::test
