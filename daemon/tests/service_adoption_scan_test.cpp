// The daemon reads its region directory for service files once, at start: a service file whose
// topics are not back yet costs its sweeps two registry lookups, not a directory scan and an
// open every 500 ms (docs/services.md, "Through the daemon"). Observed with strace on the real
// shmbusd.
#include <fcntl.h>
#include <sys/wait.h>

#include <fstream>

#include "daemon_harness.hpp"

namespace shmbusd::test {
namespace {

using namespace std::chrono_literals;

TEST(ServiceAdoption, AServiceFileWaitingForItsTopicsCostsTheSweepsNoScanAndNoOpen) {
  if (access("/usr/bin/strace", X_OK) != 0) GTEST_SKIP() << "needs /usr/bin/strace";
  auto dir = make_temp_dir("svc-adopt-scan");
  const auto regions = dir / "run" / "default.regions";
  std::filesystem::create_directories(regions);
  std::filesystem::permissions(regions, std::filesystem::perms::owner_all);
  std::ofstream(regions / "service%waiting.shmsvc") << "its topics never come back";
  DaemonProcess d(dir / "run");
  d.start();
  // Three seconds of the daemon's system calls: five or six sweeps.
  const auto trace = dir / "strace.out", said = dir / "strace.err";
  pid_t tracer = fork();
  if (tracer == 0) {
    int err = open(said.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (err < 0 || dup2(err, 2) < 0) _exit(126);
    std::string pid = std::to_string(d.pid()), out = trace.string();
    execl("/usr/bin/timeout", "timeout", "-s", "INT", "3", "/usr/bin/strace", "-f", "-y", "-e",
          "trace=openat,getdents64", "-o", out.c_str(), "-p", pid.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  wait_exit(tracer, 10s);
  const std::string log = [&] {
    std::ifstream f(said);
    return std::string(std::istreambuf_iterator<char>(f), {});
  }();
  if (log.find("attached") == std::string::npos) GTEST_SKIP() << "strace could not attach here: " << log;
  std::ifstream f(trace);
  std::vector<std::string> touching;
  for (std::string line; std::getline(f, line);) {
    if (line.find("default.regions") != std::string::npos || line.find("shmsvc") != std::string::npos) touching.push_back(line);
  }
  EXPECT_TRUE(touching.empty()) << touching.size() << " calls on the region directory, the first: " << touching.front();
  d.kill_now(SIGTERM);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace shmbusd::test
