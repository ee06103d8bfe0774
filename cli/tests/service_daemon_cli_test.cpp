// `shmbus services`, `shmbus service info` and `shmbus call` (the real binary) through a real
// shmbusd, with no --dir: the services are the daemon's, served by forked server processes
// connected through the daemon.
#include <gtest/gtest.h>

#include <capnp/serialize.h>
#include <poll.h>
#include <sys/prctl.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli_run.hpp"
#include "daemon_harness.hpp"
#include "shmbus/client.hpp"
#include "shmbus/service.hpp"
#include "shmbus/typed_service.hpp"
#include "test_messages.capnp.h"

namespace shmbus {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using test::CliRun;
using test::shmbus_cli;

// Answers request bytes "V,N" with N responses "V*1".."V*N" (as text), the last one ending
// the stream, as the daemonless CLI test's server does.
void serve_multiply(ServiceServer& server, int stop_fd) {
  for (;;) {
    pollfd p{stop_fd, POLLIN, 0};
    if (poll(&p, 1, 0) == 1) return;
    Result<ServiceRequest> req = server.take_wait(20ms);
    if (!req) continue;
    std::string text(reinterpret_cast<const char*>(req->data().data()), req->data().size());
    long value = std::stol(text.substr(0, text.find(','))), count = std::stol(text.substr(text.find(',') + 1));
    for (long i = 1; i <= count; ++i) {
      std::string out = std::to_string(value * i);
      Result<ResponseLoan> loan = server.loan(out.size());
      if (!loan) _exit(4);
      std::memcpy(loan->data().data(), out.data(), out.size());
      if (!server.respond(*req, std::move(*loan), i == count).ok()) _exit(5);
    }
  }
}

// A typed server: each MultiplyRequest (a flat-array message) gets a stream of two
// MultiplyResponses, a*b and then 2*a*b with note "twice", the last.
void serve_typed_multiply(ServiceServer& server, int stop_fd) {
  for (;;) {
    pollfd p{stop_fd, POLLIN, 0};
    if (poll(&p, 1, 0) == 1) return;
    Result<ServiceRequest> req = server.take_wait(20ms);
    if (!req) continue;
    kj::Array<capnp::word> words = kj::heapArray<capnp::word>(req->data().size() / sizeof(capnp::word));
    std::memcpy(words.begin(), req->data().data(), words.size() * sizeof(capnp::word));
    capnp::FlatArrayMessageReader reader(words);
    auto in = reader.getRoot<test::MultiplyRequest>();
    for (int i = 1; i <= 2; ++i) {
      capnp::MallocMessageBuilder b;
      auto out = b.initRoot<test::MultiplyResponse>();
      out.setProduct(in.getA() * in.getB() * i);
      if (i == 2) out.setNote("twice");
      kj::Array<capnp::word> flat = capnp::messageToFlatArray(b);
      Result<ResponseLoan> loan = server.loan(flat.asBytes().size());
      if (!loan) _exit(4);
      std::memcpy(loan->data().data(), flat.asBytes().begin(), flat.asBytes().size());
      if (!server.respond(*req, std::move(*loan), i == 2).ok()) _exit(5);
    }
  }
}

class ServiceDaemonCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    daemon_.start();
    socket_ = " --socket " + daemon_.socket().string();
  }
  void TearDown() override {
    if (stop_ >= 0) close(stop_);
    if (server_ > 0) {
      ::kill(server_, SIGKILL);
      shmbusd::test::wait_exit(server_);
    }
    daemon_.kill_now(SIGTERM);
    std::filesystem::remove_all(daemon_.dir());
  }

  // Forks a server process that creates `config`'s service through the daemon and runs
  // `serve` until the test ends; returns once its row is active.
  template <typename Serve>
  void start_server(const ServiceConfig& config, Serve serve) {
    int ready[2], stop[2];
    ASSERT_EQ(pipe(ready), 0);
    ASSERT_EQ(pipe(stop), 0);
    server_ = fork();
    if (server_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      close(ready[0]);
      close(stop[1]);
      try {
        Client client(shmbusd::test::client_at(daemon_));
        Service svc = client.open_service(config, ServiceRole::serve);
        ServiceServer server(svc);
        (void)!write(ready[1], "r", 1);
        serve(server, stop[0]);
        _exit(0);
      } catch (const std::exception& e) {
        fprintf(stderr, "server child: %s\n", e.what());
        _exit(2);
      }
    }
    close(ready[1]);
    close(stop[0]);
    stop_ = stop[1];
    char c;
    ASSERT_EQ(read(ready[0], &c, 1), 1) << "the server child failed to come up";
    close(ready[0]);
  }

  static ServiceConfig config(const std::string& name) {
    ServiceConfig c;
    c.name = name;
    c.request_classes = {{256, 16}};
    c.response_classes = {{256, 16}};
    c.request_queue_depth = 8;
    c.response_queue_depth = 8;
    return c;
  }

  static std::string hex(const std::string& s) {
    std::string h;
    char buf[3];
    for (unsigned char c : s) {
      std::snprintf(buf, sizeof buf, "%02x", c);
      h += buf;
    }
    return h;
  }

  shmbusd::test::DaemonProcess daemon_{shmbusd::test::make_temp_dir("svc-cli")};
  std::string socket_;
  pid_t server_ = -1;
  int stop_ = -1;
};

TEST_F(ServiceDaemonCliTest, CallServicesAndServiceInfoWorkThroughTheDaemonWithoutADirectory) {
  start_server(config("math/multiply"), serve_multiply);
  CliRun r = shmbus_cli("call math/multiply 7,3" + socket_);
  ASSERT_EQ(r.exit_code(), 0) << r.err;
  EXPECT_EQ(r.out, "#1 (1 bytes) " + hex("7") + "\n#2 (2 bytes) " + hex("14") + "\n#3 (2 bytes) " + hex("21") + "\n");

  CliRun list = shmbus_cli("services --json" + socket_);
  ASSERT_EQ(list.exit_code(), 0) << list.err;
  json services = json::parse(list.out);
  ASSERT_EQ(services.size(), 1u) << list.out;
  EXPECT_EQ(services[0]["name"], "math/multiply");
  EXPECT_EQ(services[0]["servers_alive"], 1);
  EXPECT_EQ(services[0]["request_type"], "raw bytes");

  CliRun info = shmbus_cli("service info math/multiply --json" + socket_);
  ASSERT_EQ(info.exit_code(), 0) << info.err;
  json j = json::parse(info.out);
  ASSERT_EQ(j["servers"].size(), 1u) << info.out;
  EXPECT_EQ(j["servers"][0]["pid"], server_);
  EXPECT_EQ(j["servers"][0]["alive"], true);
  EXPECT_EQ(j["servers"][0]["served"], 1);
  EXPECT_EQ(j["requests"]["published"], 1);
  EXPECT_EQ(j["responses"]["published"], 3);

  // A service the bus does not have is named, and never created by a tool.
  CliRun none = shmbus_cli("call math/nosuch 1,1" + socket_);
  EXPECT_EQ(none.exit_code(), 1);
  EXPECT_EQ(none.err, "shmbus: no service 'math/nosuch' on bus 'default' (see: shmbus services)\n");
  EXPECT_EQ(json::parse(shmbus_cli("services --json" + socket_).out).size(), 1u);
}

TEST_F(ServiceDaemonCliTest, WithoutADaemonOrADirectoryTheErrorSaysHowToGoWithoutTheDaemon) {
  CliRun r = shmbus_cli("services --socket " + (daemon_.dir() / "nobody-here.sock").string());
  EXPECT_EQ(r.exit_code(), 1);
  EXPECT_NE(r.err.find("no shmbusd answers"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("services without a daemon need --dir DIR"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST_F(ServiceDaemonCliTest, ATypedCallIsBuiltFromTextAndItsResponsesDecodedThroughTheRecordedSchemas) {
  ServiceConfig c = typed_service<test::MultiplyRequest, test::MultiplyResponse>("math/typed");
  c.request_classes = {{256, 16}};
  c.response_classes = {{256, 16}};
  c.request_queue_depth = 8;
  c.response_queue_depth = 8;
  start_server(c, serve_typed_multiply);

  CliRun r = shmbus_cli("call math/typed '(a = 6, b = 7)'" + socket_);
  ASSERT_EQ(r.exit_code(), 0) << r.err;
  EXPECT_EQ(r.out, "#1 (product = 42)\n#2 (product = 84, note = \"twice\")\n");

  r = shmbus_cli("call math/typed '{\"a\": 3, \"b\": -5}' --json" + socket_);
  ASSERT_EQ(r.exit_code(), 0) << r.err;
  std::istringstream lines(r.out);
  std::string first, second;
  std::getline(lines, first);
  std::getline(lines, second);
  const json product = json::parse(first)["message"]["product"];  // Cap'n Proto's JSON writes Int64 as a string
  EXPECT_TRUE(product == "-15" || product == -15) << r.out;
  EXPECT_EQ(json::parse(second)["message"]["note"], "twice") << r.out;
  EXPECT_EQ(json::parse(second)["last"], true);

  // `service info` and `services` name both types.
  CliRun info = shmbus_cli("service info math/typed" + socket_);
  ASSERT_EQ(info.exit_code(), 0) << info.err;
  EXPECT_NE(info.out.find("MultiplyRequest, queue depth"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("MultiplyResponse, queue depth"), std::string::npos) << info.out;
  json listed = json::parse(shmbus_cli("services --json" + socket_).out);
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_TRUE(listed[0]["request_type"].get<std::string>().ends_with("MultiplyRequest")) << listed;

  // Text that is not a MultiplyRequest: one line naming the type and what did not parse; no call made.
  r = shmbus_cli("call math/typed '(a = 6, c = 7)'" + socket_);
  EXPECT_EQ(r.exit_code(), 1);
  EXPECT_NE(r.err.find("the request is not a "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("MultiplyRequest: "), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(json::parse(shmbus_cli("service info math/typed --json" + socket_).out)["requests"]["published"], 2);
}

}  // namespace
}  // namespace shmbus
