// libFuzzer target for the control socket: every input is written as one client connection to
// an in-process shmbusd (build with clang: -DCMAKE_CXX_COMPILER=clang++, then run
// ./shmbusd_control_fuzzer). The GoogleTest bit-flip loop (hostile_input_test.cpp) covers the
// same surface in every normal build.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "daemon.hpp"

namespace {

shmbusd::Daemon& daemon_instance() {
  static shmbusd::Daemon* d = [] {
    char dir[] = "/tmp/shmbusd-fuzz-XXXXXX";
    shmbusd::Options o;
    o.runtime_dir = mkdtemp(dir);
    o.handshake_timeout = std::chrono::milliseconds(100);
    o.notify_systemd = false;
    auto* daemon = new shmbusd::Daemon(o);
    std::thread([daemon] { daemon->run(); }).detach();
    return daemon;
  }();
  return *d;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  shmbusd::Daemon& d = daemon_instance();
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, d.socket_path().c_str(), sizeof(addr.sun_path) - 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    (void)!write(fd, data, size);
    usleep(1000);
  }
  close(fd);
  return 0;
}
