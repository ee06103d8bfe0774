// Services across buses: a real server process on bus A answers clients on bus B through two
// bridges and one nats-server; streams arrive whole and in order with many calls in flight;
// a server killed on A, a bridge killed on A (no responders) and hostile replies end the B
// client's call with server_gone, never a hang.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <map>
#include <thread>

#include "bridge_harness.hpp"
#include "nats_engine.hpp"
#include "service_wire.hpp"
#include "shmbus/service.hpp"

namespace shmbus::bridge::test {
namespace {

using namespace std::chrono_literals;
const std::string kName = "math/multiply";

// The server's answer to "V,N": N responses "V*1".."V*N" (text). V = 0: it kills itself after
// claiming the call; V < 0: it never answers.
[[noreturn]] void serve(const std::filesystem::path& dir) {
  Service svc = Service::open_files(dir, kName);
  ServiceServer server(svc);
  std::vector<ServiceRequest> ignored;
  for (;;) {
    Result<ServiceRequest> req = server.take_wait(30s);
    if (!req) _exit(3);
    std::string text(reinterpret_cast<const char*>(req->data().data()), req->data().size());
    long value = std::stol(text.substr(0, text.find(','))), count = std::stol(text.substr(text.find(',') + 1));
    if (value == 0) ::kill(::getpid(), SIGKILL);
    if (value < 0) {
      ignored.push_back(std::move(*req));
      continue;
    }
    for (long i = 1; i <= count; ++i) {
      std::string out = std::to_string(value * i);
      Result<ResponseLoan> loan = server.loan(out.size());
      if (!loan) _exit(4);
      std::memcpy(loan->data().data(), out.data(), out.size());
      if (!server.respond(*req, std::move(*loan), i == count).ok() && i == count) _exit(5);
    }
  }
}

struct ServerProcess {
  pid_t pid = -1;
  explicit ServerProcess(const std::filesystem::path& dir) {
    pid = ::fork();
    if (pid == 0) serve(dir);
  }
  void kill9() { signal_and_reap(pid, SIGKILL); }
  ~ServerProcess() { kill9(); }
};

Service create_service(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  RegionOptions o;
  o.backing = RegionOptions::Backing::file;
  o.directory = dir;
  return Service::create(ServiceConfig{.name = kName}, o);
}

// The service bridge B serves, once it is there with at least one live server row.
std::optional<Service> open_when_served(const std::filesystem::path& dir, const BridgeProcess& bridge) {
  std::optional<Service> svc;
  EXPECT_TRUE(eventually([&] {
    try {
      if (!svc) svc.emplace(Service::open_files(dir, kName));
      return !svc->servers().empty();
    } catch (const Error&) {
      return false;
    }
  })) << bridge.log();
  return svc;
}

// Sends "V,N" and collects the responses' texts; the error that ended the call, if any.
struct Outcome {
  std::vector<std::string> texts;
  std::optional<Errc> error;
  bool last_seen = false;
};
Result<PendingCall> send(ServiceClient& client, const std::string& text) {
  Result<RequestLoan> loan = client.loan(text.size());
  if (!loan) return loan.code();
  std::memcpy(loan->data().data(), text.data(), text.size());
  return client.send(std::move(*loan));
}
Outcome finish(PendingCall& call, std::chrono::milliseconds timeout) {
  Outcome o;
  while (!call.done()) {
    Result<ServiceResponse> r = call.receive_wait(timeout);
    if (!r) {
      o.error = r.code();
      break;
    }
    o.texts.emplace_back(reinterpret_cast<const char*>(r->data().data()), r->data().size());
    o.last_seen = r->last();
  }
  return o;
}
std::vector<std::string> expected(long value, long count) {
  std::vector<std::string> v;
  for (long i = 1; i <= count; ++i) v.push_back(std::to_string(value * i));
  return v;
}

std::string export_rule(const std::filesystem::path& dir) {
  return "[[service_export]]\ndirectory = \"" + dir.string() + "\"\nservice = \"" + kName +
         "\"\nsubject_prefix = \"svc.a\"\ncall_timeout_ms = 1000\n";
}
std::string import_rule(const std::filesystem::path& dir) {
  return "[[service_import]]\ndirectory = \"" + dir.string() + "\"\nservice = \"" + kName + "\"\nprefix = \"svc.a\"\ncall_timeout_ms = 3000\n";
}

// kName on bus a (file-backed, in a/svc) with a forked server, exported by bus a's bridge and
// imported by bus b's (into b/svc); svc_b once bridge b serves it there (else nullopt).
struct ServiceAcross {
  NatsServer nats;
  Bus a{"a"}, b{"b"};
  const std::filesystem::path dir_a = a.dir() / "svc", dir_b = b.dir() / "svc";
  Service svc_a = create_service(dir_a);
  ServerProcess server{dir_a};
  const bool server_up = eventually([&] { return !svc_a.servers().empty(); });  // before bridge a looks
  std::optional<BridgeProcess> bridge_a{std::in_place, a, nats, "busA", export_rule(dir_a)};
  BridgeProcess bridge_b{b, nats, "busB", import_rule(dir_b)};
  std::optional<Service> svc_b = open_when_served(dir_b, bridge_b);
};

// The bridges subscribe as they start: the first calls may find no responder yet. True once a
// call of `text` was answered with `want`.
bool answered_once_ready(ServiceClient& client, const std::string& text, const std::vector<std::string>& want) {
  return eventually([&] {
    Result<PendingCall> call = send(client, text);
    return call && finish(*call, 3s).texts == want;
  });
}

TEST(BridgeServices, AServerOnBusAAnswersManyCallsInFlightFromBusBAndItsKillGivesServerGoneNotAHang) {
  ServiceAcross across;
  ASSERT_TRUE(across.server_up);
  ASSERT_TRUE(across.svc_b);
  ServiceClient client(*across.svc_b);
  ASSERT_TRUE(answered_once_ready(client, "1,1", expected(1, 1))) << across.bridge_a->log() << across.bridge_b.log();

  // 4 rounds of 24 calls in flight at once, streams of 1 to 4 responses.
  for (long round = 0; round < 4; ++round) {
    std::vector<std::pair<long, long>> asked;
    std::vector<PendingCall> calls;
    for (long k = 0; k < 24; ++k) {
      const long value = 100 * round + k + 2, count = 1 + k % 4;
      Result<PendingCall> call = send(client, std::to_string(value) + "," + std::to_string(count));
      ASSERT_TRUE(call) << call.name();
      calls.push_back(std::move(*call));
      asked.emplace_back(value, count);
    }
    for (std::size_t k = 0; k < calls.size(); ++k) {
      Outcome o = finish(calls[k], 5s);
      ASSERT_FALSE(o.error) << "call " << k << " of round " << round << ": " << errc_name(*o.error) << "\n" << across.bridge_b.log();
      EXPECT_EQ(o.texts, expected(asked[k].first, asked[k].second));
      EXPECT_TRUE(o.last_seen);
    }
  }

  // A call whose server dies on A (it kills itself once it claimed the call), with others in
  // flight on the same lanes: server_gone within a bound, not a hang.
  std::vector<PendingCall> others;
  for (int k = 0; k < 6; ++k) {
    Result<PendingCall> call = send(client, "7,2");
    ASSERT_TRUE(call) << call.name();
    others.push_back(std::move(*call));
  }
  Result<PendingCall> doomed = send(client, "0,1");
  ASSERT_TRUE(doomed);
  // Reaped as its parent would: a zombie still looks alive to the liveness check.
  const int rc = wait_exit(across.server.pid, 5s);
  if (rc < 0) across.server.kill9();
  across.server.pid = -1;
  ASSERT_EQ(rc, 128 + SIGKILL) << "the server did not die on its call";
  const auto t0 = std::chrono::steady_clock::now();
  Outcome o = finish(*doomed, 4s);
  const auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_TRUE(o.error) << "the call of a killed server got answers";
  EXPECT_EQ(*o.error, Errc::server_gone) << errc_name(*o.error) << "\n" << across.bridge_b.log();
  EXPECT_LT(took, 2s);
  for (PendingCall& c : others) {
    Outcome other = finish(c, 4s);
    // Each either went through before the kill or failed the same way: none hangs.
    if (other.error) EXPECT_EQ(*other.error, Errc::server_gone) << errc_name(*other.error);
    else EXPECT_EQ(other.texts, expected(7, 2));
  }
  // No server on A at all: server_gone too.
  Result<PendingCall> none = send(client, "3,1");
  ASSERT_TRUE(none);
  Outcome gone = finish(*none, 4s);
  ASSERT_TRUE(gone.error);
  EXPECT_EQ(*gone.error, Errc::server_gone) << errc_name(*gone.error);
  // The status file (rewritten every second) counts them.
  EXPECT_TRUE(eventually([&] {
    nlohmann::json s = across.bridge_b.status()["service_imports"][kName];
    return s.value("server_gone", 0ull) >= 2 && s.value("answered", 0ull) >= 4u * 24u;
  })) << across.bridge_b.status().dump();
}

TEST(BridgeServices, WithNoBridgeAnsweringACallGivesServerGoneAndASilentServerGivesTheClientsTimeout) {
  ServiceAcross across;
  ASSERT_TRUE(across.svc_b);
  ServiceClient client(*across.svc_b);
  ASSERT_TRUE(answered_once_ready(client, "2,1", expected(2, 1))) << across.bridge_a->log() << across.bridge_b.log();

  // A's server takes the call and never answers: A's bridge gives up after its 1 s and B's
  // client gets its own timeout (2 s here), not server_gone.
  Result<PendingCall> silent = send(client, "-1,1");
  ASSERT_TRUE(silent);
  Outcome o = finish(*silent, 2s);
  ASSERT_TRUE(o.error);
  EXPECT_EQ(*o.error, Errc::timeout) << errc_name(*o.error);
  EXPECT_TRUE(eventually([&] { return across.bridge_a->status()["service_exports"][kName].value("timeouts", 0ull) >= 1; }));

  // Bridge A killed: NATS has no responder for the subject.
  across.bridge_a->kill_now(SIGKILL);
  Result<PendingCall> call = send(client, "5,1");
  ASSERT_TRUE(call);
  const auto t0 = std::chrono::steady_clock::now();
  Outcome gone = finish(*call, 4s);
  ASSERT_TRUE(gone.error);
  EXPECT_EQ(*gone.error, Errc::server_gone) << errc_name(*gone.error) << "\n" << across.bridge_b.log();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  EXPECT_TRUE(eventually([&] { return across.bridge_b.status()["service_imports"][kName].value("no_responders", 0ull) >= 1; }))
      << across.bridge_b.status().dump();
}

TEST(BridgeServices, HostileRepliesAreCountedErrorsTheCallEndsWithServerGoneAndTheBridgeKeepsServing) {
  NatsServer nats;
  Bus b("b");
  const std::filesystem::path dir_b = b.dir() / "svc";
  BridgeProcess bridge_b(b, nats, "busB", import_rule(dir_b));
  // A hostile peer answers on the subject bridge B calls: reply k of each call is chosen by the
  // request's text.
  NatsSettings settings;
  settings.servers = {nats.url()};
  std::unique_ptr<Engine> peer = make_nats_engine(settings, "hostile peer");
  peer->subscribe_requests("svc.a.math.multiply", [&](const IncomingMessage& m, std::string_view reply) {
    std::string kind(reinterpret_cast<const char*>(m.payload().data()), m.payload().size());
    const std::string r(reply);
    std::span<const std::byte> body[1] = {std::as_bytes(std::span("xyz", 3))};
    if (kind == "no headers") peer->publish(r, {}, body);
    if (kind == "bad last") peer->publish(r, {{kHeaderIndex, "0"}, {kHeaderLast, "maybe"}}, body);
    if (kind == "skips") peer->publish(r, {{kHeaderIndex, "1"}, {kHeaderLast, "1"}}, body);
    if (kind == "odd error") peer->publish(r, {{kHeaderError, "teapot"}, {kHeaderLast, "1"}}, {});
    if (kind == "good") peer->publish(r, {{kHeaderIndex, "0"}, {kHeaderLast, "1"}}, body);
  });
  std::optional<Service> svc_b = open_when_served(dir_b, bridge_b);
  ASSERT_TRUE(svc_b);
  ServiceClient client(*svc_b);
  ASSERT_TRUE(answered_once_ready(client, "good", {"xyz"})) << bridge_b.log();
  for (const char* kind : {"no headers", "bad last", "skips", "odd error"}) {
    Result<PendingCall> call = send(client, kind);
    ASSERT_TRUE(call);
    Outcome o = finish(*call, 4s);
    ASSERT_TRUE(o.error) << kind << " reached the client";
    EXPECT_EQ(*o.error, Errc::server_gone) << kind << ": " << errc_name(*o.error);
    EXPECT_TRUE(o.texts.empty()) << kind;
  }
  // Still serving.
  Result<PendingCall> call = send(client, "good");
  ASSERT_TRUE(call);
  EXPECT_EQ(finish(*call, 3s).texts, std::vector<std::string>{"xyz"});
  EXPECT_TRUE(eventually([&] {
    nlohmann::json h = bridge_b.status()["service_imports"][kName]["hostile"];
    return h.value("bad_headers", 0ull) == 3 && h.value("out_of_order", 0ull) == 1;
  })) << bridge_b.status().dump() << bridge_b.log();
}

}  // namespace
}  // namespace shmbus::bridge::test
