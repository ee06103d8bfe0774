// shmbus region inspect DIR and shmbus topic info NAME on a durable log: segments with their
// sequence and time ranges and sizes, named readers with their positions, and (through the
// daemon) retention and flush settings; text and --json.
#include <gtest/gtest.h>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include <fstream>

#include "cli_run.hpp"
#include "daemon_harness.hpp"
#include "shmbus/durable.hpp"

namespace shmbus {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// 3000 messages in 64 KiB segments, and a named reader "audit" whose stored position is 100
// (it stores, at each next(), the position past what it returned before).
void fill_log(const fs::path& logs) {
  DurableConfig c;
  c.directory = logs;
  c.topic = "ticks";
  c.segment_size = 64 * 1024;
  DurableAppender log(c);
  std::vector<std::byte> m(40, std::byte{3});
  for (int i = 0; i < 3000; ++i) ASSERT_TRUE(log.append(m)) << log.last_error();
  DurableReader audit = DurableReader::named(logs, "ticks", "audit");
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(audit.next());
  ASSERT_EQ(audit.next().code(), Errc::ok);  // stores 100: past the 100 returned before
}

TEST(DurableInspect, RegionInspectOfALogDirectoryShowsSegmentsRangesSizesAndNamedReaders) {
  fs::path dir = shmbusd::test::make_temp_dir("inspect-log");
  fill_log(dir / "logs");
  std::vector<DurableSegmentInfo> segs = list_durable_segments(dir / "logs", "ticks");
  ASSERT_GT(segs.size(), 1u);

  test::CliRun r = test::shmbus_cli("--json region inspect " + (dir / "logs" / "ticks").string());
  ASSERT_EQ(r.exit_code(), 0) << r.err;
  json j = json::parse(r.out);
  ASSERT_EQ(j["segments"].size(), segs.size());
  for (std::size_t i = 0; i < segs.size(); ++i) {
    EXPECT_EQ(j["segments"][i]["first_sequence"], segs[i].first_sequence);
    EXPECT_EQ(j["segments"][i]["next_sequence"], segs[i].next_sequence);
    EXPECT_EQ(j["segments"][i]["first_time_ns"], segs[i].first_time_ns);
    EXPECT_EQ(j["segments"][i]["last_time_ns"], segs[i].last_time_ns);
    EXPECT_EQ(j["segments"][i]["size_bytes"], 65536u);
  }
  EXPECT_EQ(j["segments"][0]["last_sequence"], segs[1].first_sequence - 1);
  EXPECT_EQ(j["next_sequence"], 3000u);
  ASSERT_EQ(j["named_readers"].size(), 1u);
  EXPECT_EQ(j["named_readers"][0]["name"], "audit");
  EXPECT_EQ(j["named_readers"][0]["position"], 100u);
  EXPECT_EQ(j["named_readers"][0]["behind"], 2900u);
  EXPECT_FALSE(j.contains("retention")) << "only the daemon knows a log's retention";

  test::CliRun text = test::shmbus_cli("region inspect " + (dir / "logs" / "ticks").string());
  ASSERT_EQ(text.exit_code(), 0) << text.err;
  EXPECT_NE(text.out.find("durable topic 'ticks'"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("00000000000000000000.log"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("audit"), std::string::npos) << text.out;
  fs::remove_all(dir);
}

TEST(DurableInspect, ATruncatedSegmentIsShownByNameBetweenTheOthersInRegionInspectAndLogInfo) {
  fs::path dir = shmbusd::test::make_temp_dir("inspect-cut");
  fill_log(dir / "logs");
  std::vector<DurableSegmentInfo> segs = list_durable_segments(dir / "logs", "ticks");
  ASSERT_GT(segs.size(), 2u);
  ASSERT_EQ(::truncate(segs[1].path.c_str(), 4096), 0);
  const std::string log_dir = (dir / "logs" / "ticks").string();
  for (const std::string cmd : {"--json region inspect ", "--json log info "}) {
    test::CliRun r = test::shmbus_cli(cmd + log_dir);
    ASSERT_EQ(r.exit_code(), 0) << cmd << r.err;
    json j = json::parse(r.out);
    ASSERT_EQ(j["segments"].size(), segs.size()) << cmd;
    for (std::size_t i = 0; i < segs.size(); ++i) {
      EXPECT_EQ(j["segments"][i]["first_sequence"], segs[i].first_sequence) << cmd;
      EXPECT_EQ(j["segments"][i].contains("damage"), i == 1) << cmd << " segment " << i;
    }
    const std::string damage = j["segments"][1]["damage"];
    EXPECT_NE(damage.find(segs[1].path.filename().string()), std::string::npos) << damage;
    EXPECT_NE(damage.find("truncated"), std::string::npos) << damage;
    EXPECT_EQ(j["segments"][2]["next_sequence"], segs[2].next_sequence) << cmd;
  }
  test::CliRun text = test::shmbus_cli("log info " + log_dir);
  ASSERT_EQ(text.exit_code(), 0) << text.err;
  EXPECT_NE(text.out.find("DAMAGED"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("damaged: durable segment " + segs[1].path.string()), std::string::npos) << text.out;
  fs::remove_all(dir);
}

TEST(DurableInspect, TopicInfoOfADeclaredLogAddsTheDaemonsRetentionAndFlushSettings) {
  fs::path dir = shmbusd::test::make_temp_dir("inspect-daemon");
  fs::path conf = dir / "shmbusd.toml";
  std::ofstream(conf) << "[[durable]]\nname = \"ticks\"\ndirectory = \"" << (dir / "logs").string()
                      << "\"\nsegment_size = 65536\nmax_segments = 40\nmax_age_s = 3600\nflush = \"interval\"\n"
                         "flush_interval_ms = 20\n";
  shmbusd::test::DaemonProcess daemon(dir, {"--config", conf.string()});
  daemon.start();
  fill_log(dir / "logs");
  const std::string socket = "--socket " + daemon.socket().string() + " ";

  test::CliRun r = test::shmbus_cli(socket + "--json topic info ticks");
  ASSERT_EQ(r.exit_code(), 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["retention"]["max_segments"], 40u);
  EXPECT_EQ(j["retention"]["max_age_s"], 3600);
  EXPECT_EQ(j["retention"]["max_bytes"], 0u);
  EXPECT_EQ(j["flush"]["mode"], "interval");
  EXPECT_EQ(j["flush"]["interval_ms"], 20);
  EXPECT_EQ(j["next_sequence"], 3000u);
  EXPECT_EQ(j["named_readers"][0]["position"], 100u);

  test::CliRun text = test::shmbus_cli(socket + "topic info ticks");
  ASSERT_EQ(text.exit_code(), 0) << text.err;
  EXPECT_NE(text.out.find("retention (by the daemon): age 3600 s, size no limit, segments 40"), std::string::npos)
      << text.out;
  EXPECT_NE(text.out.find("flush: interval"), std::string::npos) << text.out;

  test::CliRun none = test::shmbus_cli(socket + "topic info nothing");
  EXPECT_NE(none.exit_code(), 0);
  EXPECT_NE(none.err.find("no topic 'nothing'"), std::string::npos) << none.err;
  daemon.kill_now(SIGTERM);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace shmbus
