// shmbus: the command-line tool to inspect and drive a shmbus bus.
//
// Every failure is one line on stderr, never a stack trace. Exit status: 0 success, 1 the
// command failed (no daemon, no such topic, bad message...), 2 the command line is wrong
// (unknown command or option, missing argument). docs/cli.md lists them.
#include <cstdio>
#include <kj/exception.h>
#include <string>

#include "commands.hpp"
#include "shmbus/error.hpp"
#include "shmbus_version.hpp"

namespace {

constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

// The options every command takes, declared on the top-level app and again on every
// subcommand (bound to the same variables), so that they work before or after the subcommand
// (`shmbus --json status` and `shmbus status --json`) and each command's --help lists them.
void add_global_options(CLI::App& app, shmbus::cli::GlobalOptions& global) {
  CLI::Option_group* group = app.add_option_group("Global options", "Accepted before or after the command");
  group->add_option("--bus", global.bus, "Bus name (default: default)")->type_name("NAME");
  group->add_flag("--json", global.json, "Print JSON instead of tables/text");
  group->add_option("--socket", global.socket, "Daemon socket path (default: from --bus)")->type_name("PATH");
  for (CLI::App* sub : app.get_subcommands([](CLI::App* a) { return !a->get_name().empty(); })) {
    add_global_options(*sub, global);
  }
}

// Cap'n Proto's own checks read "expected endPtr == s.end() [x == ]; String does not contain
// valid number; s = x": keep what follows the failed condition, on one line.
std::string one_line(const kj::Exception& e) {
  std::string s = e.getDescription().cStr();
  if (s.starts_with("expected ") && s.find("; ") != std::string::npos) s = s.substr(s.find("; ") + 2);
  for (char& c : s) c = c == '\n' ? ' ' : c;
  return s;
}

// The path of the command that failed to parse, for the hint: "shmbus topic info".
std::string command_path(const CLI::App& app) {
  std::string path = app.get_name();
  for (const CLI::App* sub = &app; !sub->get_subcommands().empty();) {
    sub = sub->get_subcommands().front();
    path += " " + sub->get_name();
  }
  return path;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"shmbus: inspect and drive a shmbus shared-memory bus"};
  app.name("shmbus");
  app.require_subcommand(1);
  app.set_version_flag("--version", shmbus::build::version_line("shmbus"));
  shmbus::cli::GlobalOptions global;
  shmbus::cli::add_region_commands(app, global);
  shmbus::cli::add_snapshot_commands(app, global);
  shmbus::cli::add_stream_commands(app, global);
  shmbus::cli::add_daemon_commands(app, global);
  shmbus::cli::add_metrics_commands(app, global);
  shmbus::cli::add_durable_commands(app, global);
  shmbus::cli::add_service_commands(app, global);
  add_global_options(app, global);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string path = command_path(app);
    // "frobnicate" is left over, and CLI11 would only say that a subcommand is required.
    std::vector<std::string> left = app.remaining();
    std::string what = path == "shmbus" && !left.empty() ? "no command '" + left.front() + "'" : e.what();
    std::fprintf(stderr, "shmbus: %s (see: %s --help)\n", what.c_str(), path.c_str());
    return kExitUsage;
  } catch (const shmbus::Error& e) {
    std::fprintf(stderr, "shmbus: %s\n", e.what());
    return shmbus::cli::exit_status_of(e);
  } catch (const kj::Exception& e) {
    std::fprintf(stderr, "shmbus: %s\n", one_line(e).c_str());
    return kExitFailed;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shmbus: %s\n", e.what());
    return kExitFailed;
  }
  return 0;
}
