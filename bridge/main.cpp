// shmbus-bridge: carries chosen topics of a local bus to NATS subjects and back.
//
//   shmbus-bridge run -c /etc/shmbus/bridge.toml      # the service (see shmbus-bridge.service)
//   shmbus-bridge status -c /etc/shmbus/bridge.toml   # its counters, per topic
//   shmbus-bridge check -c bridge.toml                 # parse the config and print it
#include <signal.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <optional>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <thread>

#include "config.hpp"
#include "counters.hpp"
#include "exporter.hpp"
#include "importer.hpp"
#include "jetstream_exporter.hpp"
#include "jetstream_importer.hpp"
#include "nats_engine.hpp"
#include "rule_status.hpp"

namespace shmbus::bridge {
namespace {

// Connects to the local daemon, retrying every second until it answers or a signal comes.
std::unique_ptr<Client> connect_bus(const BridgeConfig& c, const sigset_t& signals) {
  ClientOptions o;
  o.bus = c.bus;
  o.socket = c.socket;
  o.name = "shmbus-bridge";
  for (bool logged = false;;) {
    try {
      return std::make_unique<Client>(o);
    } catch (const Error& e) {
      if (e.code() == Errc::access_denied) throw;
      if (!logged) spdlog::warn("waiting for the bus daemon: {}", e.what());
      logged = true;
    }
    timespec one_second{1, 0};
    if (sigtimedwait(&signals, nullptr, &one_second) > 0) return nullptr;
  }
}

int run(BridgeConfig c) {
  resolve_defaults(c);
  // Signals are taken by sigtimedwait on this thread only: block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::unique_ptr<Client> client = connect_bus(c, signals);
  if (!client) return 0;
  std::unique_ptr<Engine> engine = make_nats_engine(c.nats, "shmbus-bridge " + c.bus_id);
  CounterRegistry counters;
  OwnPublishers own;
  LogLimiter log;
  Importer importer(*client, *engine, c, counters, own, log);
  Exporter exporter(*client, *engine, c, counters, own, log);
  exporter.start();
  importer.start();
  std::optional<JetStreamExporter> js_exporter(std::in_place, *engine, c, log);
  std::optional<JetStreamImporter> js_importer(std::in_place, *engine, c, log);
  js_exporter->start();
  std::optional<ServiceExporter> service_exporter(std::in_place, *engine, c, log);
  std::optional<ServiceImporter> service_importer(std::in_place, *engine, c, log);
  service_exporter->start();
  service_importer->start();
  spdlog::info("bridging bus '{}' as '{}' over {} (prefix {}, {} export and {} import rules), status in {}", c.bus, c.bus_id,
               c.nats.servers.front(), c.subject_prefix, c.exports.size(), c.imports.size(), c.status_file.string());
  bool was_connected = true;
  for (;;) {
    const EngineStats stats = engine->stats();
    if (stats.connected != was_connected) {
      if (stats.connected) spdlog::info("NATS connected to {}", stats.server);
      else spdlog::warn("NATS disconnected: reconnecting; what is exported meanwhile is buffered (up to {} bytes), then counted lost",
                        c.nats.reconnect_buffer_bytes);
      was_connected = stats.connected;
    }
    js_importer->tick();
    write_status_file(c.status_file, with_rule_status(counters.status_json(c.bus_id, stats), *js_exporter, *js_importer,
                                                      *service_exporter, *service_importer));
    timespec one_second{1, 0};
    if (sigtimedwait(&signals, nullptr, &one_second) > 0) break;
  }
  spdlog::info("stopping");
  exporter.stop();
  service_importer->stop();  // their subscriptions end with the engine, their threads now
  service_exporter->stop();
  js_exporter.reset();
  js_importer.reset();  // their acks and replays end before the connection goes
  engine.reset();  // no more deliveries into the importer
  std::error_code ec;
  std::filesystem::remove(c.status_file, ec);
  return 0;
}

}  // namespace
}  // namespace shmbus::bridge

int main(int argc, char** argv) {
  using namespace shmbus::bridge;
  CLI::App app{"shmbus-bridge: carries topics of a shmbus bus to NATS subjects and back"};
  app.require_subcommand(1);
  std::string config_path, status_file, log_level = "info";
  bool json = false;
  CLI::App* run_cmd = app.add_subcommand("run", "Run the bridge");
  run_cmd->add_option("-c,--config", config_path, "TOML config (see shmbus-bridge.example.toml)")->required()->check(CLI::ExistingFile);
  run_cmd->add_option("--log-level", log_level, "trace, debug, info, warn, error");
  CLI::App* status_cmd = app.add_subcommand("status", "Show the running bridge's counters per topic");
  status_cmd->add_option("-c,--config", config_path, "the bridge's TOML config (to find its status file)")->check(CLI::ExistingFile);
  status_cmd->add_option("--status-file", status_file, "the status file itself");
  status_cmd->add_flag("--json", json, "print the status as JSON");
  CLI::App* check_cmd = app.add_subcommand("check", "Parse the config, print what it means and exit");
  check_cmd->add_option("-c,--config", config_path, "TOML config")->required()->check(CLI::ExistingFile);
  CLI11_PARSE(app, argc, argv);
  spdlog::set_default_logger(spdlog::stderr_color_mt("shmbus-bridge"));
  spdlog::set_level(spdlog::level::from_str(log_level));
  try {
    if (*status_cmd) {
      if (status_file.empty()) {
        if (config_path.empty()) {
          std::cerr << "shmbus-bridge status: give --config or --status-file\n";
          return 2;
        }
        BridgeConfig c = load_config(config_path);
        resolve_defaults(c);
        status_file = c.status_file;
      }
      return print_status(status_file, json);
    }
    BridgeConfig c = load_config(config_path);
    if (*check_cmd) {
      resolve_defaults(c);
      std::cout << "bus " << c.bus << " as '" << c.bus_id << "', prefix " << c.subject_prefix << ", status " << c.status_file.string() << "\n";
      for (const auto& s : c.nats.servers) std::cout << "server " << s << "\n";
      for (const auto& r : c.exports) std::cout << "export " << r.topics << " -> " << c.subject_prefix << ".<topic>\n";
      for (const auto& r : c.imports) std::cout << "import " << r.prefix << ".<topic> matching " << r.topics << "\n";
      for (const auto& r : c.jetstream_exports) {
        std::cout << "jetstream export " << r.directory.string() << "/" << r.topics << " -> stream " << r.stream << " " << r.subject_prefix << ".<log>\n";
      }
      for (const auto& r : c.jetstream_imports) {
        std::cout << "jetstream import stream " << r.stream << " " << r.subject << " -> " << r.directory.string() << "/" << r.topic << "\n";
      }
      for (const auto& r : c.service_exports) std::cout << "service export " << r.service << " -> " << r.subject_prefix << "\n";
      for (const auto& r : c.service_imports) std::cout << "service import " << r.service << " <- " << r.prefix << "\n";
      return 0;
    }
    return run(std::move(c));
  } catch (const std::exception& e) {
    std::cerr << "shmbus-bridge: " << e.what() << "\n";
    return 1;
  }
}
