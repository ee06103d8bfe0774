// The two ways a call goes (bus/service/service_layout.hpp rule 2): addressed to the only
// server, or to a server the client named, nobody writes the call word unless the client
// drops the call, so that no cache line crosses cores for it; with several servers active,
// the servers race for the call word and exactly one claims it. And a server serves an
// addressed request only when it names this very server and a live client.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <optional>
#include <vector>

#include "service/service_region.hpp"
#include "service_test_support.hpp"
#include "shmbus/shmbus.hpp"
#include "test_support.hpp"

namespace shmbus {
namespace {

using namespace shmbus::testing;
using namespace std::chrono_literals;

std::vector<std::uint64_t> call_words(const detail::ServiceRegion& region, std::uint32_t client) {
  std::vector<std::uint64_t> out;
  for (std::uint32_t c = 0; c < region.calls_per_client(); ++c) {
    out.push_back(region.call(client, c).load(std::memory_order_relaxed));
  }
  return out;
}

SubscriberOptions no_history() {
  SubscriberOptions o;
  o.with_history = false;
  return o;
}

TEST(ServicePaths, ACallToTheOnlyServerIsAddressedToItAndWritesNoCallWord) {
  Service svc = Service::create(small_service("svc-addressed"));
  auto region = detail::ServiceRegion::open_fd(svc.fd());
  ServiceServer server(svc, no_history());
  ServiceClient client(svc);
  const std::vector<std::uint64_t> before = call_words(*region, client.id());
  for (int i = 0; i < 3; ++i) {  // one call and then two more reusing its index
    Result<PendingCall> c = call(client, Op::twice, 20 + i);
    ASSERT_TRUE(c.ok()) << c.name();
    EXPECT_EQ(c->server(), server.id()) << "addressed at send, before any server took it";
    Result<ServiceRequest> req = server.take();
    ASSERT_TRUE(req.ok()) << req.name();
    EXPECT_FALSE(server.cancelled(*req));
    ASSERT_TRUE(respond_value(server, *req, 2 * (20 + i), 0, true).ok());
    Result<ServiceResponse> r = c->receive();
    ASSERT_TRUE(r.ok()) << r.name();
    EXPECT_TRUE(r->last());
    EXPECT_EQ(read_as<TestResponse>(r->data()).value, 2u * (20 + i));
  }
  EXPECT_EQ(call_words(*region, client.id()), before) << "a whole addressed call wrote no call word";
  EXPECT_EQ(svc.servers().at(0).claimed, 3u) << "the served count is kept all the same";

  // Dropping an addressed call is the one write: its server then sees it cancelled.
  Result<PendingCall> dropped = call(client, Op::stream, 1, 5);
  ASSERT_TRUE(dropped.ok());
  Result<ServiceRequest> req = server.take();
  ASSERT_TRUE(req.ok()) << req.name();
  ASSERT_TRUE(respond_value(server, *req, 1, 0, false).ok());
  dropped = PendingCall();
  EXPECT_NE(call_words(*region, client.id()), before);
  EXPECT_TRUE(server.cancelled(*req));
  EXPECT_EQ(respond_value(server, *req, 2, 1, false).code(), Errc::call_cancelled);
  // Its index serves the next calls, answered or dropped: the old call stays cancelled.
  Result<PendingCall> next = call(client, Op::twice, 1);
  ASSERT_TRUE(next.ok());
  Result<ServiceRequest> next_req = server.take();
  ASSERT_TRUE(next_req.ok()) << next_req.name();
  EXPECT_TRUE(server.cancelled(*req));
  EXPECT_FALSE(server.cancelled(*next_req));
  next = PendingCall();
  EXPECT_TRUE(server.cancelled(*next_req));
  EXPECT_TRUE(server.cancelled(*req));
  // A last response ends the call for its server, whatever the client does next.
  Result<PendingCall> answered = call(client, Op::twice, 3);
  ASSERT_TRUE(answered.ok());
  Result<ServiceRequest> answered_req = server.take();
  ASSERT_TRUE(answered_req.ok()) << answered_req.name();
  ASSERT_TRUE(respond_value(server, *answered_req, 6, 0, true).ok());
  EXPECT_TRUE(server.cancelled(*answered_req));
  EXPECT_EQ(respond_value(server, *answered_req, 6, 0, true).code(), Errc::call_cancelled);
}

TEST(ServicePaths, WithSeveralServersExactlyOneClaimsTheCallWordAndTheClientEndsIt) {
  Service svc = Service::create(small_service("svc-shared"));
  auto region = detail::ServiceRegion::open_fd(svc.fd());
  ServiceServer first(svc, no_history()), second(svc, no_history());
  ServiceClient client(svc);
  Result<PendingCall> c = call(client, Op::twice, 5);
  ASSERT_TRUE(c.ok()) << c.name();
  EXPECT_FALSE(c->server().has_value()) << "a shared call has no server until one claims it";
  Result<ServiceRequest> won = second.take();
  ASSERT_TRUE(won.ok()) << won.name();
  EXPECT_EQ(second.take().code(), Errc::no_data);
  EXPECT_EQ(first.take().code(), Errc::no_data) << "the other server skips a call already claimed";
  EXPECT_EQ(c->server(), second.id());
  const std::vector<std::uint64_t> claimed = call_words(*region, client.id());
  ASSERT_TRUE(respond_value(second, *won, 10, 0, true).ok());
  Result<ServiceResponse> r = c->receive();
  ASSERT_TRUE(r.ok()) << r.name();
  EXPECT_EQ(read_as<TestResponse>(r->data()).server, second.id());
  EXPECT_NE(call_words(*region, client.id()), claimed) << "the client ended the call in its word";
  EXPECT_TRUE(second.cancelled(*won)) << "an ended call takes no more responses";
}

// A request published by hand: the header the client would write, with `edit` applied.
template <typename Edit>
void publish_request(const Service& svc, Edit edit) {
  RawPublisher pub(svc.requests());
  Result<RawLoan> l = pub.loan(sizeof(detail::RequestHeader) + sizeof(TestRequest));
  ASSERT_TRUE(l.ok()) << l.name();
  detail::RequestHeader h{};
  h.magic = detail::kRequestMagic;
  h.generation = 7;
  edit(h);
  TestRequest t{Op::twice, 0, 4};
  std::memcpy(l->data().data(), &h, sizeof h);
  std::memcpy(l->data().data() + sizeof h, &t, sizeof t);
  ASSERT_TRUE(pub.publish(std::move(*l)).ok());
}

TEST(ServicePaths, AnAddressedRequestIsServedOnlyForThisServersOwnerAndALiveClient) {
  Service svc = Service::create(small_service("svc-forged"));
  auto region = detail::ServiceRegion::open_fd(svc.fd());
  ServiceServer server(svc, no_history());
  ServiceClient client(svc);
  const std::uint32_t generation16 = region->server(server.id()).generation.load() & 0xFFFF;
  const std::uint32_t client_generation = region->client(client.id()).generation.load();
  auto valid = [&](detail::RequestHeader& h) {
    h.client = client.id();
    h.call = 3;
    h.target = server.id() + 1;
    h.target_generation = generation16;
    h.client_generation = client_generation;
  };
  publish_request(svc, [&](detail::RequestHeader& h) {  // for an earlier owner of our row
    valid(h);
    h.target_generation = (generation16 + 0xFFFF) & 0xFFFF;
  });
  publish_request(svc, [&](detail::RequestHeader& h) {  // for another server row
    valid(h);
    h.target = server.id() + 2;
  });
  publish_request(svc, [&](detail::RequestHeader& h) {  // from an earlier owner of the client row
    valid(h);
    h.client_generation = client_generation + 1;
  });
  publish_request(svc, [&](detail::RequestHeader& h) {  // from a client row nobody holds
    valid(h);
    h.client = client.id() + 1;
  });
  EXPECT_EQ(server.take().code(), Errc::no_data) << "none of them is this server's to serve";
  EXPECT_EQ(svc.servers().at(0).claimed, 0u);
  publish_request(svc, valid);
  Result<ServiceRequest> req = server.take();
  ASSERT_TRUE(req.ok()) << req.name();
  EXPECT_EQ(req->client(), client.id());
  EXPECT_EQ(read_as<TestRequest>(req->data()).value, 4u);
}

// A send reads the rows again only after the header says a server row changed (rule 4):
// each change, in this process or another, must reach the next send. Asserted through
// PendingCall::server(), which names the server of an addressed call before anyone took it
// and nobody for a shared call still pending.
TEST(ServicePaths, EachSendFollowsServersComingAndGoingInThisProcessAndAnother) {
  Service svc = Service::create(small_service("svc-rows-changed"));
  ServiceClient client(svc);
  EXPECT_EQ(call(client, Op::twice, 1).code(), Errc::server_gone) << "no server yet";

  std::optional<ServiceServer> first(std::in_place, svc, no_history());
  Result<PendingCall> c = call(client, Op::twice, 2);
  ASSERT_TRUE(c.ok()) << c.name() << ": a server joined since the last send";
  EXPECT_EQ(c->server(), first->id()) << "the only server: addressed";
  c = Errc::no_data;  // dropped

  Pipe ready;
  Child other = Child::spawn([&] {
    Service mine = reopen(svc);
    ServiceServer second(mine);
    if (!ready.send(second.id())) return kChildPipeFailed;
    pause();  // until SIGKILLed
    return kChildOk;
  });
  ASSERT_TRUE(ready.receive<std::uint32_t>().has_value());
  c = call(client, Op::twice, 3);
  ASSERT_TRUE(c.ok()) << c.name();
  EXPECT_EQ(c->server(), std::nullopt) << "two servers: shared, pending until one claims it";
  c = Errc::no_data;

  first.reset();
  c = call(client, Op::twice, 4);
  ASSERT_TRUE(c.ok()) << c.name();
  EXPECT_NE(c->server(), std::nullopt) << "the other process's server is the only one left: addressed";
  c = Errc::no_data;

  other.kill_and_reap();
  EXPECT_GE(svc.reclaim_dead_owners(), 1u);
  EXPECT_EQ(call(client, Op::twice, 5).code(), Errc::server_gone) << "its row was reclaimed: no server left";
}

}  // namespace
}  // namespace shmbus
