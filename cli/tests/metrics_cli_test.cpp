// `shmbus metrics`: the counters of real publisher and subscriber processes, read daemonless
// from a region directory and through a real shmbusd, printed in the Prometheus text format
// that promtool (Debian's prometheus package) accepts.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "cli_run.hpp"
#include "daemon_harness.hpp"
#include "shmbus/client.hpp"
#include "shmbus/shmbus.hpp"

namespace shmbus {
namespace {

using test::run_program;
using test::shmbus_cli;

constexpr const char* kPromtool = "/usr/bin/promtool";

// promtool's verdict on `text` (its lint included): exit status and what it said.
test::CliRun promtool_check(const std::string& text, const std::filesystem::path& dir) {
  std::filesystem::path file = dir / "scrape.prom";
  std::ofstream(file) << text;
  return run_program(kPromtool, "check metrics < " + file.string());
}

// A child that registers a subscriber (which never takes) and a publisher on `topic`, tries
// `attempts` publishes of 24 bytes, then keeps both slots until `release` is readable.
pid_t spawn_refused_publisher(const Topic& topic, int attempts, int release_fd, int ready_fd) {
  pid_t pid = fork();
  if (pid == 0) {
    Topic mine = Topic::open_fd(topic.fd());
    RawSubscriber sub(mine);
    RawPublisher pub(mine);
    std::vector<std::byte> bytes(24);
    for (int i = 0; i < attempts; ++i) (void)pub.publish_copy(bytes);
    char c = 1;
    if (write(ready_fd, &c, 1) != 1) _exit(3);
    (void)!read(release_fd, &c, 1);
    _exit(0);
  }
  return pid;
}

std::string sample(const std::string& family, const std::string& labels) { return family + "{" + labels + "} "; }

TEST(MetricsCli, DaemonlessCountsWhatAProcessPublishedAndWasRefusedAndPromtoolAcceptsIt) {
  ASSERT_TRUE(std::filesystem::exists(kPromtool)) << "promtool missing: install Debian's prometheus package";
  std::filesystem::path dir = shmbusd::test::make_temp_dir("metrics-cli");
  TopicConfig c;
  c.name = "camera \"front\" \\ raw";  // label values must be escaped
  c.size_classes = {{64, 32}};
  c.queue_depth = 4;
  c.policy = SlowSubscriberPolicy::fail_publish;
  RegionOptions o;
  o.backing = RegionOptions::Backing::file;
  o.directory = dir;
  o.bus_name = "metrics-bus";
  Topic topic = Topic::create(c, o);
  int release[2], ready[2];
  ASSERT_EQ(pipe(release), 0);
  ASSERT_EQ(pipe(ready), 0);
  pid_t child = spawn_refused_publisher(topic, 10, release[0], ready[1]);
  char ch;
  ASSERT_EQ(read(ready[0], &ch, 1), 1);

  test::CliRun r = shmbus_cli("metrics --dir " + dir.string());
  EXPECT_EQ(r.exit_code(), 0) << r.err;
  const std::string topic_labels = "bus=\"metrics-bus\",topic=\"camera \\\"front\\\" \\\\ raw\"";
  const std::string pub = topic_labels + ",publisher=\"0\",pid=\"" + std::to_string(child) + "\"";
  const std::string sub = topic_labels + ",subscriber=\"0\",pid=\"" + std::to_string(child) + "\"";
  EXPECT_NE(r.out.find(sample("shmbus_topic_published_messages_total", topic_labels) + "4\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(sample("shmbus_publisher_published_messages_total", pub) + "4\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(sample("shmbus_publisher_published_bytes_total", pub) + "96\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(sample("shmbus_publisher_lost_messages_total", pub + ",reason=\"refused\"") + "6\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(sample("shmbus_subscriber_taken_messages_total", sub) + "0\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(sample("shmbus_subscriber_backlog_messages", sub) + "4\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(sample("shmbus_pool_chunks", topic_labels + ",size_class=\"64\",state=\"queued\"") + "4\n"), std::string::npos) << r.out;
  test::CliRun check = promtool_check(r.out, dir);
  EXPECT_EQ(check.exit_code(), 0) << check.out << check.err;

  // top: one frame with the topic's row; its drops are the 6 refusals, 4 of 32 chunks queued.
  test::CliRun top = shmbus_cli("top --once --interval 0.1 --dir " + dir.string());
  EXPECT_EQ(top.exit_code(), 0) << top.err;
  std::string row = top.out.substr(std::min(top.out.find("camera"), top.out.size()));
  row = row.substr(0, row.find('\n'));
  EXPECT_NE(row.find(" 6 "), std::string::npos) << top.out;
  EXPECT_NE(row.find("4/32 (12%)"), std::string::npos) << top.out;
  EXPECT_EQ(top.out.find("\x1b["), std::string::npos) << "no ANSI codes with --once";

  // A region file that is not one: named on stderr, exit 1, and the good topic still printed.
  std::ofstream(dir / "junk.shmbus") << "not a region";
  test::CliRun bad = shmbus_cli("metrics --dir " + dir.string());
  EXPECT_EQ(bad.exit_code(), 1);
  EXPECT_NE(bad.err.find("junk.shmbus"), std::string::npos) << bad.err;
  EXPECT_NE(bad.out.find(sample("shmbus_publisher_published_messages_total", pub) + "4\n"), std::string::npos);

  (void)!write(release[1], "x", 1);
  EXPECT_EQ(shmbusd::test::wait_exit(child), 0);
  for (int fd : {release[0], release[1], ready[0], ready[1]}) close(fd);
  std::filesystem::remove_all(dir);
}

TEST(MetricsCli, ThroughTheDaemonEveryTopicIsListedAndPromtoolAcceptsIt) {
  shmbusd::test::DaemonProcess daemon(shmbusd::test::make_temp_dir("metrics-cli-d"));
  daemon.start();
  ClientOptions o;
  o.socket = daemon.socket();
  {
    Client client(o);
    TopicConfig c;
    c.name = "metrics/through-daemon";
    c.size_classes = {{128, 32}};
    c.queue_depth = 8;
    Topic topic = client.open_topic(c, Role::publisher);
    RawPublisher pub(topic);
    client.register_publisher(pub);
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(pub.publish_copy(std::vector<std::byte>(100)).ok());
    test::CliRun r = shmbus_cli("metrics --socket " + daemon.socket().string());
    EXPECT_EQ(r.exit_code(), 0) << r.err;
    const std::string labels = "bus=\"default\",topic=\"metrics/through-daemon\",publisher=\"0\",pid=\"" + std::to_string(getpid()) + "\"";
    EXPECT_NE(r.out.find(sample("shmbus_publisher_published_bytes_total", labels) + "300\n"), std::string::npos) << r.out;
    test::CliRun check = promtool_check(r.out, daemon.dir());
    EXPECT_EQ(check.exit_code(), 0) << check.out << check.err;
    // A name the daemon does not know: one line naming it, exit 1.
    test::CliRun missing = shmbus_cli("metrics no-such-topic --socket " + daemon.socket().string());
    EXPECT_EQ(missing.exit_code(), 1);
    EXPECT_NE(missing.err.find("no-such-topic"), std::string::npos) << missing.err;
  }
  daemon.kill_now(SIGTERM);
  std::filesystem::remove_all(daemon.dir());
}

}  // namespace
}  // namespace shmbus
