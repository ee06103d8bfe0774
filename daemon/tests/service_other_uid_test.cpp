// Services across uids through a real shmbusd: a server of uid 65534 and a client of root
// cannot open each other's payload pools through /proc (another user's process), so each
// ServiceServer and ServiceClient hands the daemon its publisher's pool when it takes its row
// (registerPool), and the peer fetches it from the daemon (getPool), as topic subscribers do.
// The access rules still decide who may call and serve.
#include <grp.h>

#include <fstream>

#include "daemon_harness.hpp"
#include "service_child.hpp"
#include "shmbus/client.hpp"
#include "shmbus/service.hpp"

namespace shmbusd::test {
namespace {

using namespace std::chrono_literals;

constexpr char kName[] = "math/double";
constexpr std::size_t kRequestBytes = 100;

shmbus::ServiceConfig double_config() { return small_service_config(kName); }

// Exit codes of the server child (kThrew: ServiceChild's for an exception).
enum ServerExit { kStopped = 0, kThrew = 2, kCannotSwitchUid = 5, kTakeFailed = 7, kBadRequest = 8, kRespondFailed = 9 };

// A server as uid 65534: answers every request (kRequestBytes, byte i = (seed + i) mod 251)
// with its bytes doubled, until the parent closes `stop`. Any request it cannot read is its
// exit status: the parent then knows which side failed.
bool start_other_uid_server(ServiceChild& child, const DaemonProcess& d) {
  auto become_other_uid = [] {
    if (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0) _exit(kCannotSwitchUid);
  };
  return child.serve(d, double_config(), [](shmbus::ServiceServer& server, shmbus::Result<shmbus::ServiceRequest>& req) {
    if (req.code() == shmbus::Errc::timeout) return;
    if (!req) {
      fprintf(stderr, "other-uid server: take: %s\n", req.name());
      _exit(kTakeFailed);
    }
    std::span<const std::byte> in = req->data();  // in place: the root client's pool
    if (in.size() != kRequestBytes) _exit(kBadRequest);
    const unsigned seed = std::to_integer<unsigned>(in[0]);
    for (std::size_t i = 0; i < in.size(); ++i) {
      if (std::to_integer<unsigned>(in[i]) != (seed + i) % 251) _exit(kBadRequest);
    }
    auto out = server.loan(in.size());
    if (!out) _exit(kRespondFailed);
    for (std::size_t i = 0; i < in.size(); ++i) out->data()[i] = std::byte(2 * std::to_integer<unsigned>(in[i]) & 0xff);
    if (!server.respond(*req, std::move(*out)).ok()) _exit(kRespondFailed);
  }, become_other_uid);
}

TEST(ServiceOtherUid, AServerOfUid65534AndARootClientReadEachOthersPayloadsThroughTheDaemon) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to run the server as uid 65534";
  auto dir = make_temp_dir("svc-other-uid");
  chmod(dir.c_str(), 0755);
  std::string config = (dir / "shmbusd.toml").string();
  // uid 65534 serves (and so creates) math/double, root calls it; nobody else may.
  std::ofstream(config) << "socket_dir_mode = 0o755\n"
                           "[[access]]\ntopic = \"service/math/double\"\ncall = [\"uid:0\"]\nserve = [\"uid:65534\"]\n";
  DaemonProcess d(dir / "run", {"--config", config});
  d.start();
  ServiceChild server;  // started before our Client: no thread to fork
  ASSERT_TRUE(start_other_uid_server(server, d)) << "the uid 65534 server failed to come up";

  shmbus::Client client(client_at(d));
  shmbus::Service svc = client.open_existing_service(kName, shmbus::ServiceRole::call);
  shmbus::ServiceClient caller(svc);
  std::vector<shmbus::PendingCall> calls;
  for (unsigned seed = 1; seed <= 4; ++seed) {  // several in flight
    auto loan = caller.loan(kRequestBytes);
    ASSERT_TRUE(loan.ok()) << loan.name();
    for (std::size_t i = 0; i < kRequestBytes; ++i) loan->data()[i] = std::byte((seed + i) % 251);
    auto call = caller.send(std::move(*loan));
    ASSERT_TRUE(call.ok()) << call.name();
    calls.push_back(std::move(*call));
  }
  for (unsigned seed = 1; seed <= 4; ++seed) {
    auto r = calls[seed - 1].receive_wait(5s);
    ASSERT_TRUE(r.ok()) << "call " << seed << ": " << r.name();  // read in place in the server's pool
    ASSERT_EQ(r->data().size(), kRequestBytes);
    for (std::size_t i = 0; i < kRequestBytes; ++i) {
      ASSERT_EQ(std::to_integer<unsigned>(r->data()[i]), (2 * ((seed + i) % 251)) & 0xff) << "byte " << i;
    }
  }
  calls.clear();
  EXPECT_EQ(server.stop(), kStopped) << "the server's exit status says what it could not read";
  d.kill_now(SIGTERM);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace shmbusd::test
