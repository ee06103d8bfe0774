#include "control/region_cap.hpp"

namespace shmbus::wire {

kj::Promise<void> RegionServer::describe(DescribeContext context) {
  auto r = context.getResults();
  r.setTopic(topic_.name());
  r.setSize(topic_.mapping_size());
  r.setBacking(topic_.path().empty() ? control::Backing::ANONYMOUS : control::Backing::FILE);
  r.setPath(topic_.path().string());
  return kj::READY_NOW;
}

kj::Promise<void> ServiceRegionServer::describe(DescribeContext context) {
  auto r = context.getResults();
  r.setService(service_.name());
  r.setBacking(service_.requests().path().empty() ? control::Backing::ANONYMOUS : control::Backing::FILE);
  return kj::READY_NOW;
}

}  // namespace shmbus::wire
