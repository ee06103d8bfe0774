// shmbusd as a library: everything the `shmbusd` binary does, so that tests, examples and
// demos can run a bus in-process (on a thread of their own) or fork/exec the binary.
//
//   shmbusd::Options o;                 // bus "default" under the default runtime dir
//   shmbusd::Daemon d(o);               // takes the bus lock, binds the socket (throws why not)
//   std::thread t([&] { d.run(); });    // serves until request_stop()
//   ...
//   d.request_stop(); t.join();
//
// The daemon is never on the data path. Stopping it (or killing it) leaves every client's
// publishers and subscribers running; a restarted daemon re-adopts file-backed regions from
// the region directory and clients hand back anonymous ones when they reconnect.
#pragma once

#include <filesystem>
#include <memory>

#include "options.hpp"

namespace shmbusd {

class Daemon {
 public:
  // Creates the runtime and region directories, takes the bus lock (a second daemon on the
  // same bus fails here, naming the first one's pid), re-adopts file-backed regions, binds and
  // listens on the socket. Throws std::runtime_error saying what failed.
  explicit Daemon(Options options);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Serves connections until request_stop(). Signals READY=1 to systemd once the socket
  // accepts, STOPPING=1 when asked to stop, and WATCHDOG=1 at half the watchdog interval.
  // Closing on stop does not reclaim anybody's slots: clients are alive and keep running.
  void run();
  // Async-signal-safe and thread-safe.
  void request_stop() noexcept;
  // Async-signal-safe and thread-safe: re-reads the access rules from the config file (other
  // settings need a restart). A broken file keeps the old rules and logs why.
  void request_reload() noexcept;

  std::filesystem::path socket_path() const;
  const Options& options() const;

  struct State;

 private:
  std::unique_ptr<State> s_;
};

}  // namespace shmbusd
