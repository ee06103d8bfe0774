// The real `shmbus` binary against a real shmbusd, with real publisher and subscriber
// processes connected through the daemon.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "cli_run.hpp"
#include "daemon_harness.hpp"
#include "shmbus/client.hpp"
#include "shmbus/shmbus.hpp"
#include "test_messages.capnp.h"

namespace shmbus {
namespace {

using nlohmann::json;
using test::shmbus_cli;

class CliDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    daemon_.start();
    socket_ = "--socket " + daemon_.socket().string() + " ";
  }
  void TearDown() override {
    for (int fd : release_) (void)!write(fd, "x", 1);
    for (pid_t p : children_) shmbusd::test::wait_exit(p);
    daemon_.kill_now(SIGTERM);
    std::filesystem::remove_all(daemon_.dir());
  }
  ClientOptions options() {
    ClientOptions o;
    o.socket = daemon_.socket();
    return o;
  }
  // A child process connected through the daemon: publishes `count` readings, then (for
  // `hold`) a subscriber takes one and keeps it until the test releases it. Returns its pid
  // once everything is in place.
  pid_t start_client(int count, bool hold) {
    int ready[2], done[2];
    EXPECT_EQ(pipe(ready), 0);
    EXPECT_EQ(pipe(done), 0);
    pid_t pid = fork();
    if (pid == 0) {
      Client client(options());
      TopicConfig c = typed_topic<shmbus::test::Reading>("readings");
      c.size_classes = {{512, 32}};
      c.history_depth = 8;
      c.queue_depth = 8;
      Topic topic = client.open_topic(c, Role::publisher);
      Publisher<shmbus::test::Reading> pub(topic);
      client.register_publisher(pub.raw());
      std::optional<Subscriber<shmbus::test::Reading>> sub;
      if (hold) {
        sub.emplace(client.open_topic("readings", Role::subscriber));
        client.register_subscriber(sub->raw());
      }
      for (int i = 0; i < count; ++i) {
        auto loan = pub.loan();
        loan.init().setSeq(1000 + static_cast<std::uint64_t>(i));
        if (!pub.publish(loan).ok()) _exit(2);
      }
      std::optional<Sample<shmbus::test::Reading>> held;
      if (hold) {
        auto s = sub->take();
        if (!s) _exit(3);
        held.emplace(std::move(s.value()));
      }
      char c1 = 1;
      (void)!write(ready[1], &c1, 1);
      (void)!read(done[0], &c1, 1);
      _exit(0);
    }
    char c = 0;
    EXPECT_EQ(read(ready[0], &c, 1), 1);
    children_.push_back(pid);
    release_.push_back(done[1]);
    return pid;
  }

  shmbusd::test::DaemonProcess daemon_{shmbusd::test::make_temp_dir("cli")};
  std::string socket_;
  std::vector<pid_t> children_;
  std::vector<int> release_;
};

TEST_F(CliDaemonTest, StatusTopicsClientsAndTopicInfo) {
  pid_t client = start_client(3, /*hold=*/true);
  test::CliRun status = shmbus_cli(socket_ + "--json status");
  ASSERT_EQ(status.exit_code(), 0) << status.err;
  json s = json::parse(status.out);
  EXPECT_EQ(s["daemon_pid"], daemon_.pid());
  EXPECT_EQ(s["topics"], 1);
  EXPECT_GE(s["clients"].get<int>(), 2);  // the child, and the CLI itself

  test::CliRun topics = shmbus_cli(socket_ + "--json topics");
  ASSERT_EQ(topics.exit_code(), 0) << topics.err;
  json t = json::parse(topics.out);
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0]["name"], "readings");
  EXPECT_NE(t[0]["type"].get<std::string>().find("Reading"), std::string::npos);
  EXPECT_EQ(t[0]["published"], 3);

  test::CliRun info = shmbus_cli(socket_ + "--json topic info readings");
  ASSERT_EQ(info.exit_code(), 0) << info.err;
  json i = json::parse(info.out);
  ASSERT_EQ(i["publishers"].size(), 1u);
  ASSERT_EQ(i["subscribers"].size(), 1u);
  EXPECT_EQ(i["publishers"][0]["pid"], client);
  EXPECT_EQ(i["publishers"][0]["messages"], 3);
  EXPECT_EQ(i["subscribers"][0]["pid"], client);
  EXPECT_EQ(i["subscribers"][0]["chunks_held"], 1);  // the sample the child holds
  EXPECT_EQ(i["pool"][0]["held"], 1);

  test::CliRun clients = shmbus_cli(socket_ + "--json clients");
  ASSERT_EQ(clients.exit_code(), 0) << clients.err;
  bool found = false;
  json client_list = json::parse(clients.out);
  for (const auto& c : client_list) {
    if (c["pid"] == client) {
      found = true;
      EXPECT_EQ(c["publishes"][0]["topic"], "readings");
      EXPECT_EQ(c["subscribes"][0]["chunks_held"], 1);
    }
  }
  EXPECT_TRUE(found) << clients.out;

  test::CliRun regions = shmbus_cli(socket_ + "--json regions");
  ASSERT_EQ(regions.exit_code(), 0) << regions.err;
  EXPECT_EQ(json::parse(regions.out)[0]["topic"], "readings");

  test::CliRun inspect = shmbus_cli(socket_ + "--json region inspect readings");
  ASSERT_EQ(inspect.exit_code(), 0) << inspect.err;
  bool held_by_child = false;
  json region = json::parse(inspect.out);
  for (const auto& ch : region["chunks"]) {
    held_by_child |= ch["state"].get<std::string>().find("pid " + std::to_string(client)) != std::string::npos;
  }
  EXPECT_TRUE(held_by_child) << "child " << client << "\n" << inspect.out;
}

TEST_F(CliDaemonTest, EchoAndPubByTopicNameThroughTheRecordedSchema) {
  start_client(2, /*hold=*/false);
  test::CliRun echo = shmbus_cli(socket_ + "--json echo readings -n 2 --timeout 5");
  ASSERT_EQ(echo.exit_code(), 0) << echo.err;
  std::istringstream lines(echo.out);
  std::string line;
  std::vector<std::string> seqs;
  while (std::getline(lines, line)) seqs.push_back(json::parse(line)["message"]["seq"]);
  EXPECT_EQ(seqs, (std::vector<std::string>{"1000", "1001"}));

  Client me(options());
  Subscriber<shmbus::test::Reading> sub(me.open_topic("readings", Role::subscriber), {.with_history = false});
  test::CliRun pub = shmbus_cli(socket_ + "pub readings '(seq = 4242)'");
  ASSERT_EQ(pub.exit_code(), 0) << pub.err;
  auto got = sub.take();
  ASSERT_TRUE(got) << got.name();
  EXPECT_EQ(got->root().getSeq(), 4242u);
}

TEST_F(CliDaemonTest, UnknownTopicAndStoppedDaemonAreOneClearLine) {
  test::CliRun unknown = shmbus_cli(socket_ + "topic info nosuch");
  EXPECT_EQ(unknown.exit_code(), 1);
  EXPECT_NE(unknown.err.find("no topic 'nosuch'"), std::string::npos) << unknown.err;
  daemon_.kill_now(SIGTERM);
  test::CliRun down = shmbus_cli(socket_ + "status");
  EXPECT_EQ(down.exit_code(), 1);
  EXPECT_NE(down.err.find(daemon_.socket().string()), std::string::npos) << down.err;
  EXPECT_NE(down.err.find("start it with"), std::string::npos) << down.err;
  EXPECT_EQ(std::count(down.err.begin(), down.err.end(), '\n'), 1) << down.err;
}

// A region file path given to a command that subscribes: the daemon serves the file (it holds
// a lease on it), so the CLI goes through the daemon instead of opening the file for writing,
// which would make the daemon revoke the region for everybody.
TEST(CliServedFile, EchoOfAServedRegionFileGoesThroughTheDaemonAndRevokesNothing) {
  shmbusd::test::DaemonProcess daemon{shmbusd::test::make_temp_dir("cli-file"), {"--default-backing", "file"}};
  daemon.start();
  ClientOptions o;
  o.socket = daemon.socket();
  Client client(o);
  TopicConfig c;
  c.name = "served";
  c.size_classes = {{256, 32}};
  c.queue_depth = 8;
  c.history_depth = 4;
  Topic topic = client.open_topic(c, Role::publisher);
  RawPublisher pub = client.publisher(topic);
  const std::string text = "hello from a served file";
  ASSERT_TRUE(pub.publish_copy(std::as_bytes(std::span<const char>(text.data(), text.size()))).ok());
  std::filesystem::path file;
  bool leased = false;
  for (int i = 0; i < 150 && !leased; ++i) {
    for (const TopicListing& l : client.list_topics()) {
      if (l.config.name == "served") file = l.path, leased = l.leased;
    }
    if (!leased) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(leased) << "the daemon holds no lease on the topic's file";
  ASSERT_TRUE(Topic::file_is_served(file));

  test::CliRun echo = shmbus_cli("--socket " + daemon.socket().string() + " echo " + file.string() + " -n 1 --timeout 5");
  EXPECT_EQ(echo.exit_code(), 0) << echo.err;
  std::string hex;  // a raw topic's messages are echoed in hex
  for (unsigned char ch : text) hex += "0123456789abcdef"[ch >> 4], hex += "0123456789abcdef"[ch & 15];
  EXPECT_NE(echo.out.find(hex), std::string::npos) << echo.out;
  EXPECT_FALSE(topic.region_info().revoked);
  EXPECT_TRUE(pub.publish_copy(std::as_bytes(std::span<const char>(text.data(), text.size()))).ok())
      << "the publisher lost its region";
  for (const TopicListing& l : client.list_topics()) EXPECT_FALSE(l.revoked) << l.config.name;
}

}  // namespace
}  // namespace shmbus
