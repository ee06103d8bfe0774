// The options every command shares (--json, --bus, --socket) work after the subcommand as well
// as before it, every command's --help lists them, and the exit status tells a script what
// went wrong: the real `shmbus` binary against a real shmbusd.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <functional>
#include <thread>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "cli_run.hpp"
#include "daemon_harness.hpp"
#include "shmbus/client.hpp"
#include "shmbus/shmbus.hpp"
#include "test_messages.capnp.h"

namespace shmbus {
namespace {

using nlohmann::json;
using test::CliRun;
using test::shmbus_cli;

// Every command, with the arguments it needs against the "readings" topic of the fixture.
// `{snap}` stands for a snapshot file, `{rec}` for a recording directory.
const std::vector<std::string> kEveryCommand = {
    "status", "topics", "topic info readings", "regions", "clients", "region inspect readings",
    "echo readings -n 1 --timeout 5", "hz readings --duration 1.2", "pub readings '{\"seq\": \"4242\"}'",
    "snapshot readings -o {snap}", "dump {snap}", "metrics readings", "top readings --once --interval 0.2",
    "record readings -o {rec} --duration 0.3", "log info {rec}", "replay {rec} --as-fast",
    "services --dir {dir}", "service info echo --dir {dir}", "call echo hi --dir {dir}",
};

// The commands `shmbus --help` lists: the names under "Subcommands:".
std::set<std::string> listed_commands() {
  CliRun help = shmbus_cli("--help");
  std::istringstream lines(help.out);
  std::string line;
  std::set<std::string> names;
  bool in_list = false;
  while (std::getline(lines, line)) {
    if (line.starts_with("Subcommands:")) in_list = true;
    else if (in_list && line.starts_with("  ")) names.insert(line.substr(2, line.find(' ', 2) - 2));
    else if (in_list && !line.empty()) in_list = false;
  }
  return names;
}

std::string first_word(const std::string& s) { return s.substr(0, s.find(' ')); }

std::vector<json> json_lines(const std::string& out) {
  std::vector<json> v;
  std::istringstream lines(out);
  std::string line;
  while (std::getline(lines, line)) v.push_back(json::parse(line));
  return v;
}

class CliGlobalOptions : public ::testing::Test {
 protected:
  void SetUp() override {
    daemon_.start();
    ClientOptions o;
    o.socket = daemon_.socket();
    client_.emplace(o);
    TopicConfig c = typed_topic<shmbus::test::Reading>("readings");
    c.size_classes = {{512, 32}};
    c.history_depth = 8;
    c.queue_depth = 8;
    topic_.emplace(client_->open_topic(c, Role::publisher));
    publisher_.emplace(*topic_);
    client_->register_publisher(publisher_->raw());
    for (std::uint64_t seq : {1000, 1001}) {
      auto loan = publisher_->loan();
      loan.init().setSeq(seq);
      ASSERT_TRUE(publisher_->publish(loan).ok());
    }
  }
  void TearDown() override {
    publisher_.reset();
    topic_.reset();
    client_.reset();
    daemon_.kill_now(SIGTERM);
    std::filesystem::remove_all(daemon_.dir());
  }
  std::string globals_after() const { return " --json --bus default --socket " + daemon_.socket().string(); }

  shmbusd::test::DaemonProcess daemon_{shmbusd::test::make_temp_dir("cli-global")};
  std::optional<Client> client_;
  std::optional<Topic> topic_;
  std::optional<Publisher<shmbus::test::Reading>> publisher_;
};

TEST_F(CliGlobalOptions, TheTestCoversEveryCommandTheHelpLists) {
  std::set<std::string> covered;
  for (const std::string& c : kEveryCommand) covered.insert(first_word(c));
  EXPECT_EQ(covered, listed_commands()) << "a command was added or removed: update kEveryCommand";
}

TEST_F(CliGlobalOptions, EveryCommandTakesJsonBusAndSocketAfterTheSubcommand) {
  Subscriber<shmbus::test::Reading> sub(client_->open_topic("readings", Role::subscriber), {.with_history = false});
  const std::string snap = (daemon_.dir() / "snap.bin").string();
  // A daemonless service "echo" in {dir}, answered by a server thread while the commands run.
  const std::filesystem::path service_dir = daemon_.dir() / "services";
  std::filesystem::create_directories(service_dir);
  Service echo_service = Service::create({.name = "echo"}, {.backing = RegionOptions::Backing::file, .directory = service_dir});
  std::atomic<bool> stop{false};
  std::thread server_thread([&] {
    ServiceServer server(echo_service);
    while (!stop.load(std::memory_order_relaxed)) {  // relaxed: only a flag, no data with it
      Result<ServiceRequest> req = server.take_wait(std::chrono::milliseconds(20));
      if (!req) continue;
      Result<ResponseLoan> out = server.loan(req->data().size());
      if (!out) continue;
      std::memcpy(out->data().data(), req->data().data(), req->data().size());
      (void)server.respond(*req, std::move(*out));
    }
  });
  struct Join {
    std::atomic<bool>& stop;
    std::thread& t;
    ~Join() { stop = true; t.join(); }
  } join{stop, server_thread};
  std::map<std::string, std::function<void(const std::string&)>> check = {
      {"status", [&](const std::string& out) { EXPECT_EQ(json::parse(out)["daemon_pid"], daemon_.pid()); }},
      {"topics", [](const std::string& out) { EXPECT_EQ(json::parse(out).at(0)["name"], "readings"); }},
      {"topic", [](const std::string& out) { EXPECT_EQ(json::parse(out)["publishers"].size(), 1u); }},
      {"regions", [](const std::string& out) { EXPECT_EQ(json::parse(out).at(0)["topic"], "readings"); }},
      {"clients", [](const std::string& out) { EXPECT_GE(json::parse(out).size(), 2u); }},
      {"region", [](const std::string& out) { EXPECT_EQ(json::parse(out)["topic"]["name"], "readings"); }},
      {"echo", [](const std::string& out) { EXPECT_EQ(json_lines(out).at(0)["message"]["seq"], "1000"); }},
      {"hz", [](const std::string& out) { EXPECT_TRUE(json_lines(out).at(0).contains("rate_hz")); }},
      {"pub",
       [&](const std::string& out) {
         EXPECT_EQ(out, "");
         auto got = sub.take();
         ASSERT_TRUE(got) << got.name();
         EXPECT_EQ(got->root().getSeq(), 4242u);
       }},
      {"snapshot", [](const std::string& out) { EXPECT_GE(json::parse(out)["messages"].get<int>(), 2); }},
      {"dump", [](const std::string& out) { EXPECT_EQ(json::parse(out)["topic"], "readings"); }},
      {"metrics", [](const std::string& out) { EXPECT_EQ(json::parse(out).at(0)["publishers"].at(0)["published"], 2); }},
      {"top", [](const std::string& out) { EXPECT_EQ(json_lines(out).at(0)["topics"].at(0)["topic"], "readings"); }},
      {"record", [](const std::string& out) { EXPECT_EQ(json::parse(out)["topics"].at(0)["topic"], "readings"); }},
      {"log", [](const std::string& out) { EXPECT_EQ(json::parse(out)["kind"], "recording"); }},
      {"replay", [](const std::string& out) { EXPECT_EQ(json::parse(out)["messages"], 0); }},
      {"services", [](const std::string& out) { EXPECT_EQ(json::parse(out).at(0)["servers_alive"], 1); }},
      {"service", [](const std::string& out) { EXPECT_EQ(json::parse(out)["servers"].size(), 1u); }},
      {"call", [](const std::string& out) { EXPECT_EQ(json_lines(out).at(0)["hex"], "6869"); }},
  };
  const std::string rec = (daemon_.dir() / "rec").string();
  for (std::string command : kEveryCommand) {
    SCOPED_TRACE(command);
    if (auto at = command.find("{snap}"); at != std::string::npos) command.replace(at, 6, snap);
    if (auto at = command.find("{rec}"); at != std::string::npos) command.replace(at, 5, rec);
    if (auto at = command.find("{dir}"); at != std::string::npos) command.replace(at, 5, service_dir.string());
    CliRun r = shmbus_cli(command + globals_after());
    ASSERT_EQ(r.exit_code(), 0) << r.err;
    ASSERT_TRUE(check.contains(first_word(command)));
    try {
      check[first_word(command)](r.out);
    } catch (const json::exception& e) {
      ADD_FAILURE() << "not JSON: " << e.what() << "\n" << r.out;
    }
  }
}

TEST_F(CliGlobalOptions, EveryCommandsHelpListsTheGlobalOptions) {
  for (const char* command : {"status", "topics", "topic info", "regions", "clients", "region inspect", "echo",
                                     "hz", "pub", "snapshot", "dump", "record", "replay", "log info",
                                     "services", "service info", "call"}) {
    SCOPED_TRACE(command);
    CliRun help = shmbus_cli(std::string(command) + " --help");
    EXPECT_EQ(help.exit_code(), 0) << help.err;
    for (const char* option : {"--json", "--bus", "--socket"}) EXPECT_NE(help.out.find(option), std::string::npos) << help.out;
  }
}

TEST_F(CliGlobalOptions, BusBeforeOrAfterTheSubcommandChoosesTheDaemon) {
  const std::string bus = "cli-test-no-daemon-" + std::to_string(getpid());
  for (const std::string& args : {"status --bus " + bus, "--bus " + bus + " status", "topics --json --bus " + bus}) {
    SCOPED_TRACE(args);
    CliRun r = shmbus_cli(args);
    EXPECT_EQ(r.exit_code(), 1);
    EXPECT_NE(r.err.find(bus + ".sock"), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  // And --socket after the subcommand wins over the bus's default socket.
  CliRun r = shmbus_cli("status --bus " + bus + " --socket " + daemon_.socket().string());
  EXPECT_EQ(r.exit_code(), 0) << r.err;
}

TEST_F(CliGlobalOptions, AWrongCommandLineExitsTwoWithOneLine) {
  for (const char* args : {"frobnicate", "status --nosuch", "topic info", "echo", "hz readings --duration soon"}) {
    SCOPED_TRACE(args);
    CliRun r = shmbus_cli(args);
    EXPECT_EQ(r.exit_code(), 2) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find("--help"), std::string::npos) << r.err;
  }
  // A command that ran and failed is 1: no such topic.
  CliRun r = shmbus_cli("topic info nosuch --socket " + daemon_.socket().string());
  EXPECT_EQ(r.exit_code(), 1) << r.err;
}

// --version names the project version and the two versions that decide compatibility, the
// same ones a region's header and the daemon's status report.
TEST_F(CliGlobalOptions, VersionOfBothBinariesNamesLayoutAndProtocol) {
  CliRun status = shmbus_cli("status --json --socket " + daemon_.socket().string());
  ASSERT_EQ(status.exit_code(), 0) << status.err;
  CliRun inspect = shmbus_cli("region inspect readings --json --socket " + daemon_.socket().string());
  ASSERT_EQ(inspect.exit_code(), 0) << inspect.err;
  const std::string versions = "(region layout " + std::to_string(json::parse(inspect.out)["header"]["layout_version"].get<int>()) +
                               ", control protocol " + std::to_string(json::parse(status.out)["protocol_version"].get<int>()) + ")";
  for (const auto& [program, name] : {std::pair<std::string, std::string>{SHMBUS_CLI_PATH, "shmbus"}, {SHMBUSD_BINARY, "shmbusd"}}) {
    CliRun v = test::run_program(program, "--version");
    EXPECT_EQ(v.exit_code(), 0) << v.err;
    EXPECT_EQ(v.out, name + " " + SHMBUS_PROJECT_VERSION + " " + versions + "\n");
  }
}

}  // namespace
}  // namespace shmbus
