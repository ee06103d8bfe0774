// shmbus::Client: a process's connection to the bus daemon (shmbusd).
//
//   shmbus::Client client;                                   // the bus "default"
//   shmbus::Topic topic = client.open_topic(config, shmbus::Role::publisher);
//   shmbus::RawPublisher pub = client.publisher(topic);      // registered with the daemon
//   ... pub.loan() / pub.publish() exactly as without a daemon ...
//
//   shmbus::Topic t2 = client.open_topic("camera/front", shmbus::Role::subscriber);
//   shmbus::Subscriber<Frame> sub(t2);
//   client.register_subscriber(sub.raw());                   // typed: register the raw part
//
// What the daemon does for you: creates the topic's region (or hands you the existing one) if
// the bus's access rules let your uid/gid take that role; records the topic's message schema;
// and, when your process dies (its connection closes), gives back every loan, held sample and
// slot it had registered, within milliseconds, so nobody else waits for it.
//
// The daemon is never on the data path: loan/publish/take touch only shared memory. When the
// daemon stops, publishers and subscribers go on working; the client reconnects in the
// background (every 100 ms..1 s) and re-registers its topics and slots with the new daemon,
// handing back regions the new daemon does not know. While disconnected, set-up calls
// (open_topic, registration) throw Error(system_error) saying the daemon is unreachable.
//
// When the daemon revokes a topic's region (its file opened for writing or truncated by
// someone else) and serves a fresh one, the publishers and subscribers this client made or
// registered follow it by themselves at their next call: subscribers count what was lost
// (RawSubscriber::lost_revoked()). See docs/usage.md, "Revocation and resumption".
//
// Lifetime: destroy publishers/subscribers before the Client, or accept that they are no
// longer looked after: ~Client() first tells the daemon to forget this client's
// registrations (so they are not reclaimed while still in use), then disconnects.
//
// Threads: all methods are thread-safe. The Client runs one background thread with its own
// event loop (Cap'n Proto/KJ); calls block the caller until the daemon answers or
// `ClientOptions::timeout` passes.
#pragma once

#include <capnp/schema.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "shmbus/config.hpp"
#include "shmbus/durable_client.hpp"
#include "shmbus/raw.hpp"
#include "shmbus/service.hpp"
#include "shmbus/topic.hpp"

namespace shmbus {

// Which side of a topic a process wants: checked against the daemon's access rules.
enum class Role { publisher, subscriber };

// The system daemon's directory: /run/shmbus, or $SHMBUS_SYSTEM_RUNTIME_DIR when set (tests,
// or a system daemon installed elsewhere).
std::filesystem::path system_runtime_dir();
// The directory holding bus sockets and regions of a daemon started by this user:
// system_runtime_dir() as root, else $XDG_RUNTIME_DIR/shmbus, else /tmp/shmbus-<uid>.
std::filesystem::path default_runtime_dir();
// The control socket of bus `bus` under `runtime_dir` (default_runtime_dir() when empty).
std::filesystem::path bus_socket_path(const std::string& bus = "default",
                                      const std::filesystem::path& runtime_dir = {});

struct ClientOptions {
  std::string bus = "default";
  std::filesystem::path socket;   // explicit socket path; overrides `bus` (see socket_search_path)
  std::string name;               // shown by `shmbus clients`; default: /proc/self/comm
  std::chrono::milliseconds timeout{5000};  // per control request
  // Reconnect and re-register after the daemon restarts, and follow revoked topics: a
  // publisher or subscriber this client made or registered moves by itself to the fresh
  // region the daemon serves after revoking its region (docs/usage.md, "Revocation and
  // resumption"). false: fail at once, and region_lost is final.
  bool reconnect = true;
};

// The sockets a Client tries, in order, until one answers: `options.socket` alone when set;
// else $SHMBUS_SOCKET alone when set; else the bus's socket under default_runtime_dir() (a
// daemon of your own), then under system_runtime_dir() (the system daemon, e.g. the shipped
// systemd unit's, which admits other users and leaves the decision to its access rules).
std::vector<std::filesystem::path> socket_search_path(const ClientOptions& options);

// Which side of a request/response service a process wants (docs/services.md): checked
// against the access rules' `call` and `serve` lists.
enum class ServiceRole { call, serve };

// The bus daemon's view of itself (Client::status()).
struct BusStatusInfo {
  std::string bus_name;
  pid_t daemon_pid = 0;
  std::uint32_t daemon_uid = 0;
  std::uint32_t protocol_version = 0;
  std::uint64_t epoch = 0;        // daemon start, seconds since the Unix epoch
  std::uint64_t uptime_ms = 0;
  std::uint32_t topics = 0;
  std::uint32_t clients = 0;
  std::string socket_path;
  std::string region_dir;
  std::string rules_source;       // config file of the access rules, or "built-in default"
};

// One publisher/subscriber slot of a topic, as the daemon sees it (Client::list_topics()).
struct SlotListing {
  Role role;
  std::uint32_t slot;
  pid_t pid;                      // as the slot's owner recorded it in the region
  std::uint64_t messages;         // published, or taken
  std::uint64_t lost;
  std::uint64_t backlog;
  std::uint32_t chunks_held;
  std::uint64_t client_id;        // connection that registered it; 0 = not registered
};

// The registry's record of a topic (Client::list_topics()).
struct TopicListing {
  TopicConfig config;             // config.schema holds the recorded type schema, if any
  bool anonymous = true;
  std::filesystem::path path;     // region file; empty for anonymous regions
  std::uint64_t region_size = 0;
  std::uint64_t published = 0;
  std::vector<SizeClassUsage> classes;
  std::vector<SlotListing> slots;
  std::uint32_t creator_uid = 0;
  bool adopted = false;
  bool revoked = false;           // revoked after a lease break: listed until its clients are gone
  bool leased = false;            // file-backed: the daemon holds the file's write lease now
};

// A connected process (Client::clients()).
struct ClientListing {
  std::uint64_t id;
  pid_t pid;                      // from SO_PEERCRED; 0 if in another pid namespace
  std::uint32_t uid, gid;
  std::string name;
  std::uint64_t connected_ms;
  struct Registration { std::string topic; Role role; std::uint32_t slot; };
  std::vector<Registration> registrations;
};

class Client {
 public:
  // Connects to the first socket of socket_search_path() that answers. Throws
  // Error(access_denied) when a socket refused this process's permission to connect (the
  // message names the socket and what the operator can change), else Error(system_error)
  // naming every socket tried and why each failed.
  Client();
  explicit Client(ClientOptions options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Opens (creating if needed) the topic `config.name`. Fields of `config` are what the
  // client asks for; the daemon's per-topic settings may override them (read the result's
  // config()). `type_schema`: optional serialized schema nodes (see open_topic<T>).
  // Throws Error(access_denied) when the access rules refuse the role, or refuse creating a
  // topic the bus does not have yet (the `create` right), with the daemon's reason naming the
  // rule, the right and the uid; Error(type_mismatch) when the topic exists with another type
  // id; Error(invalid_config) when the daemon cannot create it with this configuration;
  // Error(rate_limited) over the connection's request budget; Error(system_error) when the
  // daemon is unreachable.
  Topic open_topic(const TopicConfig& config, Role role, std::span<const std::byte> type_schema = {});
  // Opens a topic with the daemon's default configuration for that name.
  Topic open_topic(const std::string& name, Role role);
  // Opens a topic the bus already has; never creates one. Throws Error(no_such_topic) when
  // the bus has none of that name (after the access check: a refused role still reads as
  // access_denied), else as open_topic.
  Topic open_existing_topic(const std::string& name, Role role);
  // Typed: records T's type id and schema (T and its dependencies) with the topic.
  template <typename T>
  Topic open_topic(TopicConfig config, Role role) {
    config.type_id = capnp::typeId<T>();
    return open_topic_typed(config, role, capnp::Schema::from<T>());
  }

  // Opens (creating if needed) the request/response service `config.name`: the daemon creates
  // or hands out its service region and its two topics (their configuration is the one the
  // service was created with; `config` matters only to the creator). `role` is checked
  // against the access rules' `call` / `serve` lists, creating against `create` (or
  // `serve`): Error(access_denied) names the rule. Then make a ServiceClient (call) or a
  // ServiceServer (serve) on the result as without a daemon. The daemon frees the rows of
  // dead servers and clients and reclaims their chunks (docs/services.md). Other errors as
  // open_topic; Error(type_mismatch) when the service exists with other type ids.
  Service open_service(const ServiceConfig& config, ServiceRole role);
  // Opens a service the bus already has; never creates one (Error(no_such_topic)).
  Service open_existing_service(const std::string& name, ServiceRole role);
  // The services this process may call or serve.
  std::vector<ServiceListing> list_services();

  // A publisher/subscriber on `topic`, registered with the daemon.
  RawPublisher publisher(const Topic& topic);
  RawSubscriber subscriber(const Topic& topic, SubscriberOptions options = {});
  // Registers one made by hand (typed ones: pass pub.raw() / sub.raw()). The topic must have
  // been opened through this client with the matching role. From then on (with
  // ClientOptions::reconnect) it follows its topic to a fresh region after a revocation; this
  // is the one change registration makes to the object, so call it from the thread that owns
  // the publisher/subscriber.
  void register_publisher(const RawPublisher& pub);
  void register_subscriber(const RawSubscriber& sub);
  // Tells the daemon to forget a registration; call before handing the slot's clean-up to
  // someone else. The publisher/subscriber no longer follows revoked topics either.
  // Destroying a publisher/subscriber needs no call: a stale registration is never acted on
  // (it is matched by generation).
  void unregister_publisher(const RawPublisher& pub);
  void unregister_subscriber(const RawSubscriber& sub);

  // Durable topics the daemon declares (durable_client.hpp; docs/durable.md). The role is
  // checked like a topic's: publisher = append, subscriber = read. Throws Error(access_denied)
  // naming the rule, Error(no_such_topic) for a log the daemon does not declare,
  // Error(system_error) when the daemon is unreachable; the open itself throws as
  // DurableAppender/DurableReader do. Appending and reading then need no daemon.
  DurableLogInfo durable_log(const std::string& name, Role role);
  std::unique_ptr<DurableAppender> open_durable_appender(const std::string& name);
  DurableReader open_durable_reader(const std::string& name, const DurableStart& from = DurableStart::oldest());

  BusStatusInfo status();
  // The registry: every topic with its configuration, pool use and slots.
  std::vector<TopicListing> list_topics();
  // Every connected process and what it registered.
  std::vector<ClientListing> clients();
  // True while the control connection is up (false between a daemon crash and reconnection).
  bool connected() const;
  // Connections made so far (1 + reconnections); for tests and diagnostics.
  std::uint64_t connection_count() const;
  // The socket of the daemon this client connected to last (one of socket_search_path()).
  std::filesystem::path socket_path() const;

  struct Impl;

 private:
  Topic open_topic_typed(const TopicConfig& config, Role role, capnp::Schema schema);

  // ---- following revoked topics (bus/control/client.cpp, "Following revoked topics") ----
  void start_following_revoked_topics();
  void stop_following_revoked_topics() noexcept;
  // Lets a publisher/subscriber registered here reopen its topic after region_lost.
  void follow_revoked_topic(detail::Resumption& r) const noexcept;

  std::unique_ptr<Impl> impl_;
};

// Serializes `schema` and every struct/enum/interface it refers to, as the `typeSchema` bytes
// of the control protocol: a Cap'n Proto message whose root is a CodeGeneratorRequest with
// only `nodes` filled.
std::string serialize_schema_nodes(capnp::Schema schema);

}  // namespace shmbus
