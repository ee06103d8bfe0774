// shmbus: the command-line tool to inspect and drive a shmbus bus.
//
// Every failure is one line on stderr and a non-zero exit status, never a stack trace.
#include <cstdio>
#include <kj/exception.h>

#include "commands.hpp"
#include "shmbus/error.hpp"

int main(int argc, char** argv) {
  CLI::App app{"shmbus: inspect and drive a shmbus shared-memory bus"};
  app.require_subcommand(1);
  shmbus::cli::GlobalOptions global;
  app.add_option("--bus", global.bus, "Bus name")->capture_default_str();
  app.add_flag("--json", global.json, "Print JSON instead of tables/text");
  app.add_option("--socket", global.socket, "Daemon socket path (default: from --bus)");
  shmbus::cli::add_region_commands(app, global);
  shmbus::cli::add_snapshot_commands(app, global);
  shmbus::cli::add_stream_commands(app, global);
  shmbus::cli::add_daemon_commands(app, global);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const shmbus::Error& e) {
    std::fprintf(stderr, "shmbus: %s\n", e.what());
    return 1;
  } catch (const kj::Exception& e) {
    std::fprintf(stderr, "shmbus: %s\n", e.getDescription().cStr());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shmbus: %s\n", e.what());
    return 1;
  }
  return 0;
}
