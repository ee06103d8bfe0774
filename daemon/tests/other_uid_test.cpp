// A second uid against a "system" daemon, through the real binaries: the `shmbus` CLI and the
// telemetry_sub example run as uid 65534 (setpriv) find the system daemon's socket without
// --socket, and are admitted or refused by the access rules with messages that say what
// happened. The system directory is the test's own (SHMBUS_SYSTEM_RUNTIME_DIR), never /run.
#include <sys/stat.h>

#include "daemon_harness.hpp"
#include "other_uid.hpp"
#include "shmbus/client.hpp"
#include "example_util.hpp"
#include "telemetry_topic.hpp"

namespace shmbusd::test {
namespace {

// The telemetry example's topic may be subscribed to by anyone and published (so created) by
// root only; secret* is root's alone.
constexpr const char* kRules =
    "[[access]]\n"
    "topic = \"telemetry*\"\n"
    "publish = [\"uid:0\"]\n"
    "subscribe = [\"*\"]\n"
    "\n"
    "[[access]]\n"
    "topic = \"secret*\"\n"
    "publish = [\"uid:0\"]\n"
    "subscribe = [\"uid:0\"]\n";

// A daemon serving the test's system directory <scratch>/run, and the environment of a client
// of another uid: no --socket, a per-user directory without a daemon, the same system directory.
struct SystemBus {
  std::filesystem::path scratch = make_temp_dir("other-uid");
  std::filesystem::path run = scratch / "run";
  std::filesystem::path config = scratch / "shmbusd.toml";
  std::unique_ptr<DaemonProcess> daemon;

  explicit SystemBus(const std::string& extra_config = "") {
    chmod(scratch.c_str(), 0755);  // like / and /run: every user may pass through
    std::ofstream(config) << extra_config << kRules;
    daemon = std::make_unique<DaemonProcess>(run, std::vector<std::string>{"--config", config.string()},
                                             std::vector<std::string>{"SHMBUS_SYSTEM_RUNTIME_DIR=" + run.string()});
    daemon->start();
  }
  ~SystemBus() {
    daemon.reset();
    std::filesystem::remove_all(scratch);
  }
  std::vector<std::string> env() const {
    return {"PATH=/usr/bin:/bin", "SHMBUS_SYSTEM_RUNTIME_DIR=" + run.string(),
            "XDG_RUNTIME_DIR=" + (scratch / "xdg-of-uid-65534").string()};
  }
  std::string own_socket() const { return (scratch / "xdg-of-uid-65534" / "shmbus" / "default.sock").string(); }
  Ran as_other_uid(std::vector<std::string> argv) const { return run_as_other_uid(scratch, std::move(argv), env()); }
};

TEST(OtherUid, FindsTheSystemDaemonWithoutSocketAndTheRulesAdmitIt) {
  if (std::string why = other_uid_unavailable(); !why.empty()) GTEST_SKIP() << why;
  SystemBus bus;
  struct stat dir {}, sock {};
  ASSERT_EQ(stat(bus.run.c_str(), &dir), 0);
  ASSERT_EQ(stat(bus.daemon->socket().c_str(), &sock), 0);
  EXPECT_EQ(dir.st_mode & 07777, 0755u) << "the system daemon's directory lets every user reach the socket";
  EXPECT_EQ(sock.st_mode & 0777, 0666u);

  shmbus::Client root(client_at(*bus.daemon));
  shmbus::Topic telemetry = root.open_topic(examples::telemetry_topic(), shmbus::Role::publisher);
  root.open_topic("secret-plans", shmbus::Role::publisher);

  Ran topics = bus.as_other_uid({SHMBUS_CLI_BINARY, "topics"});
  EXPECT_EQ(topics.status, 0) << topics.err;
  EXPECT_NE(topics.out.find("telemetry"), std::string::npos) << topics.out;
  EXPECT_EQ(topics.out.find("secret-plans"), std::string::npos) << "listed a topic it may not use: " << topics.out;

  Ran sub = bus.as_other_uid({TELEMETRY_SUB_BINARY, "--count", "1", "--idle", "1"});
  EXPECT_NE(sub.out.find("subscriber: joined 'telemetry'"), std::string::npos) << sub.out << sub.err;
  EXPECT_EQ(sub.err, "");
}

TEST(OtherUid, ARuleRefusalNamesTheRuleTheRightAndTheUid) {
  if (std::string why = other_uid_unavailable(); !why.empty()) GTEST_SKIP() << why;
  SystemBus bus;
  shmbus::Client root(client_at(*bus.daemon));
  root.open_topic("secret-plans", shmbus::Role::publisher);

  Ran echo = bus.as_other_uid({SHMBUS_CLI_BINARY, "echo", "secret-plans"});
  EXPECT_EQ(echo.status, 1);
  EXPECT_EQ(echo.err, "shmbus: opening topic 'secret-plans': uid 65534 gid 65534 may not subscribe on topic "
                      "'secret-plans': refused by rule #2 (topic \"secret*\") at " +
                          bus.config.string() +
                          ":6: its 'subscribe' list has neither uid 65534 nor any of its groups\n");
}

TEST(OtherUid, ASubscribeOnlyUidCannotCreateATopic) {
  if (std::string why = other_uid_unavailable(); !why.empty()) GTEST_SKIP() << why;
  SystemBus bus;  // no "telemetry" topic yet: telemetry_sub would create it

  Ran sub = bus.as_other_uid({TELEMETRY_SUB_BINARY, "--count", "1", "--idle", "1"});
  EXPECT_EQ(sub.status, 1);
  EXPECT_EQ(sub.err, "subscriber: opening topic 'telemetry': uid 65534 gid 65534 may not create topic 'telemetry': "
                     "refused by rule #1 (topic \"telemetry*\") at " +
                         bus.config.string() +
                         ":1: its 'publish' list (the rule has no 'create' list, so publishers create) has neither "
                         "uid 65534 nor any of its groups\n");
  shmbus::Client root(client_at(*bus.daemon));
  EXPECT_TRUE(root.list_topics().empty()) << "the refused subscriber created a topic after all";
}

TEST(OtherUid, APermissionDeniedSocketIsNamedWithWhatToChange) {
  if (std::string why = other_uid_unavailable(); !why.empty()) GTEST_SKIP() << why;
  SystemBus bus("socket_dir_mode = 0o700\n");  // the operator closed it

  Ran topics = bus.as_other_uid({SHMBUS_CLI_BINARY, "topics"});
  EXPECT_EQ(topics.status, 1);
  EXPECT_EQ(topics.err, "shmbus: permission denied on socket " + bus.daemon->socket().string() +
                            ": uid 65534 may not reach it (the daemon's operator lets other users connect with "
                            "socket_dir_mode, or with socket_group and membership of that group, in shmbusd.toml; "
                            "its access rules then decide); no shmbusd at " +
                            bus.own_socket() + " (No such file or directory)\n");
}

// Every local user may connect to the system daemon, so one uid must not hold all its fds.
TEST(OtherUid, AUidOverItsConnectionLimitIsToldWhileRootStillGetsIn) {
  if (std::string why = other_uid_unavailable(); !why.empty()) GTEST_SKIP() << why;
  SystemBus bus("max_connections_per_uid = 1\n");
  shmbus::Client root(client_at(*bus.daemon));
  root.open_topic(examples::telemetry_topic(), shmbus::Role::publisher);

  pid_t holder = spawn_as_other_uid(bus.scratch, "holder", {TELEMETRY_SUB_BINARY, "--count", "1", "--idle", "10"}, bus.env());
  auto other_uid_connected = [&] {
    for (const shmbus::ClientListing& c : root.clients()) {
      if (c.uid == kOtherUid) return true;
    }
    return false;
  };
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!other_uid_connected() && std::chrono::steady_clock::now() < end) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_TRUE(other_uid_connected()) << slurp(bus.scratch / "holder.err");

  Ran second = bus.as_other_uid({SHMBUS_CLI_BINARY, "topics"});
  EXPECT_EQ(second.status, 1);
  EXPECT_EQ(second.err.rfind("shmbus: shmbusd at " + bus.daemon->socket().string() +
                                 " closed the connection before answering (its log says why, e.g. this uid holds "
                                 "max_connections_per_uid connections already)",
                             0),
            0u)
      << second.err;
  shmbus::Client root_again(client_at(*bus.daemon));  // root is exempt
  EXPECT_EQ(root_again.status().clients, 3u);

  kill(holder, SIGKILL);
  wait_exit(holder);
  end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (other_uid_connected() && std::chrono::steady_clock::now() < end) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  Ran after = bus.as_other_uid({SHMBUS_CLI_BINARY, "topics"});
  EXPECT_EQ(after.status, 0) << after.err;
}

}  // namespace
}  // namespace shmbusd::test
