// Request/response services through a real shmbusd (docs/services.md, "Through the daemon"):
// the daemon creates or hands out a service's region and topics by the access rules, and
// frees the rows of dead servers and clients. Servers and clients are forked processes with
// connections of their own; kills are real SIGKILLs.
#include <sys/prctl.h>

#include <cstring>
#include <thread>

#include "daemon_harness.hpp"
#include "other_uid.hpp"
#include "service_child.hpp"
#include "shmbus/client.hpp"
#include "shmbus/service.hpp"

namespace shmbusd::test {
namespace {

using namespace std::chrono_literals;

constexpr char kName[] = "math/double";

shmbus::ServiceConfig small_config() { return small_service_config(kName); }

// A forked server connected through the daemon. It answers each request with every byte
// doubled, or, as a `hanging` server, claims requests and never answers.
void start_server(ServiceChild& s, const DaemonProcess& d, bool hanging) {
  std::vector<shmbus::ServiceRequest> held;  // a hanging server keeps what it claimed
  ASSERT_TRUE(s.serve(d, small_config(), [&](shmbus::ServiceServer& server, shmbus::Result<shmbus::ServiceRequest>& req) {
    if (!req) return;
    if (hanging) {
      held.push_back(std::move(*req));
      return;
    }
    auto out = server.loan(req->data().size());
    if (!out) _exit(3);
    for (std::size_t i = 0; i < req->data().size(); ++i) {
      out->data()[i] = std::byte(std::to_integer<unsigned>(req->data()[i]) * 2);
    }
    if (!server.respond(*req, std::move(*out)).ok()) _exit(4);
  })) << "the server child failed to come up";
}

class ServiceDaemon : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = make_temp_dir("svc-daemon");
    daemon_ = std::make_unique<DaemonProcess>(dir_ / "run");
    daemon_->start();
  }
  void TearDown() override {
    daemon_->kill_now(SIGTERM);
    std::filesystem::remove_all(dir_);
  }
  std::filesystem::path dir_;
  std::unique_ptr<DaemonProcess> daemon_;
};

TEST_F(ServiceDaemon, AServerProcessAndAClientProcessCallThroughTheDaemonWithNoDirectory) {
  ServiceChild server;
  start_server(server, *daemon_, false);
  shmbus::Client client(client_at(*daemon_));
  // Only the name: the service exists, with the configuration its creator (the server) gave.
  shmbus::Service svc = client.open_existing_service(kName, shmbus::ServiceRole::call);
  EXPECT_EQ(svc.config().request_queue_depth, 8u);
  EXPECT_EQ(svc.config().request_classes[0].chunk_size, 256u);
  shmbus::ServiceClient caller(svc);
  std::vector<shmbus::PendingCall> calls;
  for (unsigned i = 1; i <= 3; ++i) {  // several in flight
    auto loan = caller.loan(2);
    ASSERT_TRUE(loan.ok()) << loan.name();
    loan->data()[0] = std::byte(i);
    loan->data()[1] = std::byte(10 * i);
    auto call = caller.send(std::move(*loan));
    ASSERT_TRUE(call.ok()) << call.name();
    calls.push_back(std::move(*call));
  }
  for (unsigned i = 1; i <= 3; ++i) {
    auto r = calls[i - 1].receive_wait(5s);
    ASSERT_TRUE(r.ok()) << r.name();
    ASSERT_EQ(r->data().size(), 2u);
    EXPECT_EQ(std::to_integer<unsigned>(r->data()[0]), 2 * i);
    EXPECT_EQ(std::to_integer<unsigned>(r->data()[1]), 20 * i);
  }
  // The daemon lists it with the server's row (its pid, judged alive) and ours.
  std::vector<shmbus::ServiceListing> listed = client.list_services();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].config.name, kName);
  ASSERT_EQ(listed[0].servers.size(), 1u);
  EXPECT_EQ(listed[0].servers[0].pid, server.pid);
  EXPECT_TRUE(listed[0].servers[0].alive);
  EXPECT_EQ(listed[0].servers[0].served, 3u);
  ASSERT_EQ(listed[0].clients.size(), 1u);
  EXPECT_EQ(listed[0].clients[0].pid, getpid());
  EXPECT_EQ(listed[0].requests_published, 3u);
  // Its topics are ordinary topics of the bus.
  bool requests_listed = false;
  for (const auto& t : client.list_topics()) requests_listed |= t.config.name == shmbus::Service::request_topic_name(kName);
  EXPECT_TRUE(requests_listed);
}

TEST_F(ServiceDaemon, OpeningAServiceTheBusDoesNotHaveWithoutCreatingItSaysNoSuchService) {
  shmbus::Client client(client_at(*daemon_));
  try {
    client.open_existing_service("nosuch", shmbus::ServiceRole::call);
    FAIL() << "opened a service nobody created";
  } catch (const shmbus::Error& e) {
    EXPECT_EQ(e.code(), shmbus::Errc::no_such_topic) << e.what();
    EXPECT_NE(std::string(e.what()).find("no service 'nosuch'"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(client.list_services().empty());
}

TEST_F(ServiceDaemon, AServiceWithOtherTypeIdsIsRefusedAndTheFirstConfigurationStays) {
  shmbus::Client client(client_at(*daemon_));
  shmbus::ServiceConfig c = small_config();
  c.request_type_id = 0x1111;
  c.response_type_id = 0x2222;
  client.open_service(c, shmbus::ServiceRole::serve);
  c.request_type_id = 0x3333;
  try {
    client.open_service(c, shmbus::ServiceRole::call);
    FAIL() << "opened a service with other type ids";
  } catch (const shmbus::Error& e) {
    EXPECT_EQ(e.code(), shmbus::Errc::type_mismatch) << e.what();
  }
  shmbus::Service again = client.open_existing_service(kName, shmbus::ServiceRole::call);
  EXPECT_EQ(again.request_type_id(), 0x1111u);
  EXPECT_EQ(again.response_type_id(), 0x2222u);
}


// ---- the daemon reclaims dead servers and clients ----

// Waits up to `timeout` for `done()`; returns its last value.
template <typename F>
bool eventually(F done, std::chrono::milliseconds timeout = 3000ms) {
  for (auto until = std::chrono::steady_clock::now() + timeout; !done();) {
    if (std::chrono::steady_clock::now() > until) return done();
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

// Sends one call of one byte and waits until a server claimed it.
shmbus::PendingCall claimed_call(shmbus::ServiceClient& caller) {
  auto loan = caller.loan(1);
  EXPECT_TRUE(loan.ok()) << loan.name();
  auto call = caller.send(std::move(*loan));
  EXPECT_TRUE(call.ok()) << call.name();
  EXPECT_TRUE(eventually([&] { return call->server().has_value(); })) << "no server claimed the call";
  return std::move(*call);
}

TEST_F(ServiceDaemon, AKilledServerWithACallPendingGivesItsClientServerGoneWithin50msAndTheDaemonFreesItsRow) {
  ServiceChild server;
  start_server(server, *daemon_, true);  // claims, never answers
  shmbus::Client client(client_at(*daemon_));
  shmbus::Service svc = client.open_existing_service(kName, shmbus::ServiceRole::call);
  shmbus::ServiceClient caller(svc);
  shmbus::PendingCall call = claimed_call(caller);
  // Reaped as soon as it dies, as its parent would (an unreaped one is the zombie test's).
  std::thread reaper([pid = server.pid] { ::waitpid(pid, nullptr, 0); });
  const auto killed = std::chrono::steady_clock::now();
  ::kill(server.pid, SIGKILL);
  auto r = call.receive_wait(5s);
  const auto took = std::chrono::steady_clock::now() - killed;
  reaper.join();
  server.pid = -1;
  EXPECT_EQ(r.code(), shmbus::Errc::server_gone) << r.name();
  EXPECT_LT(took, 50ms) << std::chrono::duration_cast<std::chrono::microseconds>(took).count() << " us";
  // The daemon freed the dead server's row: the service lists no server, and a new call is
  // refused at once (send reads only the rows; a row left standing would let it go out).
  EXPECT_TRUE(eventually([&] { return client.list_services().at(0).servers.empty(); }));
  auto loan = caller.loan(1);
  ASSERT_TRUE(loan.ok());
  EXPECT_EQ(caller.send(std::move(*loan)).code(), shmbus::Errc::server_gone);
}

TEST_F(ServiceDaemon, AKilledClientsRowCallsAndChunksAreReclaimedByTheDaemon) {
  // The child is forked before this process starts a Client (and its thread), and waits for `go`.
  int ready[2], go[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(go), 0);
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    char g;
    if (read(go[0], &g, 1) != 1) _exit(6);
    try {
      shmbus::Client c(client_at(*daemon_));
      shmbus::Service mine = c.open_existing_service(kName, shmbus::ServiceRole::call);
      shmbus::ServiceClient caller(mine);
      auto held = caller.loan(8);  // a request loan it never sends
      auto loan = caller.loan(1);
      if (!held || !loan) _exit(3);
      auto call = caller.send(std::move(*loan));
      if (!call) _exit(4);
      (void)!write(ready[1], "r", 1);
      pause();
    } catch (const std::exception& e) {
      fprintf(stderr, "client child: %s\n", e.what());
    }
    _exit(2);
  }
  close(ready[1]);
  close(go[0]);
  ServiceChild reap_on_failure(pid);  // SIGKILLs and reaps it if an assertion ends the test early
  shmbus::Client client(client_at(*daemon_));
  shmbus::Service svc = client.open_service(small_config(), shmbus::ServiceRole::serve);
  shmbus::ServiceServer server(svc);
  ASSERT_EQ(write(go[1], "g", 1), 1);
  close(go[1]);
  char c;
  ASSERT_EQ(read(ready[0], &c, 1), 1) << "the client child failed to come up";
  close(ready[0]);
  auto req = server.take_wait(5s);
  ASSERT_TRUE(req.ok()) << req.name();
  EXPECT_FALSE(server.cancelled(*req));
  auto loaned = [&] {  // chunks loaned on the request topic, by anyone
    std::uint32_t n = 0;
    for (const auto& t : client.list_topics()) {
      if (t.config.name != shmbus::Service::request_topic_name(kName)) continue;
      for (const auto& k : t.classes) n += k.loaned;
    }
    return n;
  };
  ASSERT_EQ(loaned(), 1u) << "the client's unsent request loan";
  ASSERT_EQ(client.list_services().at(0).clients.size(), 1u);

  ::kill(pid, SIGKILL);
  EXPECT_EQ(wait_exit(pid), 128 + SIGKILL);
  reap_on_failure.pid = -1;
  EXPECT_TRUE(eventually([&] { return client.list_services().at(0).clients.empty(); })) << "the client row stays";
  EXPECT_TRUE(eventually([&] { return loaned() == 0; })) << "the dead client's loan stays";
  EXPECT_TRUE(server.cancelled(*req)) << "its call was not ended";
  auto out = server.loan(1);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(server.respond(*req, std::move(*out)).code(), shmbus::Errc::call_cancelled);
}

TEST(ServiceDaemonAccess, ServeAndCallAreCheckedByTheirRulesAndARefusalNamesTheRuleAndTheList) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to switch the client to uid 65534";
  auto dir = make_temp_dir("svc-daemon-access");
  chmod(dir.c_str(), 0755);
  std::string config = (dir / "shmbusd.toml").string();
  // uid 65534 may call math/double, not serve it; nobody but root may touch other services.
  std::ofstream(config) << "socket_dir_mode = 0o755\n"
                           "[[access]]\ntopic = \"service/math/double\"\ncall = [\"uid:65534\"]\nserve = [\"uid:0\"]\n"
                           "[[access]]\ntopic = \"service/*\"\ncall = [\"uid:0\"]\nserve = [\"uid:0\"]\n";
  DaemonProcess d(dir / "run", {"--config", config});
  d.start();
  {  // created by root; the daemon keeps them. Closed before forking: no client thread then.
    shmbus::Client root(client_at(d));
    root.open_service(small_config(), shmbus::ServiceRole::serve);
    shmbus::ServiceConfig hidden = small_config();
    hidden.name = "hidden";
    root.open_service(hidden, shmbus::ServiceRole::serve);
  }

  std::string why = as_nobody([&] {
    shmbus::Client c(client_at(d));
    c.open_existing_service(kName, shmbus::ServiceRole::serve);
  });
  EXPECT_NE(why.find("may not serve service 'math/double'"), std::string::npos) << why;
  EXPECT_NE(why.find("rule #1"), std::string::npos) << why;
  EXPECT_NE(why.find("'serve' list"), std::string::npos) << why;

  why = as_nobody([&] {
    shmbus::Client c(client_at(d));
    shmbus::ServiceConfig other = small_config();
    other.name = "secret";
    c.open_service(other, shmbus::ServiceRole::call);
  });
  EXPECT_NE(why.find("may not call service 'secret'"), std::string::npos) << why;
  EXPECT_NE(why.find("rule #2"), std::string::npos) << why;

  // The right to call is enough to call, and to see the service listed; other services stay hidden.
  why = as_nobody([&] {
    shmbus::Client c(client_at(d));
    shmbus::Service svc = c.open_existing_service(kName, shmbus::ServiceRole::call);
    if (svc.name() != kName) throw std::runtime_error("opened '" + svc.name() + "'");
    auto listed = c.list_services();
    if (listed.size() != 1 || listed[0].config.name != kName) throw std::runtime_error("listing shows other services");
  });
  EXPECT_EQ(why, "");
  d.kill_now(SIGTERM);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace shmbusd::test
