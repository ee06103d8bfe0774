// Options every shmbus subcommand shares.
#pragma once

#include <string>

namespace shmbus::cli {

struct GlobalOptions {
  std::string bus = "default";  // --bus NAME
  bool json = false;            // --json: machine-readable output
  std::string socket;           // --socket PATH: the daemon's socket, overriding --bus
};

}  // namespace shmbus::cli
