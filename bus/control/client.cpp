// shmbus::Client: the control connection to shmbusd, run on a background KJ event loop.
//
// Why a thread of its own: Cap'n Proto RPC objects belong to the thread whose event loop made
// them, the user's threads may already run an event loop (or none), and noticing that the
// daemon went away (to reconnect and re-register) needs a loop that is always running. User
// calls hop onto that thread with kj::Executor::executeSync() and block until answered.
#include "shmbus/client.hpp"

#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>
#include <kj/timer.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <thread>
#include <tuple>
#include <unistd.h>

#include "control.capnp.h"
#include "control/pool_cap.hpp"
#include "control/region_cap.hpp"
#include "control/wire.hpp"
#include "reopener.hpp"
#include "service/service_region.hpp"
#include "topic_admin.hpp"
#include "topic_map.hpp"

namespace shmbus {

namespace {

using Registration = wire::SlotRef;

// A connected, non-blocking, close-on-exec Unix stream socket, or -1 with errno set.
int connect_unix(const std::filesystem::path& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.native().size() >= sizeof(addr.sun_path)) {
    errno = ENAMETOOLONG;
    return -1;
  }
  std::memcpy(addr.sun_path, path.c_str(), path.native().size());
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    int err = errno;
    close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

std::string process_name() {
  std::ifstream comm("/proc/self/comm");
  std::string s;
  std::getline(comm, s);
  return s;
}

// A refused permission to connect, with what the operator can do about it.
std::string permission_denied(const std::filesystem::path& path) {
  return "permission denied on socket " + path.string() + ": uid " + std::to_string(geteuid()) +
         " may not reach it (the daemon's operator lets other users connect with socket_dir_mode, or with "
         "socket_group and membership of that group, in shmbusd.toml; its access rules then decide)";
}

class ClientReopener;  // "Following revoked topics", at the end of this file

}  // namespace

std::filesystem::path system_runtime_dir() {
  if (const char* dir = getenv("SHMBUS_SYSTEM_RUNTIME_DIR"); dir && *dir) return dir;
  return "/run/shmbus";
}

std::filesystem::path default_runtime_dir() {
  if (geteuid() == 0) return system_runtime_dir();
  if (const char* xdg = getenv("XDG_RUNTIME_DIR"); xdg && *xdg) return std::filesystem::path(xdg) / "shmbus";
  return "/tmp/shmbus-" + std::to_string(geteuid());
}

std::filesystem::path bus_socket_path(const std::string& bus, const std::filesystem::path& runtime_dir) {
  return (runtime_dir.empty() ? default_runtime_dir() : runtime_dir) / (bus + ".sock");
}

std::vector<std::filesystem::path> socket_search_path(const ClientOptions& options) {
  if (!options.socket.empty()) return {options.socket};
  if (const char* env = getenv("SHMBUS_SOCKET"); env && *env) return {env};
  std::vector<std::filesystem::path> paths = {bus_socket_path(options.bus)};
  std::filesystem::path system = bus_socket_path(options.bus, system_runtime_dir());
  if (system != paths.front()) paths.push_back(system);
  return paths;
}

struct Client::Impl {
  ClientOptions opts;
  std::vector<std::filesystem::path> candidates;  // socket_search_path(opts)
  std::filesystem::path socket;                   // the candidate last connected to; under `mu`
  Errc connect_error = Errc::system_error;        // access_denied when a socket refused us
  std::string name;

  // Shared between user threads and the loop thread.
  std::mutex mu;
  std::map<std::string, Topic> topics;  // opened through this client, by name
  std::set<Registration> regs;
  std::atomic<bool> up{false};
  std::atomic<std::uint64_t> connections{0};
  // Given to what this client makes or registers, so it follows a revoked topic (set when
  // opts.reconnect; null otherwise).
  std::shared_ptr<ClientReopener> reopener;

  // Where the topics this client mapped get payload pools from: this client, while it lives.
  // A Topic can outlive its Client, so each map holds this and not the client; ~Client()
  // empties it, waiting for fetches in flight (this client's lock, shared by fetches, never a
  // process-wide one).
  struct PoolBroker {
    std::shared_mutex mu;
    Impl* client = nullptr;  // under mu
  };
  std::shared_ptr<PoolBroker> pool_broker = std::make_shared<PoolBroker>();

  // Loop thread only (after start).
  std::thread thread;
  const kj::Executor* executor = nullptr;
  kj::AsyncIoContext* io = nullptr;
  kj::Own<kj::AsyncCapabilityStream> stream;
  kj::Own<capnp::TwoPartyClient> rpc;
  kj::Maybe<control::Bus::Client> bus;
  kj::Own<kj::PromiseFulfiller<void>> stop;
  struct LogErrors : kj::TaskSet::ErrorHandler {
    void taskFailed(kj::Exception&&) override {}  // a failed resync is retried on reconnect
  } log_errors;
  kj::Maybe<kj::TaskSet> tasks;

  void run(std::promise<std::string>& started);
  kj::Promise<void> connect_now();
  kj::Promise<void> resync();
  kj::Promise<void> reconnect(kj::Duration backoff);
  void drop_connection() {
    up = false;
    bus = nullptr;
    rpc = nullptr;  // before the stream it reads from
    stream = nullptr;
  }

  // Runs `f(bus)` (returning a kj::Promise) on the loop thread and waits for its result.
  template <typename F>
  auto call(const char* what, F&& f) {
    try {
      return executor->executeSync([&]() {
        KJ_IF_MAYBE (b, bus) {
          if (up) return io->provider->getTimer().timeoutAfter(opts.timeout.count() * kj::MILLISECONDS, f(*b));
        }
        kj::throwFatalException(KJ_EXCEPTION(DISCONNECTED, "not connected"));
      });
    } catch (const kj::Exception& e) {
      std::string why(e.getDescription().cStr());
      if (e.getType() == kj::Exception::Type::DISCONNECTED || e.getType() == kj::Exception::Type::OVERLOADED) {
        throw Error(Errc::system_error, std::string(what) + ": shmbus daemon at " + socket_now().string() +
                                            " is unreachable (" + why + ")");
      }
      wire::Refusal refused = wire::read_refusal(why);
      throw Error(wire::to_errc(refused.code), std::string(what) + ": " + refused.message);
    }
  }

  std::filesystem::path socket_now() {
    std::lock_guard lock(mu);
    return socket;
  }

  void add_registration(const Registration& r) {
    call("registering a slot", [&](control::Bus::Client& b) {
      auto req = b.registerSlotRequest();
      wire::to_wire(r, req.initSlot());
      return req.send().ignoreResult();
    });
    std::lock_guard lock(mu);
    regs.insert(r);
  }

  // Hands the daemon the memfd of this process's pool `pool` of `topic` (see registerPool),
  // so subscribers that cannot open it through /proc still read this publisher's messages.
  static kj::Promise<void> send_pool(control::Bus::Client& b, const Topic& topic, std::uint32_t pool) {
    std::optional<detail::PoolHandle> h = detail::own_pool(topic, pool);
    if (!h) return kj::READY_NOW;
    auto req = b.registerPoolRequest();
    req.setTopic(topic.name());
    req.setPool(pool);
    req.setGeneration(h->generation);
    req.setMemfd(kj::heap<wire::PoolServer>(topic.name(), pool, h->generation, h->fd));
    return req.send().ignoreResult();
  }

  void add_pool(const Topic& topic, std::uint32_t pool) {
    call("registering a payload pool", [&](control::Bus::Client& b) { return send_pool(b, topic, pool); });
  }

  // Hands the daemon every pool of `topic` this process created (its publishers' own pools).
  void add_own_pools(const Topic& topic) {
    if (!topic.external_pools()) return;
    const std::uint32_t pools = detail::TopicAccess::map(topic).config().max_publishers;  // pool index = slot
    for (std::uint32_t p = 0; p < pools; ++p) {
      if (detail::own_pool(topic, p)) add_pool(topic, p);
    }
  }

  // Hands `topic`'s map its pool source: the daemon's copy of a pool, asked for by the topic's
  // name as long as this client's latest handle of that name maps the same region (a topic
  // revoked and served anew under its name has other pools).
  // `or_proc`: a pool the daemon does not have is looked for through /proc all the same
  // (service topics: a pool of a process that has not taken its row yet).
  void serve_pools(const Topic& topic, bool or_proc = false) {
    struct stat region {};
    if (fstat(topic.fd(), &region) != 0) return;  // the source only adds a way to find pools
    detail::TopicAccess::map(topic).set_pool_fd_source([broker = pool_broker, name = topic.name(), dev = region.st_dev,
                                    ino = region.st_ino, or_proc](std::uint32_t pool, std::uint32_t generation) {
      std::shared_lock lock(broker->mu);
      if (broker->client == nullptr) return detail::TopicMap::kPoolUnknownHere;  // client gone
      int fd = broker->client->fetch_pool(name, dev, ino, pool, generation);
      return or_proc && fd == detail::TopicMap::kPoolRefused ? detail::TopicMap::kPoolUnknownHere : fd;
    });
  }

  // The daemon's copy of pool `pool` at `generation` of topic `name` (region dev/ino);
  // kPoolUnknownHere (not the region this client's handle of `name` maps, daemon unreachable)
  // or kPoolRefused (the daemon has no such pool). Never throws.
  int fetch_pool(const std::string& name, dev_t dev, ino_t ino, std::uint32_t pool, std::uint32_t generation) {
    {
      std::lock_guard lock(mu);
      auto it = topics.find(name);
      struct stat have {};
      if (it == topics.end() || fstat(it->second.fd(), &have) != 0 || have.st_dev != dev || have.st_ino != ino) {
        return detail::TopicMap::kPoolUnknownHere;
      }
    }
    if (!up) return detail::TopicMap::kPoolUnknownHere;
    try {
      return call("fetching a payload pool", [&](control::Bus::Client& b) {
        auto req = b.getPoolRequest();
        req.setTopic(name);
        req.setPool(pool);
        req.setGeneration(generation);
        return req.send().then([](capnp::Response<control::Bus::GetPoolResults>&& resp) {
          control::PayloadPool::Client memfd = resp.getMemfd();
          return memfd.getFd()
              .then([memfd](kj::Maybe<int> fd) mutable -> int {
                KJ_IF_MAYBE (f, fd) {
                  int own = fcntl(*f, F_DUPFD_CLOEXEC, 0);  // theirs closes with the reply (see open_topic)
                  return own >= 0 ? own : detail::TopicMap::kPoolUnknownHere;
                }
                return detail::TopicMap::kPoolRefused;
              })
              .attach(kj::mv(resp));
        });
      });
    } catch (const Error& e) {
      return e.code() == Errc::system_error ? detail::TopicMap::kPoolUnknownHere : detail::TopicMap::kPoolRefused;
    } catch (const std::exception&) {
      return detail::TopicMap::kPoolUnknownHere;
    }
  }

  void remove_registration(const Registration& r) {
    {
      std::lock_guard lock(mu);
      regs.erase(r);
    }
    call("unregistering a slot", [&](control::Bus::Client& b) {
      auto req = b.unregisterSlotRequest();
      wire::to_wire(r, req.initSlot());
      return req.send().ignoreResult();
    });
  }
};

void Client::Impl::run(std::promise<std::string>& started) {
  kj::AsyncIoContext ctx = kj::setupAsyncIo();
  io = &ctx;
  executor = &kj::getCurrentThreadExecutor();
  tasks.emplace(log_errors);
  auto paf = kj::newPromiseAndFulfiller<void>();
  stop = kj::mv(paf.fulfiller);
  std::string error;
  KJ_IF_MAYBE (e, kj::runCatchingExceptions([&]() { connect_now().wait(ctx.waitScope); })) {
    error = e->getDescription().cStr();
  }
  started.set_value(error);
  if (error.empty()) paf.promise.wait(ctx.waitScope);
  tasks = nullptr;
  drop_connection();
  io = nullptr;
}

kj::Promise<void> Client::Impl::connect_now() {
  // The first candidate that answers: a per-user daemon, else the system one. Each failure is
  // named, so "no daemon" and "not allowed to reach it" read differently.
  int fd = -1;
  std::string denied, absent;  // why each candidate failed
  connect_error = Errc::system_error;
  for (const std::filesystem::path& path : candidates) {
    fd = connect_unix(path);
    if (fd >= 0) {
      std::lock_guard lock(mu);  // read by user threads for messages and socket_path()
      socket = path;
      break;
    }
    const int err = errno;
    if (err == EACCES || err == EPERM) {
      connect_error = Errc::access_denied;
      denied += (denied.empty() ? "" : "; ") + permission_denied(path);
    } else {
      absent += (absent.empty() ? "" : ", ") + path.string() + " (" + strerror(err) + ")";
    }
  }
  if (fd < 0) {
    const std::string bus = opts.socket.empty() ? "for bus '" + opts.bus + "' " : "";
    const std::string why = denied.empty()   ? "no shmbusd answers " + bus + "at " + absent
                            : absent.empty() ? denied
                                             : denied + "; no shmbusd at " + absent;
    return kj::Exception(kj::Exception::Type::DISCONNECTED, __FILE__, __LINE__, kj::str(why));
  }
  stream = io->lowLevelProvider->wrapUnixSocketFd(
      fd, kj::LowLevelAsyncIoProvider::TAKE_OWNERSHIP | kj::LowLevelAsyncIoProvider::ALREADY_CLOEXEC |
              kj::LowLevelAsyncIoProvider::ALREADY_NONBLOCK);
  // One fd per incoming message: the region fd of an openTopic/adoptRegion reply.
  rpc = kj::heap<capnp::TwoPartyClient>(*stream, 1);
  control::Bus::Client b = rpc->bootstrap().castAs<control::Bus>();
  bus = b;
  auto req = b.helloRequest();
  req.setClientName(name);
  req.setProtocolVersion(control::PROTOCOL_VERSION);
  return req.send()
      .then(
          [this](auto&&) {
            up = true;
            return resync();
          },
          [this](kj::Exception&& e) -> kj::Promise<void> {
            if (e.getType() != kj::Exception::Type::DISCONNECTED) return kj::mv(e);
            return kj::Exception(kj::Exception::Type::DISCONNECTED, __FILE__, __LINE__,
                                 kj::str("shmbusd at ", socket_now().string(),
                                         " closed the connection before answering (its log says why, e.g. this uid "
                                         "holds max_connections_per_uid connections already): ",
                                         e.getDescription()));
          })
      .then([this]() {
        ++connections;
        if (!opts.reconnect) return;
        auto& t = KJ_ASSERT_NONNULL(tasks);
        t.add(rpc->onDisconnect().then([this]() { return reconnect(100 * kj::MILLISECONDS); }));
      });
}

kj::Promise<void> Client::Impl::reconnect(kj::Duration backoff) {
  drop_connection();
  return kj::evalNow([this]() { return connect_now(); })
      .catch_([this, backoff](kj::Exception&&) {
        drop_connection();
        kj::Duration next = kj::min(backoff * 2, 1 * kj::SECONDS);
        return io->provider->getTimer().afterDelay(backoff).then([this, next]() { return reconnect(next); });
      });
}

// Tells a (possibly new) daemon about every topic and registration this client holds. A topic
// the daemon does not know (an anonymous region of a previous daemon) is handed back with its
// fd; one it knows is matched by region identity. Registrations of slots since released are
// refused by the daemon (generation mismatch) and forgotten here.
kj::Promise<void> Client::Impl::resync() {
  std::map<std::string, Topic> snapshot;
  std::map<std::string, std::vector<Registration>> by_topic;
  {
    std::lock_guard lock(mu);
    snapshot = topics;
    for (const Registration& r : regs) by_topic[r.topic].push_back(r);
  }
  if (snapshot.empty()) return kj::READY_NOW;
  control::Bus::Client b = KJ_ASSERT_NONNULL(bus);
  kj::Vector<kj::Promise<void>> all;
  for (auto& [topic_name, topic] : snapshot) {
    auto req = b.adoptRegionRequest();
    req.setRegion(kj::heap<wire::RegionServer>(topic));
    const auto& rs = by_topic[topic_name];
    auto slots = req.initSlots(static_cast<unsigned>(rs.size()));
    for (unsigned i = 0; i < rs.size(); ++i) wire::to_wire(rs[i], slots[i]);
    std::vector<std::uint32_t> pools;
    for (const Registration& r : rs) {
      if (r.role == Role::publisher) pools.push_back(r.slot);
    }
    all.add(req.send()
                .then([b, topic = topic, pools](auto&&) mutable {
                  kj::Vector<kj::Promise<void>> sent;
                  for (std::uint32_t p : pools) sent.add(send_pool(b, topic, p));
                  return kj::joinPromises(sent.releaseAsArray());
                })
                .catch_([](kj::Exception&&) {}));
  }
  return kj::joinPromises(all.releaseAsArray());
}

Client::Client() : Client(ClientOptions{}) {}

Client::Client(ClientOptions options) : impl_(std::make_unique<Impl>()) {
  Impl& im = *impl_;
  im.opts = std::move(options);
  im.candidates = socket_search_path(im.opts);
  im.socket = im.candidates.front();
  im.name = im.opts.name.empty() ? process_name() : im.opts.name;
  std::promise<std::string> started;
  std::future<std::string> result = started.get_future();
  im.thread = std::thread([&im, &started]() { im.run(started); });
  std::string error = result.get();
  if (!error.empty()) {
    im.thread.join();
    // A refusal of hello() (e.g. the protocol version) keeps its code; else the message names
    // every socket tried and why each failed.
    wire::Refusal refused = wire::read_refusal(error);
    if (refused.code != control::RefusalCode::UNSPECIFIED) {
      throw Error(wire::to_errc(refused.code), "shmbusd at " + im.socket_now().string() + " refused: " + refused.message);
    }
    throw Error(im.connect_error, error);
  }
  im.pool_broker->client = &im;  // no topic holds the broker yet: no lock needed
  start_following_revoked_topics();
}

Client::~Client() {
  Impl& im = *impl_;
  stop_following_revoked_topics();  // waits for a reopen in flight
  {
    std::unique_lock lock(im.pool_broker->mu);  // waits for fetches in flight
    im.pool_broker->client = nullptr;
  }
  // Forget registrations first, so the daemon does not reclaim slots still in use.
  std::set<Registration> regs;
  {
    std::lock_guard lock(im.mu);
    regs.swap(im.regs);
  }
  for (const Registration& r : regs) {
    try {
      im.remove_registration(r);
    } catch (const Error&) {
      break;  // daemon gone: nothing will reclaim them either
    }
  }
  try {
    im.executor->executeSync([&im]() { im.stop->fulfill(); });
  } catch (const kj::Exception&) {
  }
  im.thread.join();
}

// One openTopic request, filled by `fill`; maps the region whose fd comes with the reply and
// remembers the topic for re-registration after a daemon restart.
template <typename Fill>
Topic open_through(Client::Impl& im, const std::string& name, Fill&& fill) {
  Topic topic = im.call(("opening topic '" + name + "'").c_str(), [&](control::Bus::Client& b) {
    auto req = b.openTopicRequest();
    fill(req);
    return req.send().then([](capnp::Response<control::Bus::OpenTopicResults>&& resp) {
      control::Region::Client region = resp.getRegion();
      // The fd that came with the reply is closed when the reply is destroyed (capnp 0.9.2:
      // seen in gdb, ~Response closes it although `region` is still referenced), and kj
      // destroys the reply as soon as this lambda returns, before the continuation below
      // runs. So the reply stays attached until open_fd() holds its own dup. Without that,
      // every open failed with EBADF in consumers whose link re-optimised the library's LTO
      // code at -O0/-O1 (issue 21); at -O2 it went unnoticed.
      return region.getFd()
          .then([region](kj::Maybe<int> fd) mutable -> Topic {
            KJ_IF_MAYBE (f, fd) { return Topic::open_fd(*f); }  // dups the fd
            KJ_FAIL_REQUIRE("the daemon's reply carried no region fd (fd passing unavailable?)");
          })
          .attach(kj::mv(resp));
    });
  });
  im.serve_pools(topic);
  std::lock_guard lock(im.mu);
  im.topics.insert_or_assign(topic.name(), topic);
  return topic;
}

Topic Client::open_topic(const TopicConfig& config, Role role, std::span<const std::byte> type_schema) {
  // A config from typed_topic<T>() already carries the schema: record that one.
  if (type_schema.empty() && !config.schema.empty()) type_schema = std::as_bytes(std::span(config.schema));
  return open_through(*impl_, config.name, [&](control::Bus::OpenTopicParams::Builder req) {
    wire::to_wire(config, req.initConfig());
    req.setRole(wire::to_wire(role));
    req.setTypeSchema(kj::arrayPtr(reinterpret_cast<const capnp::byte*>(type_schema.data()), type_schema.size()));
  });
}

Topic Client::open_topic(const std::string& name, Role role) {
  return open_through(*impl_, name, [&](control::Bus::OpenTopicParams::Builder req) {
    req.initConfig().setName(name);  // everything else 0/unset: the daemon's defaults
    req.setRole(wire::to_wire(role));
  });
}

Topic Client::open_existing_topic(const std::string& name, Role role) {
  return open_through(*impl_, name, [&](control::Bus::OpenTopicParams::Builder req) {
    req.initConfig().setName(name);
    req.setRole(wire::to_wire(role));
    req.setMustExist(true);
  });
}

Topic Client::open_topic_typed(const TopicConfig& config, Role role, capnp::Schema schema) {
  std::string bytes = serialize_schema_nodes(schema);
  return open_topic(config, role, std::as_bytes(std::span<const char>(bytes.data(), bytes.size())));
}

// ---- Services: openService for the service region, then the two topics by openTopic in the
// roles the service role implies (so pools, registrations and hand-back are the topics' own).

namespace {

template <typename Fill>
Service open_service_through(Client::Impl& im, const std::string& name, ServiceRole role, Fill&& fill) {
  int region_fd = im.call(("opening service '" + name + "'").c_str(), [&](control::Bus::Client& b) {
    auto req = b.openServiceRequest();
    fill(req);
    req.setRole(wire::to_wire(role));
    return req.send().then([](capnp::Response<control::Bus::OpenServiceResults>&& resp) {
      control::ServiceRegion::Client region = resp.getRegion();
      // The reply stays attached until we hold our own dup (see open_through).
      return region.getFd()
          .then([region](kj::Maybe<int> fd) mutable -> int {
            KJ_IF_MAYBE (f, fd) {
              int own = fcntl(*f, F_DUPFD_CLOEXEC, 0);
              KJ_REQUIRE(own >= 0, "out of file descriptors");
              return own;
            }
            KJ_FAIL_REQUIRE("the daemon's reply carried no service region fd (fd passing unavailable?)");
          })
          .attach(kj::mv(resp));
    });
  });
  kj::AutoCloseFd region(region_fd);
  const bool calls = role == ServiceRole::call;
  auto topic = [&](const std::string& topic_name, bool publish) {
    return open_through(im, topic_name, [&](control::Bus::OpenTopicParams::Builder req) {
      req.initConfig().setName(topic_name);
      req.setRole(wire::to_wire(publish ? Role::publisher : Role::subscriber));
      req.setMustExist(true);
    });
  };
  Topic requests = topic(Service::request_topic_name(name), calls);
  Topic responses = topic(Service::response_topic_name(name), !calls);
  im.serve_pools(requests, true);
  im.serve_pools(responses, true);
  Service svc = Service::open(region.get(), std::move(requests), std::move(responses));
  // Each ServiceServer or ServiceClient of this handle, once its row is taken, hands the daemon
  // the pool of its publisher (responses for a server, requests for a client) as topic
  // publishers do (register_publisher), so that peers of other uids, which cannot open it
  // through /proc, read it. The broker, not the client: the Client may go first.
  detail::ServiceAccess::region(svc).set_after_row_taken(
      [broker = im.pool_broker, published = calls ? svc.requests() : svc.responses()] {
        std::shared_lock lock(broker->mu);
        if (broker->client != nullptr) broker->client->add_own_pools(published);
      });
  return svc;
}

}  // namespace

Service Client::open_service(const ServiceConfig& config, ServiceRole role) {
  return open_service_through(*impl_, config.name, role, [&](control::Bus::OpenServiceParams::Builder req) {
    wire::to_wire(config, req.initConfig());
    req.setRequestSchema(kj::arrayPtr(reinterpret_cast<const capnp::byte*>(config.request_schema.data()),
                                      config.request_schema.size()));
    req.setResponseSchema(kj::arrayPtr(reinterpret_cast<const capnp::byte*>(config.response_schema.data()),
                                       config.response_schema.size()));
  });
}

Service Client::open_existing_service(const std::string& name, ServiceRole role) {
  return open_service_through(*impl_, name, role, [&](control::Bus::OpenServiceParams::Builder req) {
    req.initConfig().setName(name);
    req.setMustExist(true);
  });
}

std::vector<ServiceListing> Client::list_services() {
  return impl_->call("listing services", [](control::Bus::Client& b) {
    return b.listServicesRequest().send().then([](capnp::Response<control::Bus::ListServicesResults>&& resp) {
      std::vector<ServiceListing> out;
      for (control::ServiceInfo::Reader s : resp.getServices()) out.push_back(wire::from_wire(s));
      return out;
    });
  });
}

RawPublisher Client::publisher(const Topic& topic) {
  RawPublisher pub(topic);
  register_publisher(pub);
  return pub;
}

RawSubscriber Client::subscriber(const Topic& topic, SubscriberOptions options) {
  RawSubscriber sub(topic, options);
  register_subscriber(sub);
  return sub;
}

void Client::register_publisher(const RawPublisher& pub) {
  const Topic& t = pub.topic();
  impl_->add_registration({t.name(), Role::publisher, pub.slot(), detail::publisher_generation(t, pub.slot())});
  if (t.external_pools()) impl_->add_pool(t, pub.slot());  // pool index = publisher slot
  follow_revoked_topic(pub.resume_);
}

void Client::register_subscriber(const RawSubscriber& sub) {
  const Topic& t = sub.topic();
  impl_->add_registration({t.name(), Role::subscriber, sub.slot(), detail::subscriber_generation(t, sub.slot())});
  follow_revoked_topic(sub.resume_);
}

void Client::unregister_publisher(const RawPublisher& pub) {
  const Topic& t = pub.topic();
  pub.resume_.reopener = nullptr;  // no longer ours to look after
  impl_->remove_registration({t.name(), Role::publisher, pub.slot(), detail::publisher_generation(t, pub.slot())});
}

void Client::unregister_subscriber(const RawSubscriber& sub) {
  const Topic& t = sub.topic();
  sub.resume_.reopener = nullptr;  // no longer ours to look after
  impl_->remove_registration({t.name(), Role::subscriber, sub.slot(), detail::subscriber_generation(t, sub.slot())});
}

DurableLogInfo Client::durable_log(const std::string& name, Role role) {
  return impl_->call(("opening durable topic '" + name + "'").c_str(), [&](control::Bus::Client& b) {
    auto req = b.openDurableRequest();
    req.setName(name);
    req.setRole(wire::to_wire(role));
    return req.send().then(
        [](capnp::Response<control::Bus::OpenDurableResults>&& resp) { return wire::from_wire(resp.getLog()); });
  });
}

BusStatusInfo Client::status() {
  return impl_->call("reading bus status", [](control::Bus::Client& b) {
    return b.statusRequest().send().then(
        [](capnp::Response<control::Bus::StatusResults>&& resp) { return wire::from_wire(resp.getStatus()); });
  });
}

std::vector<TopicListing> Client::list_topics() {
  return impl_->call("listing topics", [](control::Bus::Client& b) {
    return b.listTopicsRequest().send().then([](capnp::Response<control::Bus::ListTopicsResults>&& resp) {
      std::vector<TopicListing> out;
      for (control::TopicInfo::Reader t : resp.getTopics()) out.push_back(wire::from_wire(t));
      return out;
    });
  });
}

std::vector<ClientListing> Client::clients() {
  return impl_->call("listing clients", [](control::Bus::Client& b) {
    return b.clientsRequest().send().then([](capnp::Response<control::Bus::ClientsResults>&& resp) {
      std::vector<ClientListing> out;
      for (control::ClientInfo::Reader c : resp.getClients()) out.push_back(wire::from_wire(c));
      return out;
    });
  });
}

std::filesystem::path Client::socket_path() const { return impl_->socket_now(); }

bool Client::connected() const { return impl_->up; }
std::uint64_t Client::connection_count() const { return impl_->connections; }

// ---------------------------------------------------------------- Following revoked topics
//
// When the daemon revokes a region (a lease break: its file opened for writing or truncated)
// it serves a fresh region under the same name to the next openTopic. A publisher or
// subscriber this client made or registered holds our ClientReopener; after its core reports
// region_lost it asks here for the topic again, with the lost region's configuration and its
// own role, makes a new core on the fresh region and registers its new slot (bus/raw.cpp).
// Nothing here runs unless a region was lost. See docs/usage.md, "Revocation and resumption".

namespace {

class ClientReopener final : public detail::Reopener {
 public:
  ClientReopener(Client& client, Client::Impl& im) : client_(&client), im_(&im) {}

  // ~Client: from now on region_lost is final for everything we gave this to.
  void detach() noexcept {
    std::lock_guard lock(mu_);
    client_ = nullptr;
    im_ = nullptr;
  }

  bool alive() const noexcept override {
    std::lock_guard lock(mu_);
    return client_ != nullptr;
  }

  std::optional<Topic> reopen(const Topic& lost, bool publisher) noexcept override {
    std::lock_guard lock(mu_);
    if (client_ == nullptr || !im_->up) return std::nullopt;
    try {
      const std::string name = lost.name();  // a private copy: readable after truncation too
      const bool held_lost_region = same_region(lookup(name), lost);
      Topic fresh = client_->open_topic(lost.config(), publisher ? Role::publisher : Role::subscriber);
      // The daemon has not revoked it (yet): a truncation it could not see (ftruncate through
      // a client's own fd), or a lease break it has not handled. Ask again later.
      if (same_region(fresh, lost) || fresh.revoked()) return std::nullopt;
      // The first of our publishers/subscribers to follow the topic: every registration we
      // hold under its name was made on the lost region. Forget them (the daemon dropped them
      // with it), lest a resync hand them over as slots of the fresh region.
      if (held_lost_region) {
        std::lock_guard regs_lock(im_->mu);
        std::erase_if(im_->regs, [&](const Registration& r) { return r.topic == name; });
      }
      return fresh;
    } catch (const std::exception&) {  // unreachable, refused: the caller backs off
      return std::nullopt;
    }
  }

  void register_slot(const Topic& fresh, bool publisher, std::uint32_t slot) noexcept override {
    std::lock_guard lock(mu_);
    if (client_ == nullptr) return;
    try {
      if (publisher) {
        im_->add_registration({fresh.name(), Role::publisher, slot, detail::publisher_generation(fresh, slot)});
        if (fresh.external_pools()) im_->add_pool(fresh, slot);
      } else {
        im_->add_registration({fresh.name(), Role::subscriber, slot, detail::subscriber_generation(fresh, slot)});
      }
    } catch (const std::exception&) {  // the daemon went away meanwhile: its sweep reclaims dead slots
    }
  }

 private:
  std::optional<Topic> lookup(const std::string& name) const {
    std::lock_guard lock(im_->mu);
    auto it = im_->topics.find(name);
    if (it == im_->topics.end()) return std::nullopt;
    return it->second;
  }
  static bool same_region(const std::optional<Topic>& a, const Topic& b) {
    struct stat sa {}, sb {};
    return a && fstat(a->fd(), &sa) == 0 && fstat(b.fd(), &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
  }

  mutable std::mutex mu_;  // held across a reopen, so ~Client waits for one in flight
  Client* client_;
  Client::Impl* im_;
};

}  // namespace

void Client::start_following_revoked_topics() {
  if (impl_->opts.reconnect) impl_->reopener = std::make_shared<ClientReopener>(*this, *impl_);
}

void Client::stop_following_revoked_topics() noexcept {
  if (impl_->reopener) impl_->reopener->detach();
}

void Client::follow_revoked_topic(detail::Resumption& r) const noexcept { r.reopener = impl_->reopener; }

}  // namespace shmbus
