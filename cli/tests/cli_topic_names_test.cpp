// Topic names with '/' ("camera/front", the docs' own example) reach the topic in every command
// that takes one, through a daemon (anonymous or file-backed regions) and, as a region file
// ("camera%front.shmbus"), with none.
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
using test::CliRun;
using test::shmbus_cli;

TopicConfig camera_front() {
  TopicConfig c = typed_topic<shmbus::test::Reading>("camera/front");
  c.size_classes = {{512, 32}};
  c.history_depth = 8;
  c.queue_depth = 8;
  return c;
}

void publish(Publisher<shmbus::test::Reading>& pub, std::uint64_t seq) {
  auto loan = pub.loan();
  loan.init().setSeq(seq);
  ASSERT_TRUE(pub.publish(loan).ok());
}

class CliSlashTopic : public ::testing::TestWithParam<const char*> {};

TEST_P(CliSlashTopic, EveryCommandReachesATopicWithASlashThroughTheDaemon) {
  shmbusd::test::DaemonProcess daemon{shmbusd::test::make_temp_dir("cli-slash"), {"--default-backing", GetParam()}};
  daemon.start();
  const std::string socket = " --socket " + daemon.socket().string();
  {
    Client client(shmbusd::test::client_at(daemon, false));
    Topic topic = client.open_topic(camera_front(), Role::publisher);
    Publisher<shmbus::test::Reading> pub(topic);
    client.register_publisher(pub.raw());
    publish(pub, 1000);
    Subscriber<shmbus::test::Reading> sub(client.open_topic("camera/front", Role::subscriber), {.with_history = false});

    CliRun echo = shmbus_cli("echo camera/front -n 1 --timeout 5 --json" + socket);
    ASSERT_EQ(echo.exit_code(), 0) << echo.err;
    EXPECT_EQ(json::parse(echo.out)["message"]["seq"], "1000");

    CliRun pubbed = shmbus_cli("pub camera/front '(seq = 7)'" + socket);
    ASSERT_EQ(pubbed.exit_code(), 0) << pubbed.err;
    auto got = sub.take();
    ASSERT_TRUE(got) << got.name();
    EXPECT_EQ(got->root().getSeq(), 7u);

    CliRun hz = shmbus_cli("hz camera/front --duration 1.2 --json" + socket);
    ASSERT_EQ(hz.exit_code(), 0) << hz.err;
    EXPECT_TRUE(json::parse(hz.out.substr(0, hz.out.find('\n'))).contains("rate_hz")) << hz.out;

    const std::string snap = (daemon.dir() / "front.snap").string();
    CliRun snapshot = shmbus_cli("snapshot camera/front -o " + snap + " --json" + socket);
    ASSERT_EQ(snapshot.exit_code(), 0) << snapshot.err;
    EXPECT_EQ(json::parse(snapshot.out)["topic"], "camera/front");

    CliRun inspect = shmbus_cli("region inspect camera/front --json" + socket);
    ASSERT_EQ(inspect.exit_code(), 0) << inspect.err;
    json region = json::parse(inspect.out);
    EXPECT_EQ(region["topic"]["name"], "camera/front");
    EXPECT_EQ(region["header"]["kind"], std::string(GetParam()) == "file" ? "file" : "anonymous");
  }
  daemon.kill_now(SIGTERM);
  std::filesystem::remove_all(daemon.dir());
}

INSTANTIATE_TEST_SUITE_P(Backing, CliSlashTopic, ::testing::Values("anonymous", "file"));

TEST(CliSlashTopicNoDaemon, ARegionFileOfASlashTopicWorksByPathAndTheNameGoesToTheDaemon) {
  std::filesystem::path dir = shmbusd::test::make_temp_dir("cli-slash-file");
  RegionOptions o;
  o.backing = RegionOptions::Backing::file;
  o.payload_in_region = true;  // the message outlives its publisher without a daemon
  o.directory = dir;
  {
    Topic topic = Topic::create(camera_front(), o);
    ASSERT_EQ(topic.path(), dir / "camera%front.shmbus");
    Publisher<shmbus::test::Reading> pub(topic);
    publish(pub, 42);
    const std::string file = topic.path().string();

    CliRun inspect = shmbus_cli("region inspect " + file + " --json");
    ASSERT_EQ(inspect.exit_code(), 0) << inspect.err;
    EXPECT_EQ(json::parse(inspect.out)["topic"]["name"], "camera/front");

    CliRun echo = shmbus_cli("echo " + file + " -n 1 --timeout 5 --json");
    ASSERT_EQ(echo.exit_code(), 0) << echo.err;
    EXPECT_EQ(json::parse(echo.out)["message"]["seq"], "42");
  }
  // With no daemon, the name is still a topic name: the error is about the daemon, not a file.
  const std::string bus = "cli-test-no-daemon-" + std::to_string(getpid());
  CliRun by_name = shmbus_cli("echo camera/front -n 1 --bus " + bus);
  EXPECT_EQ(by_name.exit_code(), 1);
  EXPECT_NE(by_name.err.find(bus + ".sock"), std::string::npos) << by_name.err;
  EXPECT_EQ(by_name.err.find("region file"), std::string::npos) << by_name.err;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace shmbus
