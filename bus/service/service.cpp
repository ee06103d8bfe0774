// shmbus::Service: creating and opening a service's two topics and its service region, and
// what tools see of it (include/shmbus/service.hpp).
#include "shmbus/service.hpp"

#include <algorithm>

#include "process_identity.hpp"
#include "service/service_region.hpp"

namespace shmbus {

using namespace detail;

namespace {

std::string file_stem(std::string name) {
  std::replace(name.begin(), name.end(), '/', '%');  // as topic files name topics with '/'
  return name;
}

std::filesystem::path topic_file(const std::filesystem::path& directory, const std::string& topic) {
  return directory / (file_stem(topic) + ".shmbus");
}

// The payload classes plus room for the header in front of every request or response.
std::vector<SizeClass> with_header(std::vector<SizeClass> classes, std::size_t header) {
  for (SizeClass& c : classes) c.chunk_size += header;
  return classes;
}

}  // namespace

std::string Service::request_topic_name(const std::string& name) { return "service/" + name + "/request"; }
std::string Service::response_topic_name(const std::string& name) { return "service/" + name + "/response"; }

std::filesystem::path Service::region_file(const std::filesystem::path& directory, const std::string& name) {
  return directory / (file_stem("service/" + name) + ".shmsvc");
}

ServiceRegion& detail::ServiceAccess::region(const Service& service) noexcept { return *service.region_; }

Service::Service(std::shared_ptr<ServiceRegion> region, Topic requests, Topic responses)
    : region_(std::move(region)), requests_(std::move(requests)), responses_(std::move(responses)) {}

Service Service::create(const ServiceConfig& config, const RegionOptions& options) {
  const bool file = options.backing == RegionOptions::Backing::file;
  if (file && options.directory.empty()) {
    throw Error(Errc::invalid_config, "service '" + config.name + "': file backing needs a directory");
  }
  // The service region first: it validates the name and the row counts.
  auto region = ServiceRegion::create(config, file ? region_file(options.directory, config.name) : "", options.file_mode);
  TopicConfig req;
  req.name = request_topic_name(config.name);
  req.size_classes = with_header(config.request_classes, sizeof(RequestHeader));
  req.queue_depth = config.request_queue_depth;
  req.policy = config.request_policy;
  req.block_timeout = config.block_timeout;
  req.max_publishers = config.max_clients;
  req.max_subscribers = config.max_servers;
  // The types travel with the topics' regions (as any topic records its type), so every
  // process that maps the service, and tools, can read them without a daemon.
  req.type_id = config.request_type_id;
  req.schema = config.request_schema;
  TopicConfig resp = req;
  resp.name = response_topic_name(config.name);
  resp.type_id = config.response_type_id;
  resp.schema = config.response_schema;
  resp.size_classes = with_header(config.response_classes, sizeof(ResponseHeader));
  resp.queue_depth = config.response_queue_depth;
  resp.policy = config.response_policy;
  resp.max_publishers = config.max_servers;
  resp.max_subscribers = config.max_clients;
  // A client holds the responses it took for its other calls until they are received.
  resp.max_held_per_subscriber = std::max<std::uint32_t>(32, 2 * config.max_calls_per_client);
  try {
    Topic requests = Topic::create(req, options);
    try {
      Topic responses = Topic::create(resp, options);
      return Service(std::move(region), std::move(requests), std::move(responses));
    } catch (...) {
      if (file) std::filesystem::remove(requests.path());
      throw;
    }
  } catch (...) {
    if (file) std::filesystem::remove(region_file(options.directory, config.name));
    throw;
  }
}

Service Service::open_files(const std::filesystem::path& directory, const std::string& name) {
  const std::filesystem::path path = region_file(directory, name);
  auto region = ServiceRegion::open_file(path);
  if (region->name() != name) {
    throw Error(Errc::region_corrupt, path.string() + ": records service '" + region->name() + "', not '" + name + "'");
  }
  return Service(std::move(region), Topic::open_file(topic_file(directory, request_topic_name(name))),
                 Topic::open_file(topic_file(directory, response_topic_name(name))));
}

Service Service::open_fds(int region_fd, int requests_fd, int responses_fd) {
  return open(region_fd, Topic::open_fd(requests_fd), Topic::open_fd(responses_fd));
}

Service Service::open(int region_fd, Topic requests, Topic responses) {
  auto region = ServiceRegion::open_fd(region_fd);
  if (requests.name() != request_topic_name(region->name()) || responses.name() != response_topic_name(region->name())) {
    throw Error(Errc::invalid_config, "service '" + region->name() + "': topics '" + requests.name() + "' and '" +
                                          responses.name() + "' are not its request and response topics");
  }
  return Service(std::move(region), std::move(requests), std::move(responses));
}

const std::string& Service::name() const noexcept { return region_->name(); }
ServiceConfig Service::config() const {
  const TopicConfig& req = requests_.config();
  const TopicConfig& resp = responses_.config();
  auto without_header = [](std::vector<SizeClass> classes, std::size_t header) {
    for (SizeClass& c : classes) c.chunk_size = c.chunk_size > header ? c.chunk_size - header : 0;
    return classes;
  };
  ServiceConfig c;
  c.name = name();
  c.request_classes = without_header(req.size_classes, sizeof(RequestHeader));
  c.response_classes = without_header(resp.size_classes, sizeof(ResponseHeader));
  c.request_queue_depth = req.queue_depth;
  c.response_queue_depth = resp.queue_depth;
  c.request_policy = req.policy;
  c.response_policy = resp.policy;
  c.block_timeout = req.block_timeout;
  c.max_servers = max_servers();
  c.max_clients = max_clients();
  c.max_calls_per_client = max_calls_per_client();
  c.request_type_id = request_type_id();
  c.response_type_id = response_type_id();
  c.request_schema = req.schema;
  c.response_schema = resp.schema;
  return c;
}

const Topic& Service::requests() const noexcept { return requests_; }
const Topic& Service::responses() const noexcept { return responses_; }
int Service::fd() const noexcept { return region_->fd(); }
std::uint32_t Service::max_servers() const noexcept { return region_->max_servers(); }
std::uint32_t Service::max_clients() const noexcept { return region_->max_clients(); }
std::uint32_t Service::max_calls_per_client() const noexcept { return region_->calls_per_client(); }
std::uint64_t Service::request_type_id() const noexcept { return region_->header().request_type_id; }
std::uint64_t Service::response_type_id() const noexcept { return region_->header().response_type_id; }
const std::string& Service::request_schema() const noexcept { return requests_.config().schema; }
const std::string& Service::response_schema() const noexcept { return responses_.config().schema; }

namespace {
// Relaxed: pid and owner were published by the row's kRowActive store, which the caller's
// acquire load of state saw.
template <typename Row>
bool row_alive(const Row& r) noexcept {
  return owner_liveness(r.pid.load(std::memory_order_relaxed), r.owner) != Liveness::dead;
}
}  // namespace

std::vector<Service::ServerInfo> Service::servers() const {
  std::vector<ServerInfo> out;
  for (std::uint32_t i = 0; i < region_->max_servers(); ++i) {
    const ServerRow& r = region_->server(i);
    // Acquire: pairs with the row's release store of kRowActive, for pid.
    if (r.state.load(std::memory_order_acquire) != kRowActive) continue;
    out.push_back({i, r.pid.load(std::memory_order_relaxed), r.claimed.load(std::memory_order_relaxed), row_alive(r)});
  }
  return out;
}

std::vector<Service::ClientInfo> Service::clients() const {
  std::vector<ClientInfo> out;
  for (std::uint32_t i = 0; i < region_->max_clients(); ++i) {
    const ClientRow& r = region_->client(i);
    if (r.state.load(std::memory_order_acquire) != kRowActive) continue;  // as in servers()
    // The owner's own count: calls to a single server never write their call word. Relaxed:
    // a tool's snapshot; bounded, since the row is shared memory anyone may have written.
    std::uint32_t calls = std::min(r.calls_in_flight.load(std::memory_order_relaxed), region_->calls_per_client());
    out.push_back({i, r.pid.load(std::memory_order_relaxed), calls, row_alive(r)});
  }
  return out;
}

ServiceListing Service::listing() const {
  ServiceListing l;
  l.config = config();
  for (const ServerInfo& s : servers()) l.servers.push_back({s.id, s.pid, s.alive, s.claimed, 0});
  for (const ClientInfo& c : clients()) l.clients.push_back({c.id, c.pid, c.alive, 0, c.calls_in_flight});
  l.requests_published = requests_.stats().published;
  l.responses_published = responses_.stats().published;
  if (!requests_.path().empty()) l.path = region_file(requests_.path().parent_path(), name());
  return l;
}

std::size_t Service::reclaim_dead_owners() {
  std::size_t n = region_->reclaim_dead_rows();
  n += requests_.reclaim_dead_owners();
  n += responses_.reclaim_dead_owners();
  return n;
}

std::size_t Service::reclaim_dead_rows() { return region_->reclaim_dead_rows(); }

}  // namespace shmbus
