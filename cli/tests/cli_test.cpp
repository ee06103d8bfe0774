// Drives the real `shmbus` binary against real region files, publishers and subscribers.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <sstream>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "shmbus/shmbus.hpp"
#include "cli_run.hpp"
#include "test_messages.capnp.h"

namespace shmbus {
namespace {

namespace fs = std::filesystem;

using test::CliRun;
using test::shmbus_cli;

int exit_code(const CliRun& r) { return r.exit_code(); }

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("shmbus-cli-" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    TopicConfig c = typed_topic<test::Reading>("readings");
    c.size_classes = {{512, 32}};
    c.queue_depth = 8;
    c.history_depth = 8;
    RegionOptions o;
    o.backing = RegionOptions::Backing::file;
    // The tests publish with `shmbus pub`, which exits, then read: without a daemon only a
    // region that holds the payload itself keeps an exited publisher's messages readable.
    o.payload_in_region = true;
    o.directory = dir_;
    topic_.emplace(Topic::create(c, o));
    file_ = topic_->path().string();
  }
  void TearDown() override {
    topic_.reset();
    fs::remove_all(dir_);
  }
  void publish(std::uint64_t seq, const std::string& body) {
    Publisher<test::Reading> pub(*topic_);
    auto loan = pub.loan();
    auto r = loan.init();
    r.setSeq(seq);
    r.setPublisher(7);
    r.setBody(kj::arrayPtr(reinterpret_cast<const kj::byte*>(body.data()), body.size()));
    ASSERT_TRUE(pub.publish(loan).ok());
  }

  fs::path dir_;
  std::optional<Topic> topic_;
  std::string file_;
};

TEST_F(CliTest, RegionInspectShowsAChunkHeldByALiveSubscriberWithItsPid) {
  publish(1, "one");
  int ready[2], done[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(done), 0);
  pid_t child = fork();
  if (child == 0) {
    Topic t = Topic::open_file(file_);
    RawSubscriber sub(t);
    Result<RawSample> held = sub.take();
    char c = held ? 1 : 0;
    (void)!write(ready[1], &c, 1);
    (void)!read(done[0], &c, 1);  // hold it until the parent has looked
    _exit(0);
  }
  char c = 0;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  ASSERT_EQ(c, 1);
  CliRun r = shmbus_cli("--json region inspect " + file_);
  (void)!write(done[1], &c, 1);
  waitpid(child, nullptr, 0);
  ASSERT_EQ(exit_code(r), 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["header"]["layout_version"], 7);  // bus/layout.hpp kLayoutVersion
  EXPECT_EQ(j["header"]["kind"], "file");
  EXPECT_EQ(j["topic"]["name"], "readings");
  EXPECT_EQ(j["topic"]["published"], 1);
  ASSERT_EQ(j["pool"].size(), 1u);
  EXPECT_EQ(j["pool"][0]["held"], 1);
  ASSERT_EQ(j["payload_pools"].size(), 1u);  // payload_in_region: one pool, in the file
  EXPECT_EQ(j["payload_pools"][0]["where"], "this region");
  bool found = false;
  for (const auto& ch : j["chunks"]) {
    std::string state = ch["state"];
    if (state.find("held by subscriber") != std::string::npos && state.find("pid " + std::to_string(child)) != std::string::npos) found = true;
  }
  EXPECT_TRUE(found) << r.out;
  bool client = false;
  for (const auto& cl : j["clients"]) client |= cl["role"] == "subscriber" && cl["pid"] == child && cl["chunks"].size() == 1;
  EXPECT_TRUE(client) << r.out;
}

TEST_F(CliTest, EchoDecodesThroughTheRecordedSchema) {
  publish(42, "payload");
  CliRun r = shmbus_cli("--json echo " + file_ + " -n 1 --timeout 5");
  ASSERT_EQ(exit_code(r), 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["sequence"], 0);
  EXPECT_EQ(j["message"]["seq"], "42");  // 64-bit integers are strings in Cap'n Proto JSON
  EXPECT_EQ(j["message"]["publisher"], 7);
  std::string body;
  for (int b : j["message"]["body"]) body += static_cast<char>(b);
  EXPECT_EQ(body, "payload");
  CliRun text = shmbus_cli("echo " + file_ + " -n 1 --timeout 5");
  EXPECT_NE(text.out.find("seq = 42"), std::string::npos) << text.out;
}

TEST_F(CliTest, PubParsesTextAndJsonThroughTheRecordedSchema) {
  Subscriber<test::Reading> sub(*topic_);
  CliRun r = shmbus_cli("pub " + file_ + " '(seq = 77, body = \"hi\")'");
  ASSERT_EQ(exit_code(r), 0) << r.err;
  CliRun j = shmbus_cli("--json pub " + file_ + " '{\"seq\": \"78\", \"publisher\": 3}'");
  ASSERT_EQ(exit_code(j), 0) << j.err;
  auto a = sub.take();
  ASSERT_TRUE(a) << a.name();
  EXPECT_EQ(a->root().getSeq(), 77u);
  EXPECT_EQ(kj::heapString(a->root().getBody().asChars()), "hi");
  auto b = sub.take();
  ASSERT_TRUE(b) << b.name();
  EXPECT_EQ(b->root().getSeq(), 78u);
  EXPECT_EQ(b->root().getPublisher(), 3u);
  CliRun bad = shmbus_cli("pub " + file_ + " '(nosuchfield = 1)'");
  EXPECT_NE(exit_code(bad), 0);
  EXPECT_NE(bad.err.find("nosuchfield"), std::string::npos) << bad.err;
}

TEST_F(CliTest, JsonPubRejectsAFieldTheTypeDoesNotHave) {
  Subscriber<test::Reading> sub(*topic_);
  CliRun typo = shmbus_cli("--json pub " + file_ + " '{\"seq\": \"1\", \"sensr\": \"typo\"}'");
  EXPECT_EQ(exit_code(typo), 1) << typo.err;
  EXPECT_NE(typo.err.find("unknown field 'sensr'"), std::string::npos) << typo.err;
  EXPECT_NE(typo.err.find("Reading"), std::string::npos) << typo.err;  // the type
  EXPECT_EQ(std::count(typo.err.begin(), typo.err.end(), '\n'), 1) << typo.err;
  EXPECT_EQ(sub.take().code(), Errc::no_data) << "a message with a misspelt field was published";

  // Inside a list of structs too, with where it is.
  TopicConfig c = typed_topic<test::Tree>("trees");
  RegionOptions o;
  o.backing = RegionOptions::Backing::file;
  o.payload_in_region = true;
  o.directory = dir_;
  Topic trees = Topic::create(c, o);
  CliRun nested = shmbus_cli("pub " + trees.path().string() + " --json '{\"value\": \"1\", \"children\": [{\"valeu\": \"2\"}]}'");
  EXPECT_EQ(exit_code(nested), 1) << nested.err;
  EXPECT_NE(nested.err.find("unknown field 'valeu' in 'children[0]'"), std::string::npos) << nested.err;
  CliRun good = shmbus_cli("pub " + trees.path().string() + " --json '{\"value\": \"1\", \"children\": [{\"value\": \"2\"}]}'");
  EXPECT_EQ(exit_code(good), 0) << good.err;
}

TEST_F(CliTest, AMessageTooLargeForTheTopicIsOneLineNamingTopicSizeAndLargestChunk) {
  const std::string body(2000, 'x');  // the topic's only chunk size is 512 bytes
  for (const char* json : {"", "--json "}) {
    SCOPED_TRACE(json);
    std::string bytes;  // Cap'n Proto's JSON has Data as an array of numbers
    for (char ch : body) bytes += (bytes.empty() ? "" : ",") + std::to_string(static_cast<int>(ch));
    std::string message = *json ? "'{\"body\": [" + bytes + "]}'" : "'(body = \"" + body + "\")'";
    CliRun r = shmbus_cli(std::string(json) + "pub " + file_ + " " + message);
    EXPECT_EQ(exit_code(r), 1) << r.err;
    EXPECT_NE(r.err.find("topic 'readings'"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("message too large"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("largest chunk 512 bytes"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("kNoChunk"), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  // A raw topic: the argument's bytes are the message.
  TopicConfig c;
  c.name = "raw/small";
  c.size_classes = {{64, 8}};
  RegionOptions o;
  o.backing = RegionOptions::Backing::file;
  o.directory = dir_;
  Topic raw = Topic::create(c, o);
  CliRun r = shmbus_cli("pub " + raw.path().string() + " " + std::string(100, 'y'));
  EXPECT_EQ(exit_code(r), 1) << r.err;
  EXPECT_NE(r.err.find("topic 'raw/small'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("cannot loan 100 bytes: message too large (largest chunk 64 bytes"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST_F(CliTest, AMessageThatDoesNotParseIsOneLineWithoutTheFailedCondition) {
  for (const char* message : {"'{\"seq\": \"x\"}'", "'{\"seq\": '"}) {
    SCOPED_TRACE(message);
    CliRun r = shmbus_cli("pub " + file_ + " --json " + message);
    EXPECT_EQ(exit_code(r), 1) << r.err;
    EXPECT_EQ(r.err.find("expected "), std::string::npos) << r.err;  // KJ_REQUIRE's "expected endPtr == ..."
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  CliRun number = shmbus_cli("pub " + file_ + " --json '{\"seq\": \"x\"}'");
  EXPECT_NE(number.err.find("valid number"), std::string::npos) << number.err;
}

TEST_F(CliTest, SnapshotThenDumpOffline) {
  for (std::uint64_t i = 0; i < 5; ++i) publish(100 + i, "m" + std::to_string(i));
  fs::path snap = dir_ / "snap.bin";
  CliRun s = shmbus_cli("snapshot " + file_ + " -o " + snap.string());
  ASSERT_EQ(exit_code(s), 0) << s.err;
  EXPECT_NE(s.out.find("saved 5 messages"), std::string::npos) << s.out;
  topic_.reset();
  fs::remove(file_);  // the dump needs nothing but the snapshot file
  CliRun d = shmbus_cli("--json dump " + snap.string());
  ASSERT_EQ(exit_code(d), 0) << d.err;
  nlohmann::json j = nlohmann::json::parse(d.out);
  EXPECT_EQ(j["topic"], "readings");
  ASSERT_EQ(j["messages"].size(), 5u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(j["messages"][i]["sequence"], i);
    EXPECT_EQ(j["messages"][i]["message"]["seq"], std::to_string(100 + i));
  }
}

TEST_F(CliTest, HzReportsTheRate) {
  std::atomic<bool> stop{false};
  std::thread publisher([&] {
    Publisher<test::Reading> pub(*topic_);
    while (!stop) {
      auto loan = pub.loan();
      loan.init().setSeq(1);
      (void)pub.publish(loan);
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
  });
  CliRun r = shmbus_cli("--json hz " + file_ + " --duration 2.5");
  stop = true;
  publisher.join();
  ASSERT_EQ(exit_code(r), 0) << r.err;
  std::istringstream lines(r.out);
  std::string line;
  double best = 0;
  while (std::getline(lines, line)) best = std::max(best, nlohmann::json::parse(line)["rate_hz"].get<double>());
  EXPECT_GT(best, 100.0) << r.out;
}

TEST_F(CliTest, BadInputIsOneClearLine) {
  CliRun missing = shmbus_cli("region inspect " + (dir_ / "nope.shmbus").string());
  EXPECT_EQ(exit_code(missing), 1);
  EXPECT_NE(missing.err.find("nope.shmbus"), std::string::npos) << missing.err;
  EXPECT_EQ(std::count(missing.err.begin(), missing.err.end(), '\n'), 1) << missing.err;

  fs::path foreign = dir_ / "foreign.shmbus";
  std::ofstream(foreign) << std::string(8192, 'x');
  CliRun f = shmbus_cli("region inspect " + foreign.string());
  EXPECT_EQ(exit_code(f), 1);
  EXPECT_NE(f.err.find("not a shmbus region"), std::string::npos) << f.err;

  CliRun daemonless = shmbus_cli("--bus cli-test-no-daemon echo some_topic -n 1");
  EXPECT_EQ(exit_code(daemonless), 1);
  EXPECT_NE(daemonless.err.find("cli-test-no-daemon.sock"), std::string::npos) << daemonless.err;
  EXPECT_NE(daemonless.err.find("shmbusd"), std::string::npos) << daemonless.err;

  CliRun nonsense = shmbus_cli("frobnicate");
  EXPECT_NE(exit_code(nonsense), 0);
  CliRun help = shmbus_cli("echo --help");
  EXPECT_EQ(exit_code(help), 0);
  EXPECT_NE(help.out.find("--count"), std::string::npos);
}

}  // namespace
}  // namespace shmbus
