// kill -9 of shmbusd while publisher processes stream into a durable log they got through it:
// appends go on while the daemon is dead and after its restart (the daemon is not on the data
// path), and every message whose append returned is read back, in order, once.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstring>
#include <fstream>

#include "daemon_harness.hpp"
#include "shmbus/client.hpp"
#include "shmbus/durable.hpp"

namespace {

using namespace shmbusd::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

struct Tagged {
  std::uint32_t writer;
  std::uint32_t pad;
  std::uint64_t index;
};

std::uint64_t messages_in(const fs::path& logs) {
  try {
    auto segs = shmbus::list_durable_segments(logs, "ticks");
    return segs.empty() ? 0 : segs.back().next_sequence;
  } catch (const std::exception&) {
    return 0;
  }
}

template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = 20s) {
  auto end = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

// A publisher process: appends tagged messages until `stop` exists, then writes how many
// appends returned ok to `count_file`. Its Client stays open, reconnecting in the background.
pid_t spawn_streamer(const DaemonProcess& daemon, std::uint32_t writer, const fs::path& stop, const fs::path& count_file) {
  pid_t pid = fork();
  if (pid == 0) {
    try {
      shmbus::Client client(client_at(daemon));
      std::unique_ptr<shmbus::DurableAppender> log = client.open_durable_appender("ticks");
      std::uint64_t done = 0;
      while (!fs::exists(stop)) {
        for (int burst = 0; burst < 10; ++burst) {
          Tagged t{writer, 0, done};
          if (!log->append(std::as_bytes(std::span(&t, 1)))) {
            std::fprintf(stderr, "streamer %u: append %llu: %s\n", writer, static_cast<unsigned long long>(done),
                         log->last_error().c_str());
            _exit(2);
          }
          ++done;
        }
        std::this_thread::sleep_for(200us);  // a stream, not a flood: leaves the CPU to the others
      }
      std::ofstream(count_file) << done;
      _exit(0);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "streamer %u: %s\n", writer, e.what());
      _exit(1);
    }
  }
  return pid;
}

TEST(DurableDaemonKill, StreamsThroughDaemonObtainedAppendersSurviveTheDaemonsKillAndRestartWithNothingLost) {
  fs::path dir = make_temp_dir("durable-kill");
  fs::path logs = dir / "logs", conf = dir / "shmbusd.toml", stop = dir / "stop";
  std::ofstream(conf) << "[[durable]]\nname = \"ticks\"\ndirectory = \"" << logs.string()
                      << "\"\nsegment_size = 65536\n";
  DaemonProcess daemon(dir, {"--config", conf.string()});
  daemon.start();
  constexpr std::uint32_t kWriters = 3;
  std::vector<pid_t> writers;
  auto reap_all = [&] {
    std::ofstream(stop) << "";
    for (pid_t p : writers) {
      if (wait_exit(p, 20s) < 0) kill(p, SIGKILL), wait_exit(p);
    }
  };
  for (std::uint32_t w = 0; w < kWriters; ++w) {
    writers.push_back(spawn_streamer(daemon, w, stop, dir / ("count." + std::to_string(w))));
  }
  bool streaming = eventually([&] { return messages_in(logs) >= 3000; });
  if (!streaming) reap_all();
  ASSERT_TRUE(streaming) << "the streamers did not get going";

  EXPECT_EQ(daemon.kill_now(SIGKILL), 128 + SIGKILL);
  const std::uint64_t at_kill = messages_in(logs);
  // No daemon: the stream goes on, through segment rolls (64 KiB holds about 1500 messages).
  EXPECT_TRUE(eventually([&] { return messages_in(logs) >= at_kill + 6000; }))
      << "appends stalled while the daemon was dead: " << messages_in(logs) << " after " << at_kill;
  daemon.start();
  const std::uint64_t at_restart = messages_in(logs);
  EXPECT_TRUE(eventually([&] { return messages_in(logs) >= at_restart + 3000; }));
  // The restarted daemon serves the log to new clients at once.
  shmbus::Client late(client_at(daemon));
  std::unique_ptr<shmbus::DurableAppender> own = late.open_durable_appender("ticks");
  Tagged mine{kWriters, 0, 0};
  ASSERT_TRUE(own->append(std::as_bytes(std::span(&mine, 1)))) << own->last_error();
  reap_all();

  std::vector<std::uint64_t> returned(kWriters + 1, 0), seen(kWriters + 1, 0);
  for (std::uint32_t w = 0; w < kWriters; ++w) {
    std::ifstream(dir / ("count." + std::to_string(w))) >> returned[w];
    EXPECT_GT(returned[w], 0u) << "streamer " << w << " reported nothing (it failed)";
  }
  returned[kWriters] = 1;
  shmbus::DurableReader r = shmbus::DurableReader::oldest(logs, "ticks");
  std::uint64_t sequence = 0;
  for (;;) {
    auto s = r.next();
    if (s.code() == shmbus::Errc::no_data) break;
    ASSERT_TRUE(s) << r.last_error();
    ASSERT_EQ(s->sequence, sequence++) << "a gap: every streamer's appends returned ok";
    ASSERT_EQ(s->data.size(), sizeof(Tagged));
    Tagged t;
    std::memcpy(&t, s->data.data(), sizeof t);
    ASSERT_LE(t.writer, kWriters);
    ASSERT_EQ(t.index, seen[t.writer]) << "writer " << t.writer << ": out of order or duplicated";
    ++seen[t.writer];
  }
  for (std::uint32_t w = 0; w <= kWriters; ++w) EXPECT_EQ(seen[w], returned[w]) << "writer " << w;
  EXPECT_GT(shmbus::list_durable_segments(logs, "ticks").size(), 4u);
  daemon.kill_now(SIGTERM);
  fs::remove_all(dir);
}

}  // namespace
