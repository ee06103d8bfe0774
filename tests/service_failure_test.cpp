// Request/response services with several server processes and real SIGKILLs: each request is
// served by exactly one server, a client may address one, a killed server's clients get
// server_gone within 50 ms, and a killed client's loans and samples are reclaimed.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <map>
#include <thread>
#include <vector>

#include "service_test_support.hpp"
#include "shmbus/shmbus.hpp"
#include "test_support.hpp"

namespace shmbus {
namespace {

using namespace shmbus::testing;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct Servers {
  std::vector<std::unique_ptr<Pipe>> ready;
  std::vector<Child> children;
  std::vector<std::uint32_t> ids;
  Servers(const Service& svc, int n) {
    for (int i = 0; i < n; ++i) {
      ready.push_back(std::make_unique<Pipe>());
      Pipe* p = ready.back().get();
      children.push_back(Child::spawn([&svc, p] { return serve(svc, p); }));
      ids.push_back(p->receive<std::uint32_t>(10s).value_or(~0u));
    }
  }
  void stop(ServiceClient& client) {
    for (std::size_t i = 0; i < children.size(); ++i) {
      Result<PendingCall> c = call(client, Op::stop, 0, 0, ids[i]);
      ASSERT_TRUE(c.ok()) << c.name();
      EXPECT_TRUE(c->receive_wait(5s).ok());
    }
    for (Child& c : children) EXPECT_EQ(c.wait(10s), 0);
  }
};

void expect_no_loans_or_holds(const Topic& topic) {
  for (const SizeClassUsage& u : topic.stats().classes) {
    EXPECT_EQ(u.loaned, 0u) << topic.name() << "\n" << topic.describe_pool();
    EXPECT_EQ(u.held, 0u) << topic.name() << "\n" << topic.describe_pool();
    EXPECT_EQ(u.free + u.in_ring, u.total) << topic.name() << "\n" << topic.describe_pool();
  }
}

TEST(ServiceFailure, SeveralServersShareTheCallsAndEachCallIsServedExactlyOnce) {
  ServiceConfig cfg = small_service("svc-share");
  cfg.response_queue_depth = 64;
  cfg.response_classes = {{64, 96}};
  Service svc = Service::create(cfg);
  Servers servers(svc, 3);
  ServiceClient client(svc);
  const int total = static_cast<int>(scaled(240));
  std::map<std::int32_t, int> served_by;  // server pid -> calls
  int answered = 0;
  for (int sent = 0; sent < total;) {
    std::vector<std::pair<PendingCall, std::uint64_t>> batch;
    for (int i = 0; i < 12 && sent < total; ++i, ++sent) {
      Result<PendingCall> c = call(client, Op::slow_twice, static_cast<std::uint64_t>(sent));
      ASSERT_TRUE(c.ok()) << c.name();
      batch.emplace_back(std::move(*c), sent);
    }
    for (auto& [pc, value] : batch) {
      Result<ServiceResponse> r = pc.receive_wait(5s);
      ASSERT_TRUE(r.ok()) << "call " << value << ": " << r.name();
      TestResponse t = read_as<TestResponse>(r->data());
      EXPECT_EQ(t.value, 2 * value);
      ++served_by[t.pid];
      ++answered;
    }
    // A second server serving the same call would show as a further response.
    for (auto& [pc, value] : batch) EXPECT_EQ(pc.receive_wait(1ms).code(), Errc::no_data) << "call " << value;
  }
  EXPECT_EQ(answered, total);
  std::uint64_t claimed = 0;
  for (const Service::ServerInfo& s : svc.servers()) claimed += s.claimed;
  EXPECT_EQ(claimed, static_cast<std::uint64_t>(total)) << "claims across servers";
  EXPECT_GE(served_by.size(), 2u) << "busy servers leave calls to the others";
  servers.stop(client);
}

TEST(ServiceFailure, AClientMayAddressOneServer) {
  Service svc = Service::create(small_service("svc-address"));
  Servers servers(svc, 2);
  ServiceClient client(svc);
  for (int i = 0; i < 20; ++i) {
    Result<PendingCall> c = call(client, Op::twice, i, 0, servers.ids[1]);
    ASSERT_TRUE(c.ok()) << c.name();
    Result<ServiceResponse> r = c->receive_wait(5s);
    ASSERT_TRUE(r.ok()) << r.name();
    EXPECT_EQ(r->server(), servers.ids[1]);
    EXPECT_EQ(read_as<TestResponse>(r->data()).pid, servers.children[1].pid());
  }
  servers.stop(client);
}

TEST(ServiceFailure, KilledServerWithCallsPendingGivesItsClientsServerGoneWithin50ms) {
  Service svc = Service::create(small_service("svc-killsrv"));
  Servers servers(svc, 1);
  ServiceClient client(svc);
  std::vector<PendingCall> calls;
  for (int i = 0; i < 3; ++i) {
    Result<PendingCall> c = call(client, Op::silent, i);
    ASSERT_TRUE(c.ok());
    calls.push_back(std::move(*c));
  }
  for (PendingCall& c : calls) {  // wait until the server claimed them all
    auto until = Clock::now() + 5s;
    while (!c.server() && Clock::now() < until) std::this_thread::sleep_for(1ms);
    ASSERT_EQ(c.server(), servers.ids[0]);
  }
  std::atomic<Clock::rep> killed_at{0};
  std::thread killer([&] {
    std::this_thread::sleep_for(30ms);
    killed_at = Clock::now().time_since_epoch().count();
    servers.children[0].kill_and_reap();
  });
  Result<ServiceResponse> first = calls[0].receive_wait(5s);
  const auto returned = Clock::now();
  killer.join();
  ASSERT_EQ(first.code(), Errc::server_gone);
  const auto latency = returned - Clock::time_point(Clock::duration(killed_at.load()));
  EXPECT_LT(latency, 50ms) << std::chrono::duration_cast<std::chrono::microseconds>(latency).count() << " us";
  for (std::size_t i = 1; i < calls.size(); ++i) EXPECT_EQ(calls[i].receive_wait(1s).code(), Errc::server_gone);
  // send() reads only the rows (no system call): the dead server's row still stands, so the
  // call goes out, and the wait says no server can take it.
  Result<PendingCall> late = call(client, Op::twice, 1);
  ASSERT_TRUE(late.ok()) << late.name();
  EXPECT_EQ(late->receive_wait(1s).code(), Errc::server_gone) << "no server left to take a new call";
  late = PendingCall();
  EXPECT_EQ(svc.servers().size(), 1u) << "its row stays until someone reclaims it";
  EXPECT_GE(svc.reclaim_dead_owners(), 1u);
  EXPECT_TRUE(svc.servers().empty());
}

TEST(ServiceFailure, KilledClientsLoansAndResponsesAreReclaimedAndItsCallsCancelled) {
  Service svc = Service::create(small_service("svc-killcli"));
  ServiceServer server(svc);
  Pipe sent, holding;
  Child client = Child::spawn([&] {
    Service mine = reopen(svc);
    ServiceClient c(mine);
    std::vector<PendingCall> calls;
    for (int i = 0; i < 4; ++i) {
      Result<PendingCall> pc = call(c, Op::stream, i, 2);
      if (!pc) return int{kChildBadData};
      calls.push_back(std::move(*pc));
    }
    std::vector<RequestLoan> loans;
    for (int i = 0; i < 2; ++i) loans.push_back(c.loan(16).value());
    if (!sent.notify()) return int{kChildPipeFailed};
    std::vector<ServiceResponse> kept;
    for (PendingCall& pc : calls) {
      Result<ServiceResponse> r = pc.receive_wait(10s);
      if (!r) return int{kChildTimedOut};
      kept.push_back(std::move(*r));
    }
    if (!holding.notify()) return int{kChildPipeFailed};
    std::this_thread::sleep_for(60s);
    return int{kChildOk};
  });
  ASSERT_TRUE(sent.await(10s));
  std::vector<ServiceRequest> requests;
  while (requests.size() < 4) {
    Result<ServiceRequest> r = server.take_wait(10s);
    ASSERT_TRUE(r.ok()) << r.name();
    ASSERT_TRUE(respond_value(server, *r, 1, 0, false).ok());
    requests.push_back(std::move(*r));
  }
  ASSERT_TRUE(holding.await(10s));
  EXPECT_GT(svc.responses().stats().classes[0].held, 0u) << "the client holds responses";
  EXPECT_GT(svc.requests().stats().classes[0].loaned, 0u) << "the client holds request loans";
  client.kill_and_reap();
  EXPECT_GE(svc.reclaim_dead_owners(), 3u) << "its row, its publisher and its subscriber";
  EXPECT_TRUE(svc.clients().empty());
  for (const ServiceRequest& r : requests) {
    EXPECT_TRUE(server.cancelled(r));
    EXPECT_EQ(respond_value(server, r, 2, 1, true).code(), Errc::call_cancelled);
  }
  requests.clear();
  expect_no_loans_or_holds(svc.requests());
  expect_no_loans_or_holds(svc.responses());
}

}  // namespace
}  // namespace shmbus
