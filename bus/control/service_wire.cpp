// The control protocol's translation of services: ServiceConfig, ServiceRole and ServiceInfo
// (schema/control.capnp) to and from their shmbus types.
#include "control/wire.hpp"

namespace shmbus::wire {

void to_wire(const ServiceConfig& c, control::ServiceConfig::Builder out) {
  out.setName(c.name);
  to_wire(c.request_classes, out.initRequestClasses(static_cast<unsigned>(c.request_classes.size())));
  to_wire(c.response_classes, out.initResponseClasses(static_cast<unsigned>(c.response_classes.size())));
  out.setRequestQueueDepth(c.request_queue_depth);
  out.setResponseQueueDepth(c.response_queue_depth);
  out.setRequestPolicy(to_wire(c.request_policy));
  out.setResponsePolicy(to_wire(c.response_policy));
  out.setBlockTimeoutNs(static_cast<std::uint64_t>(c.block_timeout.count()));
  out.setMaxServers(c.max_servers);
  out.setMaxClients(c.max_clients);
  out.setMaxCallsPerClient(c.max_calls_per_client);
  out.setRequestTypeId(c.request_type_id);
  out.setResponseTypeId(c.response_type_id);
}

ServiceConfig from_wire(control::ServiceConfig::Reader r) {
  ServiceConfig c;
  c.name = r.getName();
  merge_classes(r.getRequestClasses(), c.request_classes);
  merge_classes(r.getResponseClasses(), c.response_classes);
  if (r.getRequestQueueDepth()) c.request_queue_depth = r.getRequestQueueDepth();
  if (r.getResponseQueueDepth()) c.response_queue_depth = r.getResponseQueueDepth();
  c.request_policy = from_wire(r.getRequestPolicy(), c.request_policy);
  c.response_policy = from_wire(r.getResponsePolicy(), c.response_policy);
  if (r.getBlockTimeoutNs()) c.block_timeout = std::chrono::nanoseconds(r.getBlockTimeoutNs());
  if (r.getMaxServers()) c.max_servers = r.getMaxServers();
  if (r.getMaxClients()) c.max_clients = r.getMaxClients();
  if (r.getMaxCallsPerClient()) c.max_calls_per_client = r.getMaxCallsPerClient();
  c.request_type_id = r.getRequestTypeId();
  c.response_type_id = r.getResponseTypeId();
  return c;
}

control::ServiceRole to_wire(ServiceRole role) {
  return role == ServiceRole::call ? control::ServiceRole::CALL : control::ServiceRole::SERVE;
}

void to_wire(const ServiceListing& l, control::ServiceInfo::Builder out) {
  to_wire(l.config, out.initConfig());
  out.setRequestSchema(data_of(l.config.request_schema));
  out.setResponseSchema(data_of(l.config.response_schema));
  auto rows = [](const std::vector<ServiceListing::Row>& in, capnp::List<control::ServiceRow>::Builder o) {
    for (unsigned i = 0; i < in.size(); ++i) {
      o[i].setId(in[i].id);
      o[i].setPid(in[i].pid);
      o[i].setAlive(in[i].alive);
      o[i].setServed(in[i].served);
      o[i].setCallsInFlight(in[i].calls_in_flight);
    }
  };
  rows(l.servers, out.initServers(static_cast<unsigned>(l.servers.size())));
  rows(l.clients, out.initClients(static_cast<unsigned>(l.clients.size())));
  out.setRequestsPublished(l.requests_published);
  out.setResponsesPublished(l.responses_published);
  out.setPath(l.path.string());
}

ServiceListing from_wire(control::ServiceInfo::Reader in) {
  ServiceListing l;
  l.config = from_wire(in.getConfig());
  l.config.request_schema = bytes_of(in.getRequestSchema());
  l.config.response_schema = bytes_of(in.getResponseSchema());
  auto rows = [](capnp::List<control::ServiceRow>::Reader r, std::vector<ServiceListing::Row>& o) {
    for (auto x : r) o.push_back({x.getId(), x.getPid(), x.getAlive(), x.getServed(), x.getCallsInFlight()});
  };
  rows(in.getServers(), l.servers);
  rows(in.getClients(), l.clients);
  l.requests_published = in.getRequestsPublished();
  l.responses_published = in.getResponsesPublished();
  l.path = std::string(in.getPath());
  return l;
}

}  // namespace shmbus::wire
