// The daemon's registry and per-client records. Internal to shmbusd_lib; touched only by the
// thread running Daemon::run() (after construction).
#pragma once

#include <kj/async-io.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "control.capnp.h"
#include "daemon.hpp"
#include "durable_watch.hpp"
#include "instance_lock.hpp"
#include "metrics_endpoint.hpp"
#include "peer.hpp"
#include "request_budget.hpp"
#include "shmbus/client.hpp"
#include "shmbus/service.hpp"
#include "shmbus/topic.hpp"

namespace shmbusd {

namespace control = shmbus::control;

struct TopicEntry {
  shmbus::Topic topic;
  // typeSchema bytes: recorded in the region at creation (TopicConfig::schema), else as the
  // first opener that had one gave them.
  std::string schema;
  bool adopted = false;      // from a previous daemon's region directory, or handed back
  uid_t creator_uid = 0;
  // File-backed only (lease_watch.cpp): the daemon holds the write lease on topic.fd() now;
  // "cannot take it" was logged already (logged once per outage, not every sweep).
  bool leased = false;
  bool lease_wait_logged = false;
  // Payload pools publishers registered (anonymous regions): (pool, generation) -> memfd.
  // Kept while the generation may still be read (detail::pool_in_use), so that subscribers of
  // other users, and any subscriber after the publisher exited, can still map it.
  std::map<std::pair<std::uint32_t, std::uint32_t>, std::shared_ptr<kj::AutoCloseFd>> pools;
  // The region's configuration words as the daemon first saw them (detail::immutable_words()):
  // the sweep revokes the topic when they change (detail::find_damage()).
  std::vector<std::byte> immutable_words;
};

// A topic whose file was opened for writing or truncated by another process: the daemon
// stopped serving it, renamed the file aside and keeps this record (not the mapping: the file
// may be truncated under it) so listTopics can show what happened.
struct RevokedTopic {
  std::string name;
  shmbus::TopicConfig config;
  std::filesystem::path file;  // the renamed file, or the original path if the rename failed
  std::uint64_t region_size = 0;
  uid_t creator_uid = 0;
};

// A request/response service (daemon/services.cpp): its region, and its two topics, which are
// ordinary entries of the topic registry as well (leases, damage checks, dead-slot reclaim).
struct ServiceEntry {
  shmbus::Service service;
  uid_t creator_uid = 0;
  bool adopted = false;  // re-adopted from a previous daemon's region directory
};

class LeaseWatch;

struct SlotRegistration {
  std::string topic;
  bool publisher;
  std::uint32_t slot;
  std::uint64_t generation;
  bool operator<(const SlotRegistration& o) const {
    return std::tie(topic, publisher, slot, generation) < std::tie(o.topic, o.publisher, o.slot, o.generation);
  }
};

struct ClientState {
  std::uint64_t id = 0;
  Peer peer;
  std::string name;
  std::chrono::steady_clock::time_point connected_at;
  bool spoke = false;  // made at least one request
  RequestBudget budget;
  std::chrono::steady_clock::time_point last_refusal_log;
  // Fulfilled to close the connection from inside a request (a client that floods). Its
  // registrations are then forgotten, not reclaimed: the process is alive and still using
  // its slots; the dead-owner sweep frees them once it exits.
  kj::Own<kj::PromiseFulfiller<void>> cut_off;
  bool was_cut_off = false;
  std::set<std::pair<std::string, bool>> granted;  // (topic, publisher?) allowed on this connection
  std::set<SlotRegistration> regs;
  std::set<std::string> services;  // opened on this connection: their dead rows go when it ends
  std::string tag() const { return "client #" + std::to_string(id) + " (" + peer.describe() + ")"; }
  ~ClientState();  // closes the pidfd
};

struct Daemon::State {
  Options opts;
  std::unique_ptr<InstanceLock> lock;
  int listen_fd = -1;
  int stop_fd = -1;    // eventfd
  int reload_fd = -1;  // eventfd
  std::uint64_t epoch = 0;
  std::chrono::steady_clock::time_point started;
  std::map<std::string, TopicEntry> topics;
  std::vector<RevokedTopic> revoked;  // most recent last, at most kMaxRevokedListed
  static constexpr std::size_t kMaxRevokedListed = 32;
  // Region files a previous daemon left that still carry its lease, with when we first saw
  // them (see adopt_region_files): adopted when a client hands back its descriptor, else
  // retried by the sweep.
  std::map<std::filesystem::path, std::chrono::steady_clock::time_point> pending_adopt;
  // How long the sweep leaves a leased file to a client's hand-back before it opens the path
  // itself (which starts the kernel's lease-break-time countdown).
  static constexpr std::chrono::seconds kHandBackWait{5};
  std::map<std::string, ServiceEntry> services;
  // Service region files whose topics were not re-adopted yet (their leases): retried by the sweep.
  std::set<std::filesystem::path> pending_services;
  std::map<std::uint64_t, std::shared_ptr<ClientState>> clients;
  std::uint64_t next_client_id = 1;
  DurableWatch durable_watch;  // the declared logs' truncation check and retention, on the sweep
  std::unique_ptr<MetricsEndpoint> metrics;  // with Options::metrics_port; fed by the sweep
  // Hands the endpoint the topics now served (after each sweep: at most 500 ms behind).
  void feed_metrics();

  // Valid during run().
  kj::AsyncIoContext* io = nullptr;
  LeaseWatch* leases = nullptr;

  // Creates the topic region (config resolved from the request, the defaults and the operator's
  // settings) or returns the existing one. Throws a kj::Exception for the client on error.
  TopicEntry& open_or_create(control::TopicConfig::Reader request, std::string type_schema, uid_t creator);
  // Gives back what `client` registered: all of it (its connection closed), or only slots whose
  // owner pid in the region is `dead_pid` (its pidfd fired). Returns slots reclaimed.
  std::size_t reclaim(ClientState& client, pid_t dead_pid = 0);
  // ---- services (daemon/services.cpp) ----
  // Creates service `request.name` (region and both topics) over the library's defaults.
  // Throws shmbus::Error: invalid_config, or type_mismatch when one of its topics exists alone.
  ServiceEntry& create_service(control::ServiceConfig::Reader request, std::string request_schema,
                               std::string response_schema, uid_t creator);
  // Frees the rows of dead servers and clients of `names` (every service when empty), their
  // pending calls' clients then see server_gone; with `topics_too` also the dead processes'
  // slots of those services' topics (the sweep reclaims topics by itself). Returns how many.
  std::size_t reclaim_services(const std::set<std::string>& names, bool topics_too);
  // At start: the service region files of the region directory (pending_services), then
  // adopt_service_files(). The daemon makes service files only for services it holds, so the
  // directory is read once.
  void scan_service_files();
  // The pending service files whose two topics are registered (no system call for the others).
  void adopt_service_files();
  void reload_rules();
  void adopt_region_files();
  // One region file; false if a file lease on it is still held by somebody who does not answer.
  bool adopt_region_file(const std::filesystem::path& file, std::chrono::milliseconds lease_wait);
  void retry_pending_adoptions();
  // The pending file (see pending_adopt) that `fd` is open on, matched by device and inode.
  std::optional<std::filesystem::path> pending_file_of(int fd) const;
  // Registers the file-backed region `topic` (mapped from `file` by path, or through the file
  // description a client handed back, which carries the previous daemon's lease) and takes
  // its lease. Its owner is the file's; `fallback_owner` if the file cannot be stat'ed.
  std::map<std::string, TopicEntry>::iterator adopt(const std::string& name, shmbus::Topic topic,
                                                    const std::filesystem::path& file, uid_t fallback_owner);
};

// Refuses the request in progress: logged, and thrown as wire::refusal(code, reason), which the
// client turns into an Errc and keeps the reason.
[[noreturn]] void refuse(const ClientState& client, control::RefusalCode code, const std::string& reason);

// The Bus capability served to one connection.
kj::Own<control::Bus::Server> make_bus_service(Daemon::State& daemon, std::shared_ptr<ClientState> client);

}  // namespace shmbusd
