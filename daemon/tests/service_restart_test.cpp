// An anonymous (memfd) service across a daemon restart (docs/services.md, "Through the daemon"):
// its participants keep calling (they map the service and its topics already, and hand the
// topics back to the new daemon), but the new daemon does not hand the service out again,
// since nothing hands it the service region: a new opener is told so in one line naming it.
#include "daemon_harness.hpp"
#include "service_child.hpp"
#include "shmbus/client.hpp"
#include "shmbus/service.hpp"

namespace shmbusd::test {
namespace {

using namespace std::chrono_literals;

constexpr char kName[] = "math/negate";

shmbus::ServiceConfig negate_config() { return small_service_config(kName, 64); }

// One call of a byte; its answer, or -1.
int call_once(shmbus::ServiceClient& caller, std::uint8_t value) {
  auto loan = caller.loan(1);
  if (!loan) return -1;
  loan->data()[0] = std::byte(value);
  auto call = caller.send(std::move(*loan));
  if (!call) return -1;
  auto r = call->receive_wait(5s);
  if (!r || r->data().size() != 1) return -1;
  return std::to_integer<int>(r->data()[0]);
}

TEST(ServiceRestart, AnAnonymousServiceKeepsItsParticipantsButIsNotHandedOutAgainAfterADaemonRestart) {
  auto dir = make_temp_dir("svc-restart");
  DaemonProcess d(dir / "run");
  d.start();
  ServiceChild server;  // answers 255 - byte, until stopped; reconnects by itself
  ASSERT_TRUE(server.serve(d, negate_config(), [](shmbus::ServiceServer& s, shmbus::Result<shmbus::ServiceRequest>& req) {
    if (!req) return;
    auto out = s.loan(1);
    if (!out) _exit(3);
    out->data()[0] = std::byte(255 - std::to_integer<unsigned>(req->data()[0]));
    (void)s.respond(*req, std::move(*out));
  })) << "the server failed to come up";

  shmbus::Client client(client_at(d));
  shmbus::Service svc = client.open_existing_service(kName, shmbus::ServiceRole::call);
  shmbus::ServiceClient caller(svc);
  ASSERT_EQ(call_once(caller, 5), 250);

  d.kill_now(SIGTERM);
  d.start();
  // Both clients reconnect and hand their topics back.
  bool back = false;
  for (int i = 0; i < 200 && !back; ++i) {
    try {
      for (const auto& t : client.list_topics()) back |= t.config.name == shmbus::Service::response_topic_name(kName);
    } catch (const shmbus::Error&) {
    }
    if (!back) std::this_thread::sleep_for(25ms);
  }
  ASSERT_TRUE(back) << "the topics were not handed back to the new daemon";
  EXPECT_EQ(call_once(caller, 7), 248) << "the participants keep calling";

  shmbus::Client late(client_at(d));
  try {
    late.open_existing_service(kName, shmbus::ServiceRole::call);
    FAIL() << "the new daemon handed out an anonymous service it holds no region of";
  } catch (const shmbus::Error& e) {
    EXPECT_EQ(e.code(), shmbus::Errc::no_such_topic) << e.what();
    EXPECT_NE(std::string(e.what()).find(kName), std::string::npos) << e.what();
  }
  d.kill_now(SIGTERM);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace shmbusd::test
