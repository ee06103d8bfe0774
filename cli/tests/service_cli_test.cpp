// Drives `shmbus services`, `shmbus service info` and `shmbus call` (the real binary) against
// file-backed services served by real forked server processes, one of them SIGKILLed mid-call.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <thread>

#include "cli_run.hpp"
#include "shmbus/service.hpp"

namespace shmbus {
namespace {

namespace fs = std::filesystem;
using test::CliRun;
using test::shmbus_cli;
using namespace std::chrono_literals;

// A forked process, SIGKILLed and reaped when the test ends, also when it fails.
struct Child {
  pid_t pid = -1;
  ~Child() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
};

// What the servers below answer to request bytes "V,N": N responses "V*1".."V*N" (as text).
enum class ServerKind { multiply, killed_after_claim };

class ServiceCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("shmbus-svc-cli-" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    ServiceConfig c;
    c.name = "math/multiply";
    c.request_classes = {{64, 16}};
    c.response_classes = {{64, 16}};
    c.request_queue_depth = 8;
    c.response_queue_depth = 8;
    RegionOptions o;
    o.backing = RegionOptions::Backing::file;
    o.directory = dir_;
    service_.emplace(Service::create(c, o));
  }
  void TearDown() override {
    service_.reset();
    fs::remove_all(dir_);
  }

  // Forks a server of the service; returns once its row is registered.
  void start_server(Child& child, ServerKind kind) {
    const std::size_t before = service_->servers().size();
    child.pid = ::fork();
    ASSERT_GE(child.pid, 0);
    if (child.pid == 0) serve(kind);  // never returns
    for (auto until = std::chrono::steady_clock::now() + 5s; service_->servers().size() == before;) {
      ASSERT_LT(std::chrono::steady_clock::now(), until) << "the forked server did not register";
      std::this_thread::sleep_for(1ms);
    }
  }

  [[noreturn]] void serve(ServerKind kind) {
    ServiceServer server(*service_);
    for (;;) {
      Result<ServiceRequest> req = server.take_wait(10s);
      if (!req) _exit(3);
      if (kind == ServerKind::killed_after_claim) ::kill(::getpid(), SIGKILL);
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

  std::string dir_arg() const { return " --dir " + dir_.string(); }
  static std::string hex(const std::string& s) {
    std::string h;
    char buf[3];
    for (unsigned char c : s) {
      std::snprintf(buf, sizeof buf, "%02x", c);
      h += buf;
    }
    return h;
  }

  fs::path dir_;
  std::optional<Service> service_;
};

TEST_F(ServiceCliTest, CallPrintsEveryResponseOfTheStreamInOrderFromARealServer) {
  Child server;
  start_server(server, ServerKind::multiply);
  CliRun r = shmbus_cli("call math/multiply 7,3 --timeout 5" + dir_arg());
  ASSERT_EQ(r.exit_code(), 0) << r.err;
  EXPECT_EQ(r.out, "#1 (1 bytes) " + hex("7") + "\n#2 (2 bytes) " + hex("14") + "\n#3 (2 bytes) " + hex("21") + "\n");
}

TEST_F(ServiceCliTest, CallTakesTheRequestAsHexOrFromAFileAndPrintsJsonWithTheServerId) {
  Child server;
  start_server(server, ServerKind::multiply);
  CliRun r = shmbus_cli("--json call math/multiply --raw " + hex("5,2") + dir_arg());
  ASSERT_EQ(r.exit_code(), 0) << r.err;
  std::istringstream lines(r.out);
  std::string first, second;
  std::getline(lines, first);
  std::getline(lines, second);
  const std::uint32_t id = service_->servers().at(0).id;
  EXPECT_EQ(nlohmann::json::parse(first), (nlohmann::json{{"index", 1}, {"server", id}, {"last", false}, {"hex", hex("5")}}));
  EXPECT_EQ(nlohmann::json::parse(second), (nlohmann::json{{"index", 2}, {"server", id}, {"last", true}, {"hex", hex("10")}}));

  std::ofstream(dir_ / "request.bin") << "6,1";
  r = shmbus_cli("call math/multiply --raw @" + (dir_ / "request.bin").string() + dir_arg());
  ASSERT_EQ(r.exit_code(), 0) << r.err;
  EXPECT_EQ(r.out, "#1 (1 bytes) " + hex("6") + "\n");
}

TEST_F(ServiceCliTest, ServicesAndServiceInfoShowTheLiveServerWithItsPidAndServedCount) {
  Child server;
  start_server(server, ServerKind::multiply);
  ASSERT_EQ(shmbus_cli("call math/multiply 2,1" + dir_arg()).exit_code(), 0);

  CliRun list = shmbus_cli("services --json" + dir_arg());
  ASSERT_EQ(list.exit_code(), 0) << list.err;
  nlohmann::json services = nlohmann::json::parse(list.out);
  ASSERT_EQ(services.size(), 1u) << list.out;
  EXPECT_EQ(services[0]["name"], "math/multiply");
  EXPECT_EQ(services[0]["servers_alive"], 1);
  EXPECT_EQ(services[0]["clients"], 0) << "the CLI's own client row is freed when it exits";
  CliRun table = shmbus_cli("services" + dir_arg());
  EXPECT_NE(table.out.find("math/multiply  1/1"), std::string::npos) << table.out;

  CliRun info = shmbus_cli("service info math/multiply --json" + dir_arg());
  ASSERT_EQ(info.exit_code(), 0) << info.err;
  nlohmann::json j = nlohmann::json::parse(info.out);
  ASSERT_EQ(j["servers"].size(), 1u) << info.out;
  EXPECT_EQ(j["servers"][0]["pid"], server.pid);
  EXPECT_EQ(j["servers"][0]["alive"], true);
  EXPECT_EQ(j["servers"][0]["served"], 1);
  EXPECT_EQ(j["requests"]["queue_depth"], 8);
  EXPECT_EQ(j["requests"]["published"], 1);
  EXPECT_EQ(j["responses"]["published"], 1);

  ::kill(server.pid, SIGKILL);  // a dead server's row stays until reclaimed, shown as not alive
  ::waitpid(server.pid, nullptr, 0);
  server.pid = -1;
  j = nlohmann::json::parse(shmbus_cli("service info math/multiply --json" + dir_arg()).out);
  ASSERT_EQ(j["servers"].size(), 1u);
  EXPECT_EQ(j["servers"][0]["alive"], false);
}

TEST_F(ServiceCliTest, CallWhoseServerIsKilledMidCallExitsWithServerGoneStatusFour) {
  Child server;
  start_server(server, ServerKind::killed_after_claim);
  // Reap it as soon as it dies, as its parent would: an unreaped zombie still has its /proc
  // entry and counts as alive.
  std::thread reaper([pid = server.pid] { ::waitpid(pid, nullptr, 0); });
  const auto start = std::chrono::steady_clock::now();
  CliRun r = shmbus_cli("call math/multiply 1,1 --timeout 10" + dir_arg());
  reaper.join();
  server.pid = -1;
  EXPECT_EQ(r.exit_code(), 4) << r.out << r.err;
  EXPECT_NE(r.err.find("the server died or left"), std::string::npos) << r.err;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s) << "server_gone, not the timeout";
}

TEST_F(ServiceCliTest, CallWithNoServerExitsFourAndCallNobodyAnswersTimesOutWithStatusThree) {
  CliRun none = shmbus_cli("call math/multiply 1,1" + dir_arg());
  EXPECT_EQ(none.exit_code(), 4) << none.err;
  EXPECT_NE(none.err.find("no live server"), std::string::npos) << none.err;

  ServiceServer silent(*service_);  // alive, registered, never takes
  CliRun r = shmbus_cli("call math/multiply 1,1 --timeout 0.3" + dir_arg());
  EXPECT_EQ(r.exit_code(), 3) << r.err;
  EXPECT_NE(r.err.find("no response within"), std::string::npos) << r.err;
}

TEST_F(ServiceCliTest, BadInputIsOneLineNamingWhatWasWrong) {
  CliRun r = shmbus_cli("call math/multiply --raw 0g" + dir_arg());
  EXPECT_EQ(r.exit_code(), 1);
  EXPECT_EQ(r.err, "shmbus: --raw: 'g' is not a hex digit\n");
  r = shmbus_cli("call math/multiply --raw abc" + dir_arg());
  EXPECT_EQ(r.err, "shmbus: --raw: odd number of hex digits (3)\n");
  r = shmbus_cli("service info nosuch" + dir_arg());
  EXPECT_EQ(r.exit_code(), 1);
  EXPECT_EQ(r.err, "shmbus: no service 'nosuch' in " + dir_.string() + " (see: shmbus services --dir " + dir_.string() + ")\n");
  r = shmbus_cli("services");
  EXPECT_EQ(r.exit_code(), 1);
  EXPECT_NE(r.err.find("need --dir"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace shmbus
