// The control protocol's Region capability served from a mapped Topic: its fd travels with the
// capability over a fd-passing connection (Capability::Server::getFd()). Used by the daemon
// (openTopic replies) and by clients handing a region back to a restarted daemon.
#pragma once

#include "control.capnp.h"
#include "shmbus/service.hpp"
#include "shmbus/topic.hpp"

namespace shmbus::wire {

class RegionServer final : public control::Region::Server {
 public:
  explicit RegionServer(Topic topic) : topic_(std::move(topic)) {}
  // The Topic keeps the fd open for as long as this capability lives.
  kj::Maybe<int> getFd() override { return topic_.fd(); }

 protected:
  kj::Promise<void> describe(DescribeContext context) override;

 private:
  Topic topic_;
};

// A service region served the same way (openService replies); the Service keeps its fd open.
class ServiceRegionServer final : public control::ServiceRegion::Server {
 public:
  explicit ServiceRegionServer(Service service) : service_(std::move(service)) {}
  kj::Maybe<int> getFd() override { return service_.fd(); }

 protected:
  kj::Promise<void> describe(DescribeContext context) override;

 private:
  Service service_;
};

}  // namespace shmbus::wire
