// Request/response services: a client sends a request and gets one response, or a stream of
// responses ended by the server, from one of the service's server processes; zero copy both
// ways (requests and responses are built and read in place in shared memory).
//
//   Service svc = Service::create({.name = "resize"}, options);   // or Service::open_files
//   // server process                          // client process
//   ServiceServer server(svc);                 ServiceClient client(svc);
//   auto req = server.take_wait(1s);           auto loan = client.loan(64);
//   auto out = server.loan(64);                fill(loan->data());
//   fill(out->data(), req->data());            auto call = client.send(std::move(*loan));
//   server.respond(*req, std::move(*out));     auto resp = call->receive_wait(100ms);
//
// A service is two ordinary topics ("service/NAME/request", "service/NAME/response") and a
// small service region that records the servers, the clients and one call word per call in
// flight (bus/service/service_layout.hpp). The library matches responses to calls itself: the
// user never sees a correlation id. Several servers share the load: every server sees every
// request and the first to claim its call word serves it (exactly one does), unless the client
// addressed one server (ServiceClient::send's `server`). A call sent while only one server is
// registered is addressed to it: no claim, no shared write per call (the fast path).
//
// Failure: a client waiting on a call whose server died (kill -9 included) or left gets
// Errc::server_gone within a few milliseconds (it checks the claimant's pid and start time
// every kLivenessPeriod while it waits), never a hang. A dead client's or server's loans and
// samples are reclaimed by the topics' ordinary machinery (Service::reclaim_dead_owners, or
// the bus daemon's sweep). Queues are bounded with the topics' slow-subscriber policies
// (ServiceConfig); a request lost to drop-oldest is never claimed, and its caller times out.
//
// Limits (docs/services.md): every client sees every response (it drops those of other
// clients), so size response_queue_depth for all clients' calls in flight; without a daemon a
// response whose server exited before the client mapped the server's pool is lost.
//
// Threads: a ServiceServer, a ServiceClient and its PendingCalls belong to one thread at a
// time. A PendingCall must not outlive its ServiceClient's thread of use; it keeps the
// client's state alive.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "shmbus/config.hpp"
#include "shmbus/error.hpp"
#include "shmbus/raw.hpp"
#include "shmbus/topic.hpp"

namespace shmbus {

namespace detail {
class ServiceRegion;
struct ClientState;
struct TypedServiceAccess;  // counts malformed typed messages (bus/service/typed_service.cpp)
struct ServiceAccess;       // the region, for Client::open_service (bus/service/service_region.hpp)
}  // namespace detail

struct ServiceConfig {
  std::string name;  // 1..191 bytes
  // Each client's request pool and each server's response pool (payload bytes; the library
  // adds room for its header). The queue keeps a reference to each of its last queue_depth
  // messages, so every class needs more chunks than its queue's depth (TopicConfig).
  std::vector<SizeClass> request_classes{{4096, 96}};
  std::vector<SizeClass> response_classes{{4096, 96}};
  std::uint32_t request_queue_depth = 64;   // every server sees every request
  std::uint32_t response_queue_depth = 64;  // every client sees every response
  SlowSubscriberPolicy request_policy = SlowSubscriberPolicy::drop_oldest;
  SlowSubscriberPolicy response_policy = SlowSubscriberPolicy::drop_oldest;
  std::chrono::nanoseconds block_timeout = std::chrono::seconds(1);
  std::uint32_t max_servers = 16;           // <= 1000
  std::uint32_t max_clients = 64;           // <= 4096
  std::uint32_t max_calls_per_client = 32;  // calls in flight per client, <= 4096
  std::uint64_t request_type_id = 0;        // Cap'n Proto struct ids, recorded; 0 = raw bytes
  std::uint64_t response_type_id = 0;
  // The types' schemas (serialized schema nodes, as TopicConfig::schema), recorded in the
  // request and response topics' regions so that tools (`shmbus call`) encode requests and
  // decode responses. typed_service<Req, Resp>() (shmbus/typed_service.hpp) fills ids and schemas.
  std::string request_schema;
  std::string response_schema;
};

// Addressing no server in particular: the first free server takes the call.
inline constexpr std::uint32_t kAnyServer = ~0u;

// What tools see of a service (Service::listing(), Client::list_services()).
struct ServiceListing {
  ServiceConfig config;           // as created, with the recorded schemas
  struct Row {
    std::uint32_t id;
    pid_t pid;
    bool alive;                   // its owner is not provably dead (start time, zombies dead)
    std::uint64_t served;         // servers: requests claimed
    std::uint32_t calls_in_flight;  // clients
  };
  std::vector<Row> servers, clients;
  std::uint64_t requests_published = 0, responses_published = 0;
  std::filesystem::path path;     // the service region's file; empty when anonymous
};

class Service {
 public:
  // Creates the service's two topics and its service region. File backing: three files in
  // options.directory ("service%NAME%request.shmbus", "...%response.shmbus",
  // "service%NAME.shmsvc"). Throws Error(invalid_config) naming what was wrong.
  static Service create(const ServiceConfig& config, const RegionOptions& options = {});
  // Opens a file-backed service in `directory`. Throws as Topic::open_file does; a service
  // region that fails validation throws not_a_region, unknown_layout_version or
  // region_corrupt naming the file and the field.
  static Service open_files(const std::filesystem::path& directory, const std::string& name);
  // Maps a service from the descriptors of its region and topics (as fd(), requests().fd(),
  // responses().fd() give them; duplicated), e.g. in a forked child or after SCM_RIGHTS.
  static Service open_fds(int region_fd, int requests_fd, int responses_fd);
  // Maps the region behind `region_fd` (duplicated) with its two topics already mapped (as
  // Client::open_service does). Throws as open_fds.
  static Service open(int region_fd, Topic requests, Topic responses);
  // The service region's file of a file-backed service in `directory`.
  static std::filesystem::path region_file(const std::filesystem::path& directory, const std::string& name);
  // Names of the service's topics.
  static std::string request_topic_name(const std::string& name);
  static std::string response_topic_name(const std::string& name);

  const std::string& name() const noexcept;
  // The configuration the service was created with (payload classes without the headers,
  // the recorded type ids and schemas), read from its regions.
  ServiceConfig config() const;
  const Topic& requests() const noexcept;
  const Topic& responses() const noexcept;
  int fd() const noexcept;  // the service region's descriptor
  std::uint32_t max_servers() const noexcept;
  std::uint32_t max_clients() const noexcept;
  std::uint32_t max_calls_per_client() const noexcept;
  std::uint64_t request_type_id() const noexcept;
  std::uint64_t response_type_id() const noexcept;

  // The recorded schemas (ServiceConfig::request_schema / response_schema); empty = raw.
  const std::string& request_schema() const noexcept;
  const std::string& response_schema() const noexcept;

  struct ServerInfo {
    std::uint32_t id;        // for ServiceClient::send's `server`
    pid_t pid;
    std::uint64_t claimed;   // requests served so far
    bool alive = true;       // false once its owner is provably dead (exited, killed, a zombie)
  };
  std::vector<ServerInfo> servers() const;
  struct ClientInfo {
    std::uint32_t id;
    pid_t pid;
    std::uint32_t calls_in_flight;
    bool alive = true;       // as ServerInfo::alive
  };
  std::vector<ClientInfo> clients() const;
  ServiceListing listing() const;

  // Frees the server and client rows of dead processes (their pending calls' clients then see
  // server_gone) and reclaims their loans and samples on both topics. Returns rows and topic
  // slots reclaimed. Safe at any time, from any process.
  std::size_t reclaim_dead_owners();
  // Only the rows (the bus daemon reclaims the two topics in its own sweep, with its budget).
  std::size_t reclaim_dead_rows();

 private:
  friend class ServiceServer;
  friend class ServiceClient;
  friend struct detail::ServiceAccess;
  Service(std::shared_ptr<detail::ServiceRegion> region, Topic requests, Topic responses);
  std::shared_ptr<detail::ServiceRegion> region_;
  Topic requests_;
  Topic responses_;
};

// ---- server side ----

// A request taken by a server, read in place. Keep it until the call is answered (the server
// needs it to address responses); destroying it releases its chunk.
class ServiceRequest {
 public:
  ServiceRequest() noexcept = default;
  std::span<const std::byte> data() const noexcept;  // the client's payload
  bool valid() const noexcept { return sample_.valid(); }
  std::uint32_t client() const noexcept { return client_; }  // the calling client's id

 private:
  friend class ServiceServer;
  friend struct detail::TypedServiceAccess;
  ServiceRequest(RawSample&& sample, std::uint32_t client, std::uint32_t call, std::uint32_t generation,
                 std::uint32_t client_generation, bool addressed) noexcept
      : sample_(std::move(sample)), client_(client), call_(call), generation_(generation),
        client_generation_(client_generation), addressed_(addressed) {}
  RawSample sample_;
  std::uint32_t client_ = 0, call_ = 0, generation_ = 0;
  std::uint32_t client_generation_ = 0;  // the client row's, when it sent
  bool addressed_ = false;               // to this server alone, no claim (service_layout.hpp rule 2a)
  mutable bool answered_ = false;        // its last response went out
};

// A response chunk loaned by a server: write data(), then ServiceServer::respond().
class ResponseLoan {
 public:
  ResponseLoan() noexcept = default;
  std::span<std::byte> data() const noexcept;
  bool valid() const noexcept { return loan_.valid(); }

 private:
  friend class ServiceServer;
  RawLoan loan_;
};

class ServiceServer {
 public:
  // Registers a server row and a subscriber on the requests and a publisher on the responses.
  // Throws Error(too_many_publishers/too_many_subscribers) when the service has max_servers.
  explicit ServiceServer(const Service& service, SubscriberOptions options = {});
  ~ServiceServer();
  ServiceServer(ServiceServer&&) noexcept;
  ServiceServer& operator=(ServiceServer&&) noexcept;

  // This server's id (clients may address it).
  std::uint32_t id() const noexcept { return row_; }

  // The next request this server claimed. Skips requests another server claimed, addressed
  // to another server, or dropped by their client before anyone claimed them. Errors:
  // no_data, malformed_message (a request without a valid header; it is dropped, the next
  // take goes on), and those of RawSubscriber::take().
  Result<ServiceRequest> take() noexcept;
  // Waits up to `timeout` for a request (Errc::timeout).
  Result<ServiceRequest> take_wait(std::chrono::nanoseconds timeout) noexcept;
  Status wait(std::chrono::nanoseconds timeout) noexcept;
  // Readable while requests may be waiting (RawSubscriber::event_fd()).
  int event_fd();

  // Loans a response of `size` payload bytes.
  Result<ResponseLoan> loan(std::size_t size) noexcept;
  // Sends the first `used` bytes of `response` (all by default) to the caller of `request`.
  // `last` ends the call's stream (a single response is a stream of one). Errors:
  // call_cancelled (the client dropped the call; the loan is given back), misuse (a request
  // this server did not take), and those of RawPublisher::publish().
  Status respond(const ServiceRequest& request, ResponseLoan&& response, bool last = true) noexcept;
  Status respond(const ServiceRequest& request, ResponseLoan&& response, std::size_t used, bool last) noexcept;
  // Ends the stream with an empty last response.
  Status end_stream(const ServiceRequest& request) noexcept;
  // True when the client dropped the call (or its process is gone): stop streaming.
  bool cancelled(const ServiceRequest& request) const noexcept;

 private:
  // An addressed call (service_layout.hpp rule 2a) its client dropped, or whose client is gone.
  bool addressed_call_ended(std::uint32_t client, std::uint32_t call, std::uint32_t generation,
                            std::uint32_t client_generation) const noexcept;
  std::shared_ptr<detail::ServiceRegion> region_;
  RawSubscriber requests_;
  RawPublisher responses_;
  std::uint32_t row_ = 0;
  std::uint32_t generation16_ = 0;  // our row's generation, as call words record it
};

// ---- client side ----

class RequestLoan {
 public:
  RequestLoan() noexcept = default;
  std::span<std::byte> data() const noexcept;
  bool valid() const noexcept { return loan_.valid(); }

 private:
  friend class ServiceClient;
  RawLoan loan_;
};

// One response of a call, read in place.
class ServiceResponse {
 public:
  ServiceResponse() noexcept = default;
  std::span<const std::byte> data() const noexcept;
  // The server ended the call's stream with this response.
  bool last() const noexcept { return last_; }
  std::uint32_t server() const noexcept { return server_; }  // the id of the server that sent it

 private:
  friend struct detail::ClientState;
  friend struct detail::TypedServiceAccess;
  ServiceResponse(RawSample&& sample, bool last, std::uint32_t server) noexcept
      : sample_(std::move(sample)), last_(last), server_(server) {}
  RawSample sample_;
  bool last_ = false;
  std::uint32_t server_ = 0;
};

// A call in flight. Its responses come through receive()/receive_wait(), in the order the
// server sent them. Destroying it before the last response cancels the call.
class PendingCall {
 public:
  PendingCall() noexcept = default;
  // Moves and the destruction of an empty call are inline (a call changes hands in send()).
  PendingCall(PendingCall&& other) noexcept
      : state_(std::exchange(other.state_, nullptr)), call_(other.call_), generation_(other.generation_) {}
  PendingCall& operator=(PendingCall&& other) noexcept {
    if (this != &other) {
      if (state_) release();
      state_ = std::exchange(other.state_, nullptr);
      call_ = other.call_;
      generation_ = other.generation_;
    }
    return *this;
  }
  ~PendingCall() {
    if (state_) release();
  }

  // The next response, or no_data. server_gone when the server died or left with the call
  // unfinished (checked at most every kLivenessPeriod). After the last response: no_data.
  Result<ServiceResponse> receive() noexcept;
  // Waits up to `timeout` for the next response: timeout, server_gone, or those of receive().
  Result<ServiceResponse> receive_wait(std::chrono::nanoseconds timeout) noexcept;
  // The last response was received.
  bool done() const noexcept;
  bool valid() const noexcept { return state_ != nullptr; }
  // The server that claimed the call, when one did.
  std::optional<std::uint32_t> server() const noexcept;

 private:
  friend class ServiceClient;
  void release() noexcept;  // gives the call index back (cancelling an unfinished call); empties
  // The client's state, which each call and the ServiceClient keep alive by a count that is
  // not atomic (they share one thread): no locked instruction per call.
  detail::ClientState* state_ = nullptr;
  std::uint32_t call_ = 0;
  std::uint32_t generation_ = 0;
};

// How often a waiting client checks that the server of its call is alive.
inline constexpr std::chrono::milliseconds kLivenessPeriod{5};

class ServiceClient {
 public:
  // Registers a client row, a publisher on the requests and a subscriber on the responses.
  explicit ServiceClient(const Service& service, SubscriberOptions options = {});
  ~ServiceClient();
  ServiceClient(ServiceClient&&) noexcept;
  ServiceClient& operator=(ServiceClient&&) noexcept;

  std::uint32_t id() const noexcept;

  // Loans a request of `size` payload bytes. Errors as RawPublisher::loan().
  Result<RequestLoan> loan(std::size_t size) noexcept;
  // Sends the first `used` bytes of `request` (all by default) to any server, or to server
  // `server` (an id of Service::servers()). Errors: too_many_calls, server_gone (no live server
  // could take it: none registered, or the addressed one is gone), and those of
  // RawPublisher::publish().
  Result<PendingCall> send(RequestLoan&& request, std::uint32_t server = kAnyServer) noexcept;
  Result<PendingCall> send(RequestLoan&& request, std::size_t used, std::uint32_t server) noexcept;
  // Calls in flight.
  std::uint32_t calls_in_flight() const noexcept;

 private:
  detail::ClientState* state_ = nullptr;  // counted, as PendingCall::state_
};

}  // namespace shmbus
