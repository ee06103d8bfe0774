// Runs the real `shmbus` binary and captures what it printed.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace shmbus::test {

struct CliRun {
  int status;
  std::string out;
  std::string err;
  int exit_code() const { return WIFEXITED(status) ? WEXITSTATUS(status) : -1; }
};

// Runs `program` (a path) with `args`, which are already shell-quoted.
inline CliRun run_program(const std::string& program, const std::string& args) {
  std::filesystem::path err_file = std::filesystem::temp_directory_path() / ("shmbus-cli-err-" + std::to_string(getpid()));
  std::string cmd = program + " " + args + " 2>" + err_file.string();
  FILE* p = popen(cmd.c_str(), "r");
  CliRun r{};
  char buf[4096];
  while (std::size_t n = fread(buf, 1, sizeof buf, p)) r.out.append(buf, n);
  r.status = pclose(p);
  std::ifstream e(err_file);
  r.err.assign(std::istreambuf_iterator<char>(e), {});
  std::filesystem::remove(err_file);
  return r;
}

inline CliRun shmbus_cli(const std::string& args) { return run_program(SHMBUS_CLI_PATH, args); }

}  // namespace shmbus::test
