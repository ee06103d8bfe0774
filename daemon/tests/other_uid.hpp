// Test helpers: run a built program as another uid (65534, "nobody") through setpriv, with an
// environment of the test's choosing, and collect its exit status and output; or run a piece of
// the test itself as that uid in a forked child and collect the refusal it met.
#pragma once

#include <gtest/gtest.h>

#include <fcntl.h>
#include <grp.h>
#include <sys/prctl.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

#include "daemon_harness.hpp"
#include "shmbus/error.hpp"

namespace shmbusd::test {

inline constexpr unsigned kOtherUid = 65534;

// Why runs as another uid cannot happen here, or empty when they can.
inline std::string other_uid_unavailable() {
  if (geteuid() != 0) return "needs root to run clients as uid 65534 (running as uid " + std::to_string(geteuid()) + ")";
  if (access("/usr/bin/setpriv", X_OK) != 0) return "needs /usr/bin/setpriv (util-linux) to run clients as uid 65534";
  return {};
}

struct Ran {
  int status = -1;  // exit status, 128+signal, or -1 when it had to be killed
  std::string out, err;
};

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// Starts `argv` as uid/gid 65534 without supplementary groups, with exactly `env`; its
// stdout/stderr go to <scratch>/<tag>.out and .err. setpriv execs, so the pid is the program's.
inline pid_t spawn_as_other_uid(const std::filesystem::path& scratch, const std::string& tag,
                                std::vector<std::string> argv, std::vector<std::string> env) {
  const auto out = scratch / (tag + ".out"), err = scratch / (tag + ".err");
  pid_t pid = fork();
  if (pid == 0) {
    int o = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int e = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0) _exit(126);
    std::vector<std::string> args = {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"};
    args.insert(args.end(), argv.begin(), argv.end());
    std::vector<char*> a, v;
    for (std::string& s : args) a.push_back(s.data());
    a.push_back(nullptr);
    for (std::string& s : env) v.push_back(s.data());
    v.push_back(nullptr);
    execve(a[0], a.data(), v.data());
    _exit(127);
  }
  return pid;
}

// Runs `argv` as spawn_as_other_uid does and waits for it (killed after 20 s).
inline Ran run_as_other_uid(const std::filesystem::path& scratch, std::vector<std::string> argv,
                            std::vector<std::string> env) {
  pid_t pid = spawn_as_other_uid(scratch, "other-uid", std::move(argv), std::move(env));
  Ran r;
  r.status = wait_exit(pid, std::chrono::seconds(20));
  if (r.status == -1) {
    kill(pid, SIGKILL);
    wait_exit(pid);
  }
  r.out = slurp(scratch / "other-uid.out");
  r.err = slurp(scratch / "other-uid.err");
  return r;
}

// Runs `body` as uid/gid 65534 without supplementary groups in a forked child and returns the
// access_denied error it threw ("" when it threw nothing; "wrong code: ..." or "wrong type: ..."
// for another error). Fork it before this process starts a Client: no thread to fork then.
inline std::string as_nobody(const std::function<void()>& body) {
  int out[2];
  EXPECT_EQ(pipe(out), 0);
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a crashed test
    if (setgroups(0, nullptr) != 0 || setgid(kOtherUid) != 0 || setuid(kOtherUid) != 0) _exit(5);
    std::string what;
    try {
      body();
    } catch (const shmbus::Error& e) {
      what = e.code() == shmbus::Errc::access_denied ? e.what() : std::string("wrong code: ") + e.what();
    } catch (const std::exception& e) {
      what = std::string("wrong type: ") + e.what();
    }
    (void)!write(out[1], what.data(), what.size());
    _exit(0);
  }
  close(out[1]);
  std::string got;
  char buf[1024];
  for (ssize_t n; (n = read(out[0], buf, sizeof buf)) > 0;) got.append(buf, static_cast<std::size_t>(n));
  close(out[0]);
  EXPECT_EQ(wait_exit(pid), 0);
  return got;
}

}  // namespace shmbusd::test
