// Durable topics through the daemon: a client asks shmbusd for a log its [[durable]] tables
// declare (Bus.openDurable), gets the log's directory and flush policy under the access rules
// (publish = append, subscribe = read), and then appends and reads with no daemon on the path.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstring>
#include <fstream>

#include "daemon_harness.hpp"
#include "options.hpp"
#include "shmbus/client.hpp"
#include "shmbus/durable.hpp"

namespace {

using namespace shmbusd::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

struct LogUnderDaemon {
  fs::path dir = make_temp_dir("durable-client");
  fs::path logs = dir / "logs";
  fs::path conf = dir / "shmbusd.toml";
  explicit LogUnderDaemon(const std::string& extra) {
    std::ofstream(conf) << "[[durable]]\nname = \"ticks\"\ndirectory = \"" << logs.string()
                        << "\"\nsegment_size = 65536\nflush = \"every_n\"\nflush_every_n = 500\nmax_segments = 50\n"
                        << extra;
  }
  ~LogUnderDaemon() { fs::remove_all(dir); }
};

std::vector<std::byte> message(std::uint64_t i) {
  std::vector<std::byte> m(24 + i % 40);
  std::memcpy(m.data(), &i, sizeof i);
  return m;
}

// Forks a child that appends `count` messages through a daemon-obtained appender; returns its pid.
pid_t spawn_appender(const DaemonProcess& daemon, int count) {
  pid_t pid = fork();
  if (pid == 0) {
    try {
      shmbus::Client client(client_at(daemon));
      std::unique_ptr<shmbus::DurableAppender> log = client.open_durable_appender("ticks");
      for (int i = 0; i < count; ++i) {
        if (!log->append(message(static_cast<std::uint64_t>(i)))) _exit(2);
      }
      _exit(0);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "appender child: %s\n", e.what());
      _exit(1);
    }
  }
  return pid;
}

TEST(DurableThroughDaemon, AnAppenderProcessGetsTheDeclaredLogAndAnotherProcessReadsItBack) {
  LogUnderDaemon env("");
  DaemonProcess daemon(env.dir, {"--config", env.conf.string()});
  daemon.start();
  pid_t child = spawn_appender(daemon, 3000);  // 3000 messages of up to 64 B roll 64 KiB segments
  ASSERT_EQ(wait_exit(child), 0);

  shmbus::Client client(client_at(daemon));
  shmbus::DurableLogInfo info = client.durable_log("ticks", shmbus::Role::subscriber);
  EXPECT_EQ(info.directory, env.logs);
  EXPECT_EQ(info.segment_size, 65536u);
  EXPECT_EQ(info.flush.mode, shmbus::FlushPolicy::Mode::every_n);  // the operator's policy reaches clients
  EXPECT_EQ(info.flush.every_n, 500u);
  EXPECT_EQ(info.retention.max_segments, 50u);
  EXPECT_GT(shmbus::list_durable_segments(env.logs, "ticks").size(), 1u);

  shmbus::DurableReader r = client.open_durable_reader("ticks");
  for (std::uint64_t i = 0; i < 3000; ++i) {
    auto s = r.next();
    ASSERT_TRUE(s) << "message " << i << ": " << r.last_error();
    ASSERT_EQ(s->data.size(), message(i).size());
    std::uint64_t got = 0;
    std::memcpy(&got, s->data.data(), sizeof got);
    ASSERT_EQ(got, i);
    ASSERT_EQ(s->sequence, i);
  }
  EXPECT_EQ(r.next().code(), shmbus::Errc::no_data);

  shmbus::DurableReader from = client.open_durable_reader("ticks", shmbus::DurableStart::at_sequence(2500));
  auto s = from.next();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->sequence, 2500u);
  daemon.kill_now(SIGTERM);
}

TEST(DurableThroughDaemon, AppendNeedsThePublishRightAndReadTheSubscribeRightEachRefusalNamesTheRule) {
  LogUnderDaemon env("[[access]]\ntopic = \"ticks\"\npublish = [\"uid:4242\"]\nsubscribe = [\"*\"]\n");
  DaemonProcess daemon(env.dir, {"--config", env.conf.string()});
  daemon.start();
  shmbus::Client client(client_at(daemon));
  try {
    client.open_durable_appender("ticks");
    ADD_FAILURE() << "uid " << geteuid() << " got to append although the rule lets only uid 4242";
  } catch (const shmbus::Error& e) {
    EXPECT_EQ(e.code(), shmbus::Errc::access_denied) << e.what();
    EXPECT_NE(std::string(e.what()).find("may not publish on topic 'ticks': refused by rule #1"), std::string::npos)
        << e.what();
  }
  EXPECT_NO_THROW(client.open_durable_reader("ticks"));  // subscribe = ["*"]
  try {
    client.open_durable_reader("nope");
    ADD_FAILURE() << "a log the daemon does not declare was served";
  } catch (const shmbus::Error& e) {
    EXPECT_EQ(e.code(), shmbus::Errc::no_such_topic) << e.what();
    EXPECT_NE(std::string(e.what()).find("no durable topic 'nope'"), std::string::npos) << e.what();
  }
  daemon.kill_now(SIGTERM);
}

// Each bad [[durable]] flush setting is refused with the file, the line and the key.
TEST(DurableThroughDaemon, FlushPolicyIsParsedStrictlyNamingFileLineAndKey) {
  fs::path dir = make_temp_dir("durable-flush");
  fs::path conf = dir / "shmbusd.toml";
  auto refused = [&](const std::string& table, const std::string& expected) {
    std::ofstream(conf, std::ios::trunc) << "[[durable]]\nname = \"ticks\"\ndirectory = \"/tmp/l\"\n" << table;
    shmbusd::Options o;
    try {
      shmbusd::load_config_file(conf, o);
      ADD_FAILURE() << "accepted: " << table;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(conf.string() + expected), std::string::npos) << e.what();
    }
  };
  refused("flush = \"sometimes\"\n", ":4: 'flush' must be \"none\", \"every_n\", \"interval\" or \"each_publish\"");
  refused("flush_every_n = 10\n", ":4: 'flush_every_n' needs flush = \"every_n\"");
  refused("flush = \"interval\"\nflush_every_n = 3\n", ":5: 'flush_every_n' needs flush = \"every_n\"");
  refused("flush = \"every_n\"\n", ":1: flush = \"every_n\" needs 'flush_every_n'");
  refused("flush = \"interval\"\nflush_interval_ms = 0\n", ":5: flush = \"interval\" needs 'flush_interval_ms'");
  refused("segment_size = 4096\n", ":4: 'segment_size' must be 65536 .. 1099511627776 bytes");
  refused("[[durable]]\nname = \"ticks\"\ndirectory = \"/tmp/m\"\n", ":4: durable topic 'ticks' is declared twice");
  refused("[[durable]]\nname = \"../x\"\ndirectory = \"/tmp/m\"\n", ":5: 'name': ");

  std::ofstream(conf, std::ios::trunc) << "[[durable]]\nname = \"ticks\"\ndirectory = \"/tmp/l\"\nflush = "
                                          "\"interval\"\nflush_interval_ms = 250\n";
  shmbusd::Options o;
  shmbusd::load_config_file(conf, o);
  ASSERT_EQ(o.durable.size(), 1u);
  EXPECT_EQ(o.durable[0].flush.mode, shmbus::FlushPolicy::Mode::interval);
  EXPECT_EQ(o.durable[0].flush.interval, 250ms);
  fs::remove_all(dir);
}

TEST(DurableThroughDaemon, ExclusiveAppenderKeyIsParsedStrictlyAndReachesTheClientsAppenders) {
  fs::path dir = make_temp_dir("durable-exclusive");
  fs::path conf = dir / "shmbusd.toml";
  for (const char* bad : {"\"yes\"", "1"}) {
    std::ofstream(conf, std::ios::trunc) << "[[durable]]\nname = \"ticks\"\ndirectory = \"/tmp/l\"\nexclusive_appender = " << bad << "\n";
    shmbusd::Options o;
    try {
      shmbusd::load_config_file(conf, o);
      ADD_FAILURE() << "accepted exclusive_appender = " << bad;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(conf.string() + ":4: 'exclusive_appender' must be true or false"), std::string::npos)
          << e.what();
    }
  }
  fs::remove_all(dir);

  LogUnderDaemon env("exclusive_appender = true\n");
  DaemonProcess daemon(env.dir, {"--config", env.conf.string()});
  daemon.start();
  shmbus::Client client(client_at(daemon));
  EXPECT_TRUE(client.durable_log("ticks", shmbus::Role::subscriber).exclusive_appender);
  std::unique_ptr<shmbus::DurableAppender> mine = client.open_durable_appender("ticks");
  ASSERT_TRUE(mine->append(message(0)));
  // Another process asking the daemon for an appender is refused, naming us.
  pid_t child = fork();
  if (child == 0) {
    try {
      shmbus::Client other(client_at(daemon));
      other.open_durable_appender("ticks");
      _exit(2);
    } catch (const shmbus::Error& e) {
      const bool named = std::string(e.what()).find("(pid " + std::to_string(getppid()) + ")") != std::string::npos;
      _exit(e.code() == shmbus::Errc::too_many_publishers && named ? 0 : 3);
    } catch (...) {
      _exit(4);
    }
  }
  EXPECT_EQ(wait_exit(child), 0);
  ASSERT_TRUE(mine->append(message(1)));
  mine.reset();
  std::unique_ptr<shmbus::DurableAppender> next = client.open_durable_appender("ticks");  // free again
  ASSERT_TRUE(next->append(message(2)));
  shmbus::DurableReader r = client.open_durable_reader("ticks");
  for (std::uint64_t i = 0; i < 3; ++i) {
    auto s = r.next();
    ASSERT_TRUE(s) << r.last_error();
    EXPECT_EQ(s->sequence, i);
  }
  daemon.kill_now(SIGTERM);
}

}  // namespace
