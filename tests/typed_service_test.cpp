// Typed services (shmbus/typed_service.hpp) with the server in a forked process: requests and
// responses built and read in place in the loaned chunks, streams, malformed requests counted
// and answered, the bytes on the wire those of capnp::messageToFlatArray (what `shmbus call`
// writes and reads), and type mismatches refused.
#include <capnp/any.h>
#include <capnp/serialize.h>
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "service_test_support.hpp"
#include "shmbus/shmbus.hpp"
#include "shmbus/typed_service.hpp"
#include "test_messages.capnp.h"
#include "test_support.hpp"

namespace shmbus {
namespace {

using namespace shmbus::testing;
using namespace std::chrono_literals;
using test::MultiplyRequest;
using test::MultiplyResponse;
using Server = TypedServiceServer<MultiplyRequest, MultiplyResponse>;
using Client = TypedServiceClient<MultiplyRequest, MultiplyResponse>;

bool inside(const void* p, std::span<const std::byte> bytes) {
  auto b = static_cast<const std::byte*>(p);
  return b >= bytes.data() && b < bytes.data() + bytes.size();
}

ServiceConfig typed_config(const std::string& tag) {
  ServiceConfig c = typed_service<MultiplyRequest, MultiplyResponse>(unique_name(tag));
  ServiceConfig small = small_service(tag);
  c.request_classes = {{128, 32}};
  c.response_classes = {{256, 64}};
  c.max_servers = small.max_servers;
  c.max_clients = small.max_clients;
  c.max_calls_per_client = small.max_calls_per_client;
  c.request_queue_depth = small.request_queue_depth;
  c.response_queue_depth = small.response_queue_depth;
  return c;
}

// The server child: a > 0 answers product a*b with a note; a < 0 streams -a responses
// (product 1..-a) and ends the stream with end_stream(); a == 0 answers and returns. Every
// request must be read in place (its data section inside the taken chunk). Malformed
// requests are reported through `malformed`.
int serve_typed(const Service& shared, Pipe* ready, Pipe* malformed) {
  Service svc = reopen(shared);
  Server server(svc);
  if (!ready->send(server.id())) return kChildPipeFailed;
  for (;;) {
    Result<TypedRequest<MultiplyRequest>> req = server.take_wait(20s);
    if (req.code() == Errc::malformed_message) {
      if (!malformed->send(1)) return kChildPipeFailed;
      continue;
    }
    if (!req) return req.code() == Errc::timeout ? kChildTimedOut : kChildFirstFree + static_cast<int>(req.code());
    MultiplyRequest::Reader in = req->root();
    if (!inside(capnp::AnyStruct::Reader(in).getDataSection().begin(), req->raw().data())) return kChildBadData;
    const std::int64_t a = in.getA(), b = in.getB();
    const std::int64_t responses = a < 0 ? -a : 1;
    for (std::int64_t i = 1; i <= responses; ++i) {
      ResponseMessage<MultiplyResponse> out = server.loan();
      if (!out) return kChildFirstFree + static_cast<int>(out.status().code());
      MultiplyResponse::Builder r = out.init();
      r.setProduct(a < 0 ? i : a * b);
      r.setNote("from " + std::to_string(getpid()));
      if (!server.respond(*req, out, /*last=*/a >= 0).ok()) return kChildBadData;
    }
    if (a < 0 && !server.end_stream(*req).ok()) return kChildBadData;
    if (a == 0) {
      std::this_thread::sleep_for(200ms);  // no daemon: let the client map our pool first
      return kChildOk;
    }
  }
}

struct TypedServerProcess {
  Pipe ready, malformed;
  Child child;
  std::uint32_t id = 0;
  explicit TypedServerProcess(const Service& svc)
      : child(Child::spawn([&] { return serve_typed(svc, &ready, &malformed); })) {
    id = ready.receive<std::uint32_t>(10s).value_or(~0u);
  }
};

Result<TypedCall<MultiplyResponse>> call(Client& client, std::int64_t a, std::int64_t b) {
  RequestMessage<MultiplyRequest> loan = client.loan();
  if (!loan) return loan.status().code();
  MultiplyRequest::Builder req = loan.init();
  req.setA(a);
  req.setB(b);
  return client.send(loan);
}

void stop(Client& client, TypedServerProcess& server) {
  Result<TypedCall<MultiplyResponse>> c = call(client, 0, 0);
  ASSERT_TRUE(c.ok()) << c.name();
  EXPECT_TRUE(c->receive_wait(5s).ok());
  EXPECT_EQ(server.child.wait(10s), 0) << describe_exit(server.child.wait(0ms));
}

TEST(TypedService, RequestsAndResponsesAreBuiltAndReadInPlaceAcrossProcesses) {
  Service svc = Service::create(typed_config("typed-inplace"));
  TypedServerProcess server(svc);
  ASSERT_NE(server.id, ~0u);
  Client client(svc);
  {  // the request is built in the loaned chunk itself
    RequestMessage<MultiplyRequest> loan = client.loan();
    ASSERT_TRUE(loan.ok()) << loan.status().name();
    capnp::AnyStruct::Builder any(loan.init());
    EXPECT_TRUE(inside(any.getDataSection().begin(), loan.data())) << "built in the loaned chunk";
  }
  std::vector<TypedCall<MultiplyResponse>> calls;
  for (std::int64_t v = 1; v <= 8; ++v) {
    Result<TypedCall<MultiplyResponse>> c = call(client, v, 1000 + v);
    ASSERT_TRUE(c.ok()) << c.name();
    calls.push_back(std::move(*c));
  }
  const std::string note = "from " + std::to_string(server.child.pid());
  for (std::size_t i = calls.size(); i-- > 0;) {
    Result<TypedResponse<MultiplyResponse>> r = calls[i].receive_wait(5s);
    ASSERT_TRUE(r.ok()) << "call " << i << ": " << r.name();
    const std::int64_t v = static_cast<std::int64_t>(i) + 1;
    EXPECT_EQ(r->root().getProduct(), v * (1000 + v));
    EXPECT_EQ(std::string(r->root().getNote().cStr()), note);
    // Read in place: the text lies in the response's chunk, not in a copy.
    EXPECT_TRUE(inside(r->root().getNote().begin(), r->raw().data()));
    EXPECT_TRUE(r->last());
    EXPECT_TRUE(calls[i].done());
    EXPECT_EQ(r->segment_count(), 1u);
  }
  calls.clear();
  stop(client, server);
}

TEST(TypedService, AStreamOfTypedResponsesEndsWithTheServersEndStream) {
  Service svc = Service::create(typed_config("typed-stream"));
  TypedServerProcess server(svc);
  Client client(svc);
  Result<TypedCall<MultiplyResponse>> c = call(client, -5, 0);
  ASSERT_TRUE(c.ok()) << c.name();
  for (std::int64_t i = 1; i <= 5; ++i) {
    Result<TypedResponse<MultiplyResponse>> r = c->receive_wait(5s);
    ASSERT_TRUE(r.ok()) << r.name();
    EXPECT_EQ(r->root().getProduct(), i);
    EXPECT_FALSE(r->last());
  }
  EXPECT_EQ(c->receive_wait(5s).code(), Errc::no_data) << "end_stream ends the typed stream";
  EXPECT_TRUE(c->done());
  stop(client, server);
}

TEST(TypedService, AMalformedRequestIsCountedAndItsCallAnsweredAtOnce) {
  Service svc = Service::create(typed_config("typed-malformed"));
  TypedServerProcess server(svc);
  ServiceClient raw(svc);
  // A segment table claiming 1000 segments, then one claiming more words than the payload.
  for (std::uint32_t table : {999u, 0u}) {
    Result<RequestLoan> l = raw.loan(16);
    ASSERT_TRUE(l.ok());
    const std::uint32_t words[2] = {table, 500};
    std::memcpy(l->data().data(), words, sizeof words);
    Result<PendingCall> c = raw.send(std::move(*l));
    ASSERT_TRUE(c.ok()) << c.name();
    EXPECT_TRUE(server.malformed.receive<int>(5s).has_value()) << "the server's take said malformed_message";
    const auto t0 = std::chrono::steady_clock::now();
    Result<ServiceResponse> r = c->receive_wait(5s);
    ASSERT_TRUE(r.ok()) << r.name();
    EXPECT_TRUE(r->data().empty() && r->last()) << "answered with an empty last response";
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
  }
  std::uint64_t malformed = 0;
  for (const ClientSlotInfo& s : svc.requests().stats().clients) {
    if (s.role == ClientSlotInfo::Role::subscriber && s.pid == server.child.pid()) malformed = s.counters.malformed;
  }
  EXPECT_EQ(malformed, 2u) << "counted in the server's request subscriber slot";
  Client client(svc);
  stop(client, server);
}

TEST(TypedService, TheBytesOnTheWireAreThoseOfMessageToFlatArray) {
  Service svc = Service::create(typed_config("typed-wire"));
  TypedServerProcess server(svc);
  // A request as `shmbus call` writes it: messageToFlatArray of a heap message, copied in.
  ServiceClient raw(svc);
  capnp::MallocMessageBuilder heap;
  MultiplyRequest::Builder req = heap.initRoot<MultiplyRequest>();
  req.setA(6);
  req.setB(7);
  kj::Array<capnp::word> flat = capnp::messageToFlatArray(heap);
  Result<RequestLoan> l = raw.loan(flat.asBytes().size());
  ASSERT_TRUE(l.ok());
  std::memcpy(l->data().data(), flat.begin(), flat.asBytes().size());
  Result<PendingCall> c = raw.send(std::move(*l));
  ASSERT_TRUE(c.ok()) << c.name();
  Result<ServiceResponse> r = c->receive_wait(5s);
  ASSERT_TRUE(r.ok()) << r.name();
  // Decoded as `shmbus call` decodes it: a flat array, copied out.
  std::vector<capnp::word> words(r->data().size() / sizeof(capnp::word));
  ASSERT_EQ(r->data().size() % sizeof(capnp::word), 0u);
  std::memcpy(words.data(), r->data().data(), r->data().size());
  capnp::FlatArrayMessageReader reader(kj::arrayPtr(words.data(), words.size()));
  EXPECT_EQ(reader.getRoot<MultiplyResponse>().getProduct(), 42);
  EXPECT_EQ(reader.getEnd(), words.data() + words.size()) << "exactly one flat array, nothing after it";
  Client client(svc);
  stop(client, server);
}

TEST(TypedService, AMessageThatOutgrowsItsLoanThrowsNamingTheLoanAndIsNotSent) {
  Service svc = Service::create(typed_config("typed-outgrow"));
  Client client(svc);
  RequestMessage<MultiplyRequest> loan = client.loan(24);  // the table and two words: too small
  ASSERT_TRUE(loan.ok());
  try {
    loan.init();
    FAIL() << "a root struct of three words fit in two";
  } catch (const kj::Exception& e) {
    EXPECT_NE(std::string(e.getDescription().cStr()).find("loan of 24 bytes"), std::string::npos)
        << e.getDescription().cStr();
  }
}

TEST(TypedService, AServiceOfOtherTypesIsRefused) {
  Service svc = Service::create(typed_config("typed-mismatch"));
  try {
    TypedServiceClient<MultiplyResponse, MultiplyResponse> wrong(svc);
    FAIL() << "a client of other request type was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::type_mismatch);
    EXPECT_NE(std::string(e.what()).find("request type id"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace shmbus
