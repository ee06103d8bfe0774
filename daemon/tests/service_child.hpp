// Test helpers for the service tests through the daemon: a service of small classes, and a
// forked participant (a server, or a client) that tells the parent when it is ready and stops
// when the parent closes its pipe; killed and reaped by its destructor, also when an assertion
// ends the test early.
#pragma once

#include <poll.h>
#include <sys/prctl.h>

#include <string>

#include "daemon_harness.hpp"
#include "shmbus/service.hpp"

namespace shmbusd::test {

// Service `name` with 32 request and 32 response chunks of `chunk_size` bytes, queues of 8.
inline shmbus::ServiceConfig small_service_config(const std::string& name, std::uint32_t chunk_size = 256) {
  shmbus::ServiceConfig c;
  c.name = name;
  c.request_classes = {{chunk_size, 32}};
  c.response_classes = {{chunk_size, 32}};
  c.request_queue_depth = 8;
  c.response_queue_depth = 8;
  return c;
}

class ServiceChild {
 public:
  // Adopts `pid` (-1: none yet) to kill and reap at the end.
  explicit ServiceChild(pid_t pid = -1) : pid(pid) {}
  ServiceChild(const ServiceChild&) = delete;
  ServiceChild& operator=(const ServiceChild&) = delete;
  ~ServiceChild() { kill9(); }

  // Forks a child that runs `body(ready_fd, stop_fd)` and exits 0 when it returns (2 when it
  // throws): it writes a byte to ready_fd once it serves, and returns once stopping(stop_fd).
  // Fork before this process starts a Client: no thread to fork then. True once the child is
  // ready; false when it exited first.
  template <typename Body>
  bool start(Body body) {
    int ready[2], stop[2];
    if (pipe(ready) != 0 || pipe(stop) != 0) return false;
    pid = fork();
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a crashed test
      close(ready[0]);
      close(stop[1]);  // the parent's end: its close is our signal to stop
      try {
        body(ready[1], stop[0]);
      } catch (const std::exception& e) {
        fprintf(stderr, "service child: %s\n", e.what());
        _exit(2);
      }
      _exit(0);
    }
    close(ready[1]);
    close(stop[0]);
    stop_ = stop[1];
    char c;
    const bool up = read(ready[0], &c, 1) == 1;
    close(ready[0]);
    return up;
  }
  // start() with a server of `config`, connected through daemon `d`, as the child's body: it
  // takes requests (take_wait, 20 ms) until stopped and hands each result, a request or why
  // there is none (timeout when none came), to `on_take(server, result)`. `first` runs first in
  // the child (e.g. to switch uid before connecting).
  template <typename OnTake, typename First = void (*)()>
  bool serve(const DaemonProcess& d, const shmbus::ServiceConfig& config, OnTake on_take, First first = [] {}) {
    return start([&](int ready, int stop) {
      first();
      shmbus::Client client(client_at(d));
      shmbus::Service svc = client.open_service(config, shmbus::ServiceRole::serve);
      shmbus::ServiceServer server(svc);
      say_ready(ready);
      while (!stopping(stop)) {
        shmbus::Result<shmbus::ServiceRequest> request = server.take_wait(std::chrono::milliseconds(20));
        on_take(server, request);
      }
    });
  }
  static void say_ready(int ready_fd) { (void)!write(ready_fd, "r", 1); }
  // True once the parent asked the child to stop (closed its end of the stop pipe).
  static bool stopping(int stop_fd) {
    pollfd p{stop_fd, POLLIN, 0};
    return poll(&p, 1, 0) == 1;
  }

  // Asks the child to stop and returns its exit status (SIGKILLed after 5 s: -1).
  int stop() {
    close_stop();
    if (pid <= 0) return -1;
    int status = wait_exit(pid, std::chrono::seconds(5));
    if (status == -1) kill9();
    pid = -1;
    return status;
  }
  void kill9() {
    close_stop();
    signal_and_reap(pid, SIGKILL);
  }

  pid_t pid = -1;  // -1 once reaped (or reaped by the test itself)

 private:
  void close_stop() {
    if (stop_ >= 0) close(stop_);
    stop_ = -1;
  }
  int stop_ = -1;
};

}  // namespace shmbusd::test
