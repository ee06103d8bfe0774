// shmbusd: the shmbus bus daemon. Runs in the foreground; logs to stderr (the journal under
// systemd). Defaults need no configuration: bus "default" under $XDG_RUNTIME_DIR/shmbus (or
// /run/shmbus as root). Precedence: built-in defaults < config file < command-line flags.
#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdlib>
#include <grp.h>
#include <iostream>

#include "daemon.hpp"
#include "shmbus_version.hpp"

namespace {

shmbusd::Daemon* g_daemon = nullptr;

extern "C" void on_signal(int sig) {
  if (!g_daemon) return;
  if (sig == SIGHUP) g_daemon->request_reload();
  else g_daemon->request_stop();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"shmbusd: the shmbus shared-memory bus daemon"};
  app.set_version_flag("--version", shmbus::build::version_line("shmbusd"));
  std::string config, bus, runtime_dir, region_dir, socket_group, backing, log_level = "info";
  long handshake_ms = -1;
  long max_rps = -1;
  long metrics_port = -1;
  bool check_only = false;
  app.add_option("-c,--config", config, "TOML config file (see shmbusd.example.toml)")->check(CLI::ExistingFile);
  app.add_option("-b,--bus", bus, "bus name (default: \"default\")");
  app.add_option("--runtime-dir", runtime_dir, "socket/lock directory (default: $XDG_RUNTIME_DIR/shmbus or /run/shmbus)");
  app.add_option("--region-dir", region_dir, "file-backed regions (default: <runtime-dir>/<bus>.regions)");
  app.add_option("--socket-group", socket_group, "group allowed to reach the socket (directory becomes 0750)");
  app.add_option("--default-backing", backing, "anonymous (memfd) or file")->check(CLI::IsMember({"anonymous", "file"}));
  app.add_option("--handshake-timeout-ms", handshake_ms, "close connections silent for this long");
  app.add_option("--max-requests-per-second", max_rps, "control requests per connection (0 = no limit)");
  app.add_option("--metrics-port", metrics_port, "serve GET /metrics on 127.0.0.1/::1 at this port (0 = off, the default)")
      ->check(CLI::Range(0, 65535));
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  app.add_flag("--check-config", check_only, "parse the configuration, print the result and exit");
  CLI11_PARSE(app, argc, argv);

  // Logs go to stderr (the journal under systemd), never stdout.
  spdlog::set_default_logger(spdlog::stderr_color_mt("shmbusd"));
  // Under systemd the journal adds its own timestamps.
  if (getenv("JOURNAL_STREAM")) spdlog::set_pattern("<%l> %v");
  spdlog::set_level(spdlog::level::from_str(log_level));

  shmbusd::Options options;
  try {
    if (!config.empty()) shmbusd::load_config_file(config, options);
    if (!bus.empty()) options.bus = bus;
    if (!runtime_dir.empty()) options.runtime_dir = runtime_dir;
    if (!region_dir.empty()) options.region_dir = region_dir;
    if (!socket_group.empty()) {
      group* gr = getgrnam(socket_group.c_str());
      if (!gr) throw std::runtime_error("no such group '" + socket_group + "'");
      options.socket_group = gr->gr_gid;
    }
    if (backing == "file") options.default_backing = shmbus::RegionOptions::Backing::file;
    if (backing == "anonymous") options.default_backing = shmbus::RegionOptions::Backing::anonymous;
    if (handshake_ms >= 0) options.handshake_timeout = std::chrono::milliseconds(handshake_ms);
    if (max_rps >= 0) options.request_limits.per_second = static_cast<std::uint32_t>(max_rps);
    if (metrics_port >= 0) options.metrics_port = static_cast<std::uint16_t>(metrics_port);
  } catch (const std::exception& e) {
    spdlog::critical("configuration: {}", e.what());
    return 2;
  }
  if (check_only) {
    std::cout << "bus " << options.bus << "\nsocket " << options.socket_path().string() << "\nregions "
              << options.resolved_region_dir().string() << "\naccess rules " << options.rules.rules.size() << " from "
              << options.rules.source << "\ntopic settings " << options.topics.size() << "\n";
    return 0;
  }

  try {
    shmbusd::Daemon daemon(options);
    g_daemon = &daemon;
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGHUP, &sa, nullptr);
    signal(SIGPIPE, SIG_IGN);  // a client vanishing mid-write is an EPIPE for that client only
    daemon.run();
    g_daemon = nullptr;
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }
  return 0;
}
