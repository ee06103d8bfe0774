// A zombie (a process that exited or was killed and is not yet reaped) still has its
// /proc/PID/stat with its start time; it counts as dead all the same (bus/process_identity.cpp):
// for topic slots, for service rows, under a real shmbusd. A process whose main thread alone
// exited also reads as state Z, and must not count as dead while its other threads run.
#include <poll.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <thread>

#include "daemon_harness.hpp"
#include "shmbus/client.hpp"
#include "shmbus/service.hpp"
#include "shmbus/shmbus.hpp"

namespace shmbusd::test {
namespace {

using namespace std::chrono_literals;

// Field 3 of /proc/PID/stat ('?' when there is none).
char proc_state(pid_t pid) {
  char path[64], buf[1024];
  std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE* f = std::fopen(path, "re");
  if (f == nullptr) return '?';
  std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = 0;
  const char* p = std::strrchr(buf, ')');
  return p != nullptr && p[1] == ' ' ? p[2] : '?';
}

bool wait_state(pid_t pid, char state) {
  for (auto until = std::chrono::steady_clock::now() + 5s; proc_state(pid) != state;) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

shmbus::TopicConfig topic_config(const char* tag) {
  shmbus::TopicConfig c;
  c.name = std::string("zombie-") + tag + "-" + std::to_string(getpid());
  c.size_classes = {{256, 16}};
  c.queue_depth = 8;
  return c;
}

TEST(ZombieOwner, AZombiePublishersSlotIsReclaimedWhileALeaderExitedProcessesIsNot) {
  shmbus::Topic topic = shmbus::Topic::create(topic_config("slot"));
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t child = fork();
  if (child == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    static std::optional<shmbus::RawPublisher> pub;  // outlives main()'s thread
    pub.emplace(topic);
    static std::optional<shmbus::RawLoan> loan;
    loan.emplace(std::move(pub->loan(64).value()));
    pthread_t worker;
    pthread_create(&worker, nullptr, [](void*) -> void* {
      for (;;) pause();
    }, nullptr);
    (void)!write(ready[1], "r", 1);
    // The main thread alone ends (SYS_exit, not exit_group; pthread_exit would unwind
    // through the test framework): the process lives on in `worker`.
    syscall(SYS_exit, 0);
  }
  close(ready[1]);
  char c;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  close(ready[0]);
  ASSERT_TRUE(wait_state(child, 'Z')) << "the leader of a process whose main thread exited reads as Z";
  EXPECT_EQ(topic.reclaim_dead_owners(), 0u) << "its other thread still runs: alive";

  ::kill(child, SIGKILL);  // now a real zombie once its last thread is gone; not reaped before the reclaim
  std::size_t reclaimed = 0;
  for (auto until = std::chrono::steady_clock::now() + 2s; reclaimed == 0 && std::chrono::steady_clock::now() < until;) {
    reclaimed = topic.reclaim_dead_owners();
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_EQ(reclaimed, 1u) << "a zombie is dead";
  EXPECT_EQ(proc_state(child), 'Z') << "still unreaped";
  EXPECT_EQ(topic.stats().classes.at(0).loaned, 0u);
  EXPECT_EQ(wait_exit(child), 128 + SIGKILL);
}

TEST(ZombieOwner, AZombieServerGivesItsClientServerGoneWithin50msAndTheDaemonFreesItsRow) {
  auto dir = make_temp_dir("svc-zombie");
  DaemonProcess d(dir / "run");
  d.start();
  shmbus::ServiceConfig config;
  config.name = "zombie/server";
  config.request_classes = config.response_classes = {{256, 16}};
  config.request_queue_depth = config.response_queue_depth = 8;
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t server = fork();
  if (server == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    try {
      shmbus::Client client(client_at(d));
      shmbus::Service svc = client.open_service(config, shmbus::ServiceRole::serve);
      shmbus::ServiceServer s(svc);
      (void)!write(ready[1], "r", 1);
      std::vector<shmbus::ServiceRequest> held;  // claims, never answers
      for (;;) {
        if (auto req = s.take_wait(1s)) held.push_back(std::move(*req));
      }
    } catch (const std::exception& e) {
      std::fprintf(stderr, "server child: %s\n", e.what());
    }
    _exit(2);
  }
  close(ready[1]);
  char c;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  close(ready[0]);
  shmbus::Client client(client_at(d));
  shmbus::Service svc = client.open_existing_service(config.name, shmbus::ServiceRole::call);
  shmbus::ServiceClient caller(svc);
  auto loan = caller.loan(1);
  ASSERT_TRUE(loan.ok());
  auto call = caller.send(std::move(*loan));
  ASSERT_TRUE(call.ok()) << call.name();
  for (auto until = std::chrono::steady_clock::now() + 5s; !call->server();) {
    ASSERT_LT(std::chrono::steady_clock::now(), until) << "the server did not claim the call";
    std::this_thread::sleep_for(1ms);
  }
  const auto killed = std::chrono::steady_clock::now();
  ::kill(server, SIGKILL);  // and not reaped until the end: a zombie
  auto r = call->receive_wait(5s);
  const auto took = std::chrono::steady_clock::now() - killed;
  EXPECT_EQ(r.code(), shmbus::Errc::server_gone) << r.name();
  EXPECT_LT(took, 50ms) << std::chrono::duration_cast<std::chrono::microseconds>(took).count() << " us";
  EXPECT_EQ(proc_state(server), 'Z') << "still unreaped";
  bool freed = false;
  for (auto until = std::chrono::steady_clock::now() + 3s; !freed && std::chrono::steady_clock::now() < until;) {
    freed = client.list_services().at(0).servers.empty();
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_TRUE(freed) << "the daemon left the zombie's row";
  EXPECT_EQ(wait_exit(server), 128 + SIGKILL);
  d.kill_now(SIGTERM);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace shmbusd::test
