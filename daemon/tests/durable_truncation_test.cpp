// An outside truncation of a segment of a daemon-managed durable log: the processes inside it
// get region_lost (the SIGBUS guard), nobody dies, and the daemon names the file once.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>

#include "daemon_harness.hpp"
#include "shmbus/client.hpp"
#include "shmbus/durable.hpp"

namespace {

using namespace shmbusd::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

std::uint64_t messages_in(const fs::path& logs) {
  try {
    auto segs = shmbus::list_durable_segments(logs, "ticks");
    return segs.empty() ? 0 : segs.back().next_sequence;
  } catch (const std::exception&) {
    return 0;
  }
}

// shmbusd with its log (stderr) in `log_file`, so the test can read what it said.
pid_t spawn_daemon(const fs::path& dir, const fs::path& conf, const fs::path& log_file) {
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open(log_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || dup2(fd, 2) < 0) _exit(126);
    execl(SHMBUSD_BINARY, SHMBUSD_BINARY, "--runtime-dir", dir.c_str(), "--log-level", "warn", "--config", conf.c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

shmbus::ClientOptions options_for(const fs::path& dir) {
  shmbus::ClientOptions o;
  o.socket = dir / "default.sock";
  o.timeout = 3000ms;
  return o;
}

// Exit 0: the child's last call returned region_lost; 5: region_too_short; 3: another error
// (said on stderr); 4: nothing within 20 s.
pid_t spawn_appender(const fs::path& dir) {
  pid_t pid = fork();
  if (pid == 0) {
    shmbus::Client client(options_for(dir));
    std::unique_ptr<shmbus::DurableAppender> log = client.open_durable_appender("ticks");
    std::vector<std::byte> m(40, std::byte{1});
    for (auto end = std::chrono::steady_clock::now() + 20s; std::chrono::steady_clock::now() < end;) {
      for (int i = 0; i < 20; ++i) {
        shmbus::Status st = log->append(m);
        if (!st && st.code() != shmbus::Errc::region_lost && st.code() != shmbus::Errc::region_too_short) {
          std::fprintf(stderr, "appender: %s: %s\n", st.name(), log->last_error().c_str());  // why 3
          _exit(3);
        }
        // region_too_short: the cut landed on the segment its roll had just made, before it
        // opened it (the open names the file), as for the reader below.
        if (!st) _exit(st.code() == shmbus::Errc::region_lost ? 0 : 5);
      }
      std::this_thread::sleep_for(200us);
    }
    _exit(4);
  }
  return pid;
}

pid_t spawn_reader(const fs::path& dir) {
  pid_t pid = fork();
  if (pid == 0) {
    shmbus::Client client(options_for(dir));
    shmbus::DurableReader r = client.open_durable_reader("ticks");
    for (auto end = std::chrono::steady_clock::now() + 20s; std::chrono::steady_clock::now() < end;) {
      auto s = r.next_wait(50ms);
      if (s || s.code() == shmbus::Errc::timeout || s.code() == shmbus::Errc::no_data) continue;
      // region_lost inside the segment; region_too_short when it comes to the truncated file
      // from the segment before (the open names the file).
      _exit(s.code() == shmbus::Errc::region_lost ? 0 : s.code() == shmbus::Errc::region_too_short ? 5 : 3);
    }
    _exit(4);
  }
  return pid;
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(DurableTruncation, ATruncatedSegmentOfADaemonManagedLogGivesRegionLostKillsNobodyAndIsNamedOnce) {
  fs::path dir = make_temp_dir("durable-trunc");
  fs::path logs = dir / "logs", conf = dir / "shmbusd.toml", daemon_log = dir / "shmbusd.log";
  std::ofstream(conf) << "[[durable]]\nname = \"ticks\"\ndirectory = \"" << logs.string()
                      << "\"\nsegment_size = 65536\nmax_segments = 1000\n";
  pid_t daemon = spawn_daemon(dir, conf, daemon_log);
  std::vector<pid_t> children;
  auto cleanup = [&] {
    for (pid_t p : children) kill(p, SIGKILL), wait_exit(p);
    kill(daemon, SIGKILL);
    wait_exit(daemon);
    fs::remove_all(dir);
  };
  auto end = std::chrono::steady_clock::now() + 10s;
  while (!can_connect(dir / "default.sock") && std::chrono::steady_clock::now() < end) std::this_thread::sleep_for(5ms);

  pid_t appender = spawn_appender(dir);
  pid_t reader = spawn_reader(dir);
  children = {appender, reader};
  end = std::chrono::steady_clock::now() + 20s;
  while (messages_in(logs) < 3000 && std::chrono::steady_clock::now() < end) std::this_thread::sleep_for(5ms);
  ASSERT_GE(messages_in(logs), 3000u) << "the appender did not get going";

  // Truncate the newest segment (the appender's); should it have rolled meanwhile, the next one.
  std::set<fs::path> truncated;
  int appender_status = -1;
  for (int attempt = 0; attempt < 10 && appender_status < 0; ++attempt) {
    std::vector<std::uint64_t> firsts;
    for (const auto& e : fs::directory_iterator(logs / "ticks")) {
      const std::string n = e.path().filename();
      if (n.size() == 24 && n.ends_with(".log")) firsts.push_back(std::stoull(n.substr(0, 20)));
    }
    std::sort(firsts.begin(), firsts.end());
    char name[32];
    std::snprintf(name, sizeof name, "%020llu.log", static_cast<unsigned long long>(firsts.back()));
    ASSERT_EQ(::truncate((logs / "ticks" / name).c_str(), 4096), 0);  // the header stays, the records go
    truncated.insert(logs / "ticks" / name);
    appender_status = wait_exit(appender, 1s);
  }
  children = {reader};
  EXPECT_TRUE(appender_status == 0 || appender_status == 5)
      << "the appender ended with " << appender_status << ", not region_lost (0) or region_too_short (5)";
  const int reader_status = wait_exit(reader, 25s);
  EXPECT_TRUE(reader_status == 0 || reader_status == 5)
      << "the reader ended with " << reader_status << ", not region_lost (0) or region_too_short (5)";
  children.clear();

  std::this_thread::sleep_for(1200ms);  // two sweep ticks more: the daemon goes on, and says it once
  int st = 0;
  EXPECT_EQ(waitpid(daemon, &st, WNOHANG), 0) << "shmbusd died";
  shmbus::Client client(options_for(dir));
  EXPECT_NO_THROW(client.status());
  std::stringstream said;
  said << std::ifstream(daemon_log).rdbuf();
  for (const fs::path& f : truncated) {
    EXPECT_EQ(count(said.str(), "segment " + f.string() + " was truncated to 4096 of its 65536 bytes by another process"),
              1u)
        << said.str();
  }
  cleanup();
}

}  // namespace
