// Durable topics declared in shmbusd's config: the daemon creates the log at start-up and
// applies its retention on its tick while a publisher (this test) appends.
#include <gtest/gtest.h>

#include <fstream>

#include "daemon_harness.hpp"
#include "options.hpp"
#include "shmbus/durable.hpp"

namespace {

using namespace shmbusd::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = 10s) {
  auto end = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

TEST(DurableDaemon, DeclaredLogIsCreatedAndItsRetentionAppliedOnTheTick) {
  fs::path dir = make_temp_dir("durable");
  fs::path logs = dir / "logs";
  fs::path conf = dir / "shmbusd.toml";
  std::ofstream(conf) << "[[durable]]\nname = \"ticks\"\ndirectory = \"" << logs.string()
                      << "\"\nsegment_size = 65536\nmax_segments = 2\n";
  DaemonProcess daemon(dir, {"--config", conf.string()});
  daemon.start();
  ASSERT_TRUE(eventually([&] { return fs::exists(logs / "ticks" / "00000000000000000000.log"); }))
      << "the daemon did not create the declared log";
  shmbus::DurableConfig c;
  c.directory = logs;
  c.topic = "ticks";
  c.segment_size = 65536;
  shmbus::DurableAppender log(c);
  std::vector<std::byte> payload(200, std::byte{7});
  for (int i = 0; i < 2000; ++i) ASSERT_TRUE(log.append(payload)) << log.last_error();
  EXPECT_TRUE(eventually([&] { return shmbus::list_durable_segments(logs, "ticks").size() <= 2; }))
      << shmbus::list_durable_segments(logs, "ticks").size() << " segments left";
  auto kept = shmbus::list_durable_segments(logs, "ticks");
  ASSERT_FALSE(kept.empty());
  EXPECT_EQ(kept.back().next_sequence, 2000u);  // the newest stays
  EXPECT_TRUE(log.append(payload));
  daemon.kill_now(SIGTERM);
  fs::remove_all(dir);
}

TEST(DurableDaemon, BadDurableTableIsRefusedNamingFileLineAndKey) {
  fs::path dir = make_temp_dir("durable-conf");
  fs::path conf = dir / "shmbusd.toml";
  std::ofstream(conf) << "bus = \"x\"\n[[durable]]\nname = \"ticks\"\ndirectory = \"/tmp/l\"\nmax_segmnts = 2\n";
  shmbusd::Options o;
  try {
    shmbusd::load_config_file(conf, o);
    ADD_FAILURE() << "a misspelt key was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(conf.string() + ":5: unknown key 'max_segmnts' in [[durable]]"),
              std::string::npos)
        << e.what();
  }
  std::ofstream(conf, std::ios::trunc) << "[[durable]]\nname = \"ticks\"\n";
  EXPECT_THROW(shmbusd::load_config_file(conf, o), std::runtime_error);
  std::ofstream(conf, std::ios::trunc) << "[[durable]]\nname = \"ticks\"\ndirectory = \"/tmp/l\"\nmax_age_s = 60\n";
  shmbusd::load_config_file(conf, o);
  ASSERT_EQ(o.durable.size(), 1u);
  EXPECT_EQ(o.durable[0].retention.max_age, std::chrono::seconds(60));
  fs::remove_all(dir);
}

}  // namespace
