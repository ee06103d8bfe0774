// Test helpers: a shmbusd child process on a private runtime directory, and small process
// utilities. Everything here is for tests only.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <grp.h>
#include <sys/stat.h>
#include <cstring>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "shmbus/client.hpp"

namespace shmbusd::test {

inline std::filesystem::path make_temp_dir(const char* tag) {
  std::string templ = std::string("/tmp/shmbusd-") + tag + "-XXXXXX";
  char* p = mkdtemp(templ.data());
  if (!p) throw std::runtime_error("mkdtemp failed");
  return p;
}

inline bool can_connect(const std::filesystem::path& socket) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, socket.c_str(), sizeof(addr.sun_path) - 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

// Waits for `pid` to exit; returns its exit status (128+signal when killed), -1 on timeout.
inline int wait_exit(pid_t pid, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    int st = 0;
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return -1;
}

// Sends `sig` to child `pid` and reaps it; `pid` becomes -1. Its exit status as wait_exit()
// gives it, 0 when there was no child.
inline int signal_and_reap(pid_t& pid, int sig) {
  if (pid <= 0) return 0;
  ::kill(pid, sig);
  const int rc = wait_exit(pid);
  pid = -1;
  return rc;
}

// shmbusd run as a child process (fork/exec of the built binary).
class DaemonProcess {
 public:
  explicit DaemonProcess(std::filesystem::path runtime_dir, std::vector<std::string> extra = {},
                         std::vector<std::string> env = {})
      : dir_(std::move(runtime_dir)), extra_(std::move(extra)), env_(std::move(env)) {}
  ~DaemonProcess() { kill_now(SIGKILL); }

  // Starts the daemon; with `wait`, returns once its socket accepts.
  void start(bool wait = true) {
    pid_ = fork();
    if (pid_ == 0) {
      for (const std::string& e : env_) putenv(const_cast<char*>(e.c_str()));
      std::vector<std::string> args = {SHMBUSD_BINARY, "--runtime-dir", dir_.string(), "--log-level", "warn"};
      args.insert(args.end(), extra_.begin(), extra_.end());
      std::vector<char*> argv;
      for (std::string& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    if (!wait) return;
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!can_connect(socket())) {
      if (std::chrono::steady_clock::now() > end) throw std::runtime_error("shmbusd did not come up");
      int st;
      if (waitpid(pid_, &st, WNOHANG) == pid_) throw std::runtime_error("shmbusd exited at start");
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  int kill_now(int sig) { return signal_and_reap(pid_, sig); }
  pid_t pid() const { return pid_; }
  std::filesystem::path socket() const { return dir_ / "default.sock"; }
  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
  std::vector<std::string> extra_;
  std::vector<std::string> env_;
  pid_t pid_ = -1;
};

// Options for a shmbus::Client of daemon `d`. Without `reconnect`, a client whose daemon is
// gone fails at once instead of retrying in the background.
inline shmbus::ClientOptions client_at(const DaemonProcess& d, bool reconnect = true) {
  shmbus::ClientOptions o;
  o.socket = d.socket();
  o.timeout = std::chrono::milliseconds(3000);
  o.reconnect = reconnect;
  return o;
}

}  // namespace shmbusd::test
