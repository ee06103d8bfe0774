// The control protocol's PayloadPool capability: a publisher's sealed payload memfd travels
// with it (Capability::Server::getFd()), from a publisher to the daemon (registerPool) and from
// the daemon to a subscriber (getPool).
#pragma once

#include <fcntl.h>
#include <kj/io.h>

#include <string>
#include <unistd.h>

#include "control.capnp.h"

namespace shmbus::wire {

class PoolServer final : public control::PayloadPool::Server {
 public:
  // Keeps its own duplicate of `fd`, open for as long as the capability lives.
  PoolServer(std::string topic, std::uint32_t pool, std::uint32_t generation, int fd)
      : topic_(std::move(topic)), pool_(pool), generation_(generation), fd_(dup_cloexec(fd)) {}
  kj::Maybe<int> getFd() override {
    if (fd_.get() < 0) return nullptr;
    return fd_.get();
  }

 protected:
  kj::Promise<void> describe(DescribeContext context) override {
    auto r = context.getResults();
    r.setTopic(topic_);
    r.setPool(pool_);
    r.setGeneration(generation_);
    return kj::READY_NOW;
  }

 private:
  static int dup_cloexec(int fd) { return fd < 0 ? -1 : fcntl(fd, F_DUPFD_CLOEXEC, 0); }
  std::string topic_;
  std::uint32_t pool_;
  std::uint32_t generation_;
  kj::AutoCloseFd fd_;
};

}  // namespace shmbus::wire
