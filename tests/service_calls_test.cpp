// Request/response services, one server in a forked process and the client here: several
// calls in flight matched to their responses by the library, streams ended by the server,
// timeouts, cancellation by dropping the call, malformed requests, and the errors of sending.
#include <gtest/gtest.h>

#include <algorithm>
#include <thread>
#include <vector>

#include "service_test_support.hpp"
#include "shmbus/shmbus.hpp"
#include "test_support.hpp"

namespace shmbus {
namespace {

using namespace shmbus::testing;
using namespace std::chrono_literals;

struct ServerProcess {
  Pipe ready;
  Pipe cancelled;
  Child child;
  std::uint32_t id = 0;
  explicit ServerProcess(const Service& svc)
      : child(Child::spawn([&] { return serve(svc, &ready, &cancelled); })) {
    id = ready.receive<std::uint32_t>(10s).value_or(~0u);
  }
  // Asks the server to return, and checks it ended well.
  void stop(ServiceClient& client) {
    Result<PendingCall> c = call(client, Op::stop, 0);
    ASSERT_TRUE(c.ok()) << c.name();
    EXPECT_TRUE(c->receive_wait(5s).ok());
    EXPECT_EQ(child.wait(10s), 0) << describe_exit(child.wait(0ms));
  }
};

TEST(ServiceCalls, SeveralCallsInFlightEachGetTheirOwnResponse) {
  Service svc = Service::create(small_service("svc-inflight"));
  ServerProcess server(svc);
  ASSERT_NE(server.id, ~0u);
  ServiceClient client(svc);
  std::vector<PendingCall> calls;
  for (std::uint64_t v = 0; v < 16; ++v) {
    Result<PendingCall> c = call(client, Op::twice, 1000 + v);
    ASSERT_TRUE(c.ok()) << c.name();
    calls.push_back(std::move(*c));
  }
  EXPECT_EQ(client.calls_in_flight(), 16u);
  // Received in the reverse order of sending: each call still gets the response to its request.
  for (std::size_t i = calls.size(); i-- > 0;) {
    Result<ServiceResponse> r = calls[i].receive_wait(5s);
    ASSERT_TRUE(r.ok()) << "call " << i << ": " << r.name();
    TestResponse t = read_as<TestResponse>(r->data());
    EXPECT_EQ(t.value, 2 * (1000 + i));
    EXPECT_EQ(t.pid, server.child.pid());
    EXPECT_TRUE(r->last());
    EXPECT_TRUE(calls[i].done());
    EXPECT_EQ(calls[i].receive().code(), Errc::no_data) << "one response per call";
  }
  calls.clear();
  EXPECT_EQ(client.calls_in_flight(), 0u);
  server.stop(client);
}

TEST(ServiceCalls, AStreamOfResponsesArrivesInOrderAndIsEndedByTheServer) {
  Service svc = Service::create(small_service("svc-stream"));
  ServerProcess server(svc);
  ServiceClient client(svc);
  Result<PendingCall> a = call(client, Op::stream, 50, 7);
  Result<PendingCall> b = call(client, Op::stream, 900, 3);
  ASSERT_TRUE(a.ok() && b.ok());
  for (auto [pc, first, count] : {std::tuple{&*a, 50u, 7u}, std::tuple{&*b, 900u, 3u}}) {
    for (std::uint32_t i = 0; i < count; ++i) {
      Result<ServiceResponse> r = pc->receive_wait(5s);
      ASSERT_TRUE(r.ok()) << r.name();
      EXPECT_FALSE(r->last());
      TestResponse t = read_as<TestResponse>(r->data());
      EXPECT_EQ(t.value, first + i);
      EXPECT_EQ(t.index, i);
    }
    Result<ServiceResponse> end = pc->receive_wait(5s);
    ASSERT_TRUE(end.ok()) << end.name();
    EXPECT_TRUE(end->last());
    EXPECT_EQ(end->data().size(), 0u);
    EXPECT_TRUE(pc->done());
    EXPECT_EQ(pc->receive_wait(50ms).code(), Errc::no_data) << "nothing after the end of the stream";
  }
  server.stop(client);
}

TEST(ServiceCalls, ACallWithoutAnswerTimesOutWhileItsServerLives) {
  Service svc = Service::create(small_service("svc-timeout"));
  ServerProcess server(svc);
  ServiceClient client(svc);
  Result<PendingCall> c = call(client, Op::silent, 1);
  ASSERT_TRUE(c.ok());
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(c->receive_wait(60ms).code(), Errc::timeout);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 60ms);
  EXPECT_EQ(c->server(), server.id) << "claimed by the server, which is alive";
  EXPECT_FALSE(c->done());
  server.stop(client);
}

TEST(ServiceCalls, DroppingAPendingCallCancelsItAtTheServer) {
  Service svc = Service::create(small_service("svc-cancel"));
  ServerProcess server(svc);
  ServiceClient client(svc);
  {
    Result<PendingCall> c = call(client, Op::until_cancelled, 10);
    ASSERT_TRUE(c.ok());
    for (int i = 0; i < 3; ++i) {
      Result<ServiceResponse> r = c->receive_wait(5s);
      ASSERT_TRUE(r.ok()) << r.name();
      EXPECT_EQ(read_as<TestResponse>(r->data()).value, 10u + i);
    }
  }  // dropped here: the server's next respond() says call_cancelled
  std::optional<std::uint32_t> sent = server.cancelled.receive<std::uint32_t>(5s);
  ASSERT_TRUE(sent.has_value()) << "the server never saw the cancellation";
  EXPECT_GE(*sent, 3u);
  // The call index is reused; the cancelled call's late responses never reach the new call.
  Result<PendingCall> next = call(client, Op::twice, 21);
  ASSERT_TRUE(next.ok());
  Result<ServiceResponse> r = next->receive_wait(5s);
  ASSERT_TRUE(r.ok()) << r.name();
  EXPECT_EQ(read_as<TestResponse>(r->data()).value, 42u);
  server.stop(client);
}

TEST(ServiceCalls, AMalformedRequestIsAnErrorForTheServerAndTheNextCallIsServed) {
  Service svc = Service::create(small_service("svc-malformed"));
  ServiceServer server(svc);
  ServiceClient client(svc);
  RawPublisher forger(svc.requests());
  const std::byte junk[8] = {};
  ASSERT_TRUE(forger.publish_copy(junk).ok());
  std::byte bad_header[48] = {};
  std::memset(bad_header, 0x5A, sizeof bad_header);  // wrong magic, rows out of range
  ASSERT_TRUE(forger.publish_copy(bad_header).ok());
  EXPECT_EQ(server.take().code(), Errc::malformed_message);
  EXPECT_EQ(server.take().code(), Errc::malformed_message);
  EXPECT_EQ(server.take().code(), Errc::no_data);
  Result<PendingCall> c = call(client, Op::twice, 4);
  ASSERT_TRUE(c.ok());
  Result<ServiceRequest> req = server.take();
  ASSERT_TRUE(req.ok()) << req.name();
  EXPECT_EQ(read_as<TestRequest>(req->data()).value, 4u);
  EXPECT_EQ(req->client(), client.id());
  ASSERT_TRUE(respond_value(server, *req, 8, 0, true).ok());
  Result<ServiceResponse> r = c->receive();
  ASSERT_TRUE(r.ok()) << r.name();
  EXPECT_EQ(read_as<TestResponse>(r->data()).value, 8u);
  // Answering a finished call again is pointless: the client ended it.
  EXPECT_EQ(respond_value(server, *req, 8, 0, true).code(), Errc::call_cancelled);
}

TEST(ServiceCalls, SendingWithoutAServerOrBeyondTheCallLimitFailsAtOnce) {
  ServiceConfig cfg = small_service("svc-limits");
  cfg.max_calls_per_client = 2;
  Service svc = Service::create(cfg);
  ServiceClient client(svc);
  EXPECT_EQ(call(client, Op::twice, 1).code(), Errc::server_gone) << "no server registered";
  ServiceServer server(svc);
  EXPECT_EQ(call(client, Op::twice, 1, 0, server.id() + 1).code(), Errc::server_gone) << "addressed server absent";
  Result<PendingCall> a = call(client, Op::twice, 1);
  Result<PendingCall> b = call(client, Op::twice, 2);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(call(client, Op::twice, 3).code(), Errc::too_many_calls);
  a = PendingCall();  // gives its index back
  EXPECT_TRUE(call(client, Op::twice, 3).ok());
}

TEST(ServiceCalls, AFileBackedServiceIsOpenedByNameInAnotherProcess) {
  TempDir dir("svc-files");
  ServiceConfig cfg = small_service("svc-files");
  Service svc = Service::create(cfg, dir.region_options());
  EXPECT_TRUE(std::filesystem::exists(Service::region_file(dir.path(), cfg.name)));
  Pipe ready;
  Child child = Child::spawn([&] {
    Service mine = Service::open_files(dir.path(), cfg.name);
    ServiceServer server(mine);
    if (!ready.notify()) return int{kChildPipeFailed};
    Result<ServiceRequest> req = server.take_wait(10s);
    if (!req) return int{kChildTimedOut};
    if (!respond_value(server, *req, read_as<TestRequest>(req->data()).value + 1, 0, true).ok()) return int{kChildBadData};
    std::this_thread::sleep_for(200ms);  // the client maps our pool before we go (docs/services.md)
    return int{kChildOk};
  });
  ASSERT_TRUE(ready.await(10s));
  ServiceClient client(svc);
  Result<PendingCall> c = call(client, Op::twice, 41);
  ASSERT_TRUE(c.ok()) << c.name();
  Result<ServiceResponse> r = c->receive_wait(5s);
  ASSERT_TRUE(r.ok()) << r.name();
  EXPECT_EQ(read_as<TestResponse>(r->data()).value, 42u);
  EXPECT_EQ(child.wait(10s), 0);
  EXPECT_THROW(Service::open_files(dir.path(), "no-such-service"), Error);
}

}  // namespace
}  // namespace shmbus
