// shmbusd's event loop: the listening socket, one Cap'n Proto RPC connection per client, and
// the clean-up when a connection closes or its process dies.
#include "daemon.hpp"

#include <capnp/rpc-twoparty.h>
#include <kj/async-unix.h>
#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <optional>
#include <utility>
#include <vector>
#include <grp.h>
#include <stdexcept>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "lease_watch.hpp"
#include "state.hpp"
#include "topic_admin.hpp"

namespace shmbusd {

namespace {

// The longest one topic's dead-owner reclaim may take in one sweep tick (see sweep_dead_owners).
constexpr std::chrono::milliseconds kSweepBudgetPerTopic{100};

[[noreturn]] void fail_errno(const std::string& what) {
  throw std::runtime_error(what + ": " + strerror(errno));
}

// mkdir -p with `mode` on the last component; an existing directory gets `mode` too (we own it).
void make_private_dir(const std::filesystem::path& dir, unsigned mode, std::optional<gid_t> group) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw std::runtime_error("cannot create " + dir.string() + ": " + ec.message());
  if (group && chown(dir.c_str(), static_cast<uid_t>(-1), *group) != 0) fail_errno("chgrp of " + dir.string());
  if (chmod(dir.c_str(), mode) != 0) fail_errno("chmod of " + dir.string());
}

int listen_unix(const std::filesystem::path& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.native().size() >= sizeof(addr.sun_path)) {
    throw std::runtime_error("socket path too long (" + std::to_string(path.native().size()) + " bytes): " + path.string());
  }
  std::memcpy(addr.sun_path, path.c_str(), path.native().size());
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) fail_errno("socket");
  unlink(path.c_str());  // a previous daemon's socket; we hold the bus lock, so nobody serves it
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    int err = errno;
    close(fd);
    errno = err;
    fail_errno("bind " + path.string());
  }
  // Who can reach the socket is decided by the directory's mode (Options::
  // resolved_socket_dir_mode); what they may do by the access rules.
  chmod(path.c_str(), 0666);
  if (listen(fd, 128) != 0) {
    int err = errno;
    close(fd);
    errno = err;
    fail_errno("listen " + path.string());
  }
  return fd;
}

void notify(const Options& o, const char* state) {
  if (o.notify_systemd) sd_notify(0, state);
}

// One client connection: its stream, the RPC system serving it, and the watchers that end it.
struct Connection {
  Connection(Daemon::State& d, std::shared_ptr<ClientState> c, kj::Own<kj::AsyncCapabilityStream> s)
      : state(std::move(c)),
        stream(kj::mv(s)),
        // At most one fd per incoming message: only adoptRegion carries one. Extra fds are
        // closed by the RPC layer.
        network(*stream, 1, capnp::rpc::twoparty::Side::SERVER, reader_options()),
        rpc(capnp::makeRpcServer(network, make_bus_service(d, state))) {}

  static capnp::ReaderOptions reader_options() {
    capnp::ReaderOptions o;
    o.traversalLimitInWords = 1 << 20;  // 8 MiB per request; schemas are the largest payload
    o.nestingLimit = 32;
    return o;
  }

  std::shared_ptr<ClientState> state;
  kj::Own<kj::AsyncCapabilityStream> stream;
  capnp::TwoPartyVatNetwork network;
  capnp::RpcSystem<capnp::rpc::twoparty::VatId> rpc;
  kj::Maybe<kj::Own<kj::UnixEventPort::FdObserver>> pidfd_observer;
};

struct Loop final : kj::TaskSet::ErrorHandler {
  explicit Loop(Daemon::State& s) : d(s), tasks(*this) {}
  void taskFailed(kj::Exception&& e) override { spdlog::error("internal: {}", e.getDescription().cStr()); }

  kj::Promise<void> accept_loop(kj::UnixEventPort::FdObserver& listener) {
    return listener.whenBecomesReadable().then([this, &listener]() {
      for (;;) {
        int fd = accept4(d.listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
          if (errno == EAGAIN || errno == EWOULDBLOCK) break;
          if (errno == EINTR || errno == ECONNABORTED) continue;
          // EMFILE and friends: log, back off by returning to the loop.
          spdlog::error("accept: {}", strerror(errno));
          break;
        }
        start(fd);
      }
      return accept_loop(listener);
    });
  }

  void start(int fd) {
    auto client = std::make_shared<ClientState>();
    try {
      client->peer = read_peer(fd);
    } catch (const std::exception& e) {
      spdlog::error("dropping a connection: {}", e.what());
      close(fd);
      return;
    }
    if (over_connection_limit(client->peer.uid)) {
      spdlog::warn("closing a connection of uid {} (pid {}): that uid already holds max_connections_per_uid = {}",
                   client->peer.uid, client->peer.pid, d.opts.max_connections_per_uid);
      close(fd);
      return;
    }
    client->id = d.next_client_id++;
    client->connected_at = std::chrono::steady_clock::now();
    client->budget = RequestBudget(d.opts.request_limits, client->connected_at);
    d.clients.emplace(client->id, client);
    spdlog::info("{}: connected", client->tag());
    auto stream = d.io->lowLevelProvider->wrapUnixSocketFd(
        fd, kj::LowLevelAsyncIoProvider::TAKE_OWNERSHIP | kj::LowLevelAsyncIoProvider::ALREADY_CLOEXEC |
                kj::LowLevelAsyncIoProvider::ALREADY_NONBLOCK);
    auto conn = kj::heap<Connection>(d, client, kj::mv(stream));
    tasks.add(serve(kj::mv(conn)));
  }

  bool over_connection_limit(uid_t uid) const {
    if (d.opts.max_connections_per_uid == 0 || uid == 0 || uid == geteuid()) return false;
    std::uint32_t held = 0;
    for (const auto& [id, c] : d.clients) held += c->peer.uid == uid;
    return held >= d.opts.max_connections_per_uid;
  }

  kj::Promise<void> serve(kj::Own<Connection> conn) {
    Connection* c = conn.get();
    std::shared_ptr<ClientState> st = c->state;
    // Ends when the peer closes (or sends something the RPC layer rejects: it then aborts the
    // connection), or when it never says anything.
    kj::Promise<void> ended = c->network.onDisconnect().then([st]() { return std::string("closed"); },
                                                             [](kj::Exception&& e) {
                                                               return std::string(e.getDescription().cStr());
                                                             })
                                  .then([st](std::string why) { spdlog::info("{}: disconnected ({})", st->tag(), why); });
    kj::Promise<void> silent =
        d.io->provider->getTimer().afterDelay(d.opts.handshake_timeout.count() * kj::MILLISECONDS).then([st]() {
          if (st->spoke) return kj::Promise<void>(kj::NEVER_DONE);
          spdlog::warn("{}: no request within the handshake timeout; closing", st->tag());
          return kj::Promise<void>(kj::READY_NOW);
        });
    ended = ended.exclusiveJoin(kj::mv(silent));
    auto cut = kj::newPromiseAndFulfiller<void>();
    st->cut_off = kj::mv(cut.fulfiller);
    ended = ended.exclusiveJoin(cut.promise.then([st]() {
      st->was_cut_off = true;
      spdlog::warn("{}: closing: it kept sending after {} refused requests", st->tag(), st->budget.refused());
    }));
    if (st->peer.pidfd >= 0) {
      auto obs = kj::heap<kj::UnixEventPort::FdObserver>(d.io->unixEventPort, st->peer.pidfd,
                                                         kj::UnixEventPort::FdObserver::OBSERVE_READ);
      // The process died; its connection may live on in a child that inherited it, so only
      // its own slots go now. The rest goes when the connection closes.
      kj::Promise<void> died = obs->whenBecomesReadable().then([this, st]() {
        std::size_t n = d.reclaim(*st, st->peer.pid);
        if (!st->services.empty()) n += d.reclaim_services(st->services, true);
        spdlog::info("{}: process exited; reclaimed {} slot(s)", st->tag(), n);
        return kj::Promise<void>(kj::NEVER_DONE);
      });
      c->pidfd_observer = kj::mv(obs);
      ended = ended.exclusiveJoin(kj::mv(died));
    }
    return ended.then([this, st]() {
      if (st->was_cut_off && !st->regs.empty()) {
        spdlog::warn("{}: {} registration(s) left to the dead-owner sweep", st->tag(), st->regs.size());
        st->regs.clear();
      }
      std::size_t n = d.reclaim(*st);
      if (!st->services.empty()) n += d.reclaim_services(st->services, true);  // rows of its dead processes
      if (n) spdlog::info("{}: reclaimed {} slot(s) after disconnect", st->tag(), n);
      d.clients.erase(st->id);
    }).attach(kj::mv(conn));
  }

  kj::Promise<void> watch_eventfd(kj::UnixEventPort::FdObserver& obs, int fd, std::function<bool()> on_event) {
    return obs.whenBecomesReadable().then([this, &obs, fd, on_event]() -> kj::Promise<void> {
      std::uint64_t v;
      bool fired = read(fd, &v, sizeof(v)) == sizeof(v);
      if (fired && !on_event()) return kj::READY_NOW;
      return watch_eventfd(obs, fd, on_event);
    });
  }

  // Slots whose owner died without a connection to tell us (it died while no daemon ran, or
  // it opened a region file directly) are found from /proc: start time and pid namespace make
  // "dead" certain (Topic::reclaim_dead_owners). Connection close stays the fast path.
  kj::Promise<void> sweep_dead_owners(kj::Duration interval) {
    return d.io->provider->getTimer().afterDelay(interval).then([this, interval]() {
      // Leases first: a region whose file shrank is revoked and dropped before we read it.
      if (d.leases) d.leases->sweep();
      d.retry_pending_adoptions();
      // Bounded work per tick whatever a region says (its words are anybody's to write): a
      // damaged topic is revoked, not repaired; reclaims stop after kSweepBudgetPerTopic and
      // go on at the next tick. So the loop, and SIGTERM with it, is never held for long.
      std::vector<std::pair<std::string, std::string>> damaged;
      for (auto& [name, entry] : d.topics) {
        // Adopted and handed-back regions: their words as of the first sweep that saw them.
        if (entry.immutable_words.empty()) entry.immutable_words = shmbus::detail::immutable_words(entry.topic);
        if (std::optional<std::string> what = shmbus::detail::find_damage(entry.topic, entry.immutable_words)) {
          damaged.emplace_back(name, std::move(*what));
          continue;
        }
        if (std::size_t n = entry.topic.reclaim_dead_owners(kSweepBudgetPerTopic); n != 0) {
          spdlog::info("topic '{}': reclaimed {} slot(s) of dead processes", name, n);
        }
        shmbus::detail::audit_references(entry.topic);  // references a crash left unrecorded, when quiet
        // Pools nobody can read from any more (replaced, and no chunk of theirs referenced).
        std::erase_if(entry.pools, [&](const auto& p) { return !shmbus::detail::pool_in_use(entry.topic, p.first.first, p.first.second); });
      }
      for (const auto& [name, what] : damaged) {
        if (d.leases) d.leases->revoke(name, "is damaged: " + what, "a participant that wrote its control words");
      }
      d.durable_watch.tick(d.opts.durable);
      // Services: the rows of dead servers and clients (their topics were swept above).
      if (!d.pending_services.empty()) d.adopt_service_files();
      d.reclaim_services({}, false);
      d.feed_metrics();
      return sweep_dead_owners(interval);
    });
  }

  kj::Promise<void> watchdog(kj::Duration interval) {
    return d.io->provider->getTimer().afterDelay(interval).then([this, interval]() {
      notify(d.opts, "WATCHDOG=1");
      return watchdog(interval);
    });
  }

  Daemon::State& d;
  kj::TaskSet tasks;
};

}  // namespace

Daemon::Daemon(Options options) : s_(std::make_unique<State>()) {
  State& s = *s_;
  s.opts = std::move(options);
  s.opts.rules.daemon_uid = geteuid();
  s.epoch = static_cast<std::uint64_t>(time(nullptr));
  s.started = std::chrono::steady_clock::now();
  if (s.opts.bus.empty() || s.opts.bus.find('/') != std::string::npos || s.opts.bus.size() > 63) {
    throw std::runtime_error("bus name must be 1..63 bytes without '/': '" + s.opts.bus + "'");
  }
  make_private_dir(s.opts.resolved_runtime_dir(), s.opts.resolved_socket_dir_mode(), s.opts.socket_group);
  s.lock = std::make_unique<InstanceLock>(s.opts.lock_path(), s.opts.bus);
  make_private_dir(s.opts.resolved_region_dir(), 0700, std::nullopt);  // clients get fds, not paths
  s.adopt_region_files();
  s.scan_service_files();  // after the topics: a service needs both of its own
  s.stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  s.reload_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (s.stop_fd < 0 || s.reload_fd < 0) fail_errno("eventfd");
  // The metrics endpoint listens before the control socket does: a client that can connect
  // (tests, scripts waiting for the daemon) can scrape too.
  if (s.opts.metrics_port != 0) {
    s.metrics = std::make_unique<MetricsEndpoint>(s.opts.metrics_port, MetricsEndpoint::Limits{});
    s.feed_metrics();
  }
  s.listen_fd = listen_unix(s.opts.socket_path());
  spdlog::info("bus '{}' listening on {} (regions in {}, access rules: {})", s.opts.bus, s.opts.socket_path().string(),
               s.opts.resolved_region_dir().string(), s.opts.rules.source);
}

Daemon::~Daemon() {
  State& s = *s_;
  if (s.listen_fd >= 0) {
    close(s.listen_fd);
    unlink(s.opts.socket_path().c_str());
  }
  if (s.stop_fd >= 0) close(s.stop_fd);
  if (s.reload_fd >= 0) close(s.reload_fd);
}

void Daemon::run() {
  State& s = *s_;
  kj::AsyncIoContext io = kj::setupAsyncIo();
  s.io = &io;
  {
    LeaseWatch leases(s, io);  // released (F_UNLCK) when run() returns: a clean stop leaves none
    s.leases = &leases;
    for (auto& [name, entry] : s.topics) leases.arm(name, entry);  // re-adopted ones
    Loop loop(s);
    kj::UnixEventPort::FdObserver listener(io.unixEventPort, s.listen_fd, kj::UnixEventPort::FdObserver::OBSERVE_READ);
    kj::UnixEventPort::FdObserver stop_obs(io.unixEventPort, s.stop_fd, kj::UnixEventPort::FdObserver::OBSERVE_READ);
    kj::UnixEventPort::FdObserver reload_obs(io.unixEventPort, s.reload_fd, kj::UnixEventPort::FdObserver::OBSERVE_READ);
    loop.tasks.add(loop.accept_loop(listener));
    loop.tasks.add(loop.watch_eventfd(reload_obs, s.reload_fd, [&s]() {
      s.reload_rules();
      return true;
    }));
    prepare_durable_topics(s.opts.durable);
    loop.tasks.add(loop.sweep_dead_owners(500 * kj::MILLISECONDS));
    std::uint64_t usec = 0;
    if (s.opts.notify_systemd && sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
      loop.tasks.add(loop.watchdog(static_cast<std::int64_t>(usec / 2) * kj::MICROSECONDS));
    }
    // listen() has run: connect() succeeds from here on, so this is the moment for READY.
    notify(s.opts, "READY=1\nSTATUS=serving");
    loop.watch_eventfd(stop_obs, s.stop_fd, []() { return false; }).wait(io.waitScope);
    notify(s.opts, "STOPPING=1");
    spdlog::info("stopping; {} client(s) keep running without the daemon", s.clients.size());
    // Dropping the tasks closes every connection without reclaiming: the clients are alive.
    s.leases = nullptr;
  }
  s.clients.clear();
  s.io = nullptr;
}

void Daemon::State::feed_metrics() {
  if (!metrics) return;
  std::vector<shmbus::Topic> now;
  for (const auto& [name, entry] : topics) now.push_back(entry.topic);
  metrics->set_topics(std::move(now));
}

void Daemon::request_stop() noexcept {
  std::uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(s_->stop_fd, &one, sizeof(one));
}

void Daemon::request_reload() noexcept {
  std::uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(s_->reload_fd, &one, sizeof(one));
}

std::filesystem::path Daemon::socket_path() const { return s_->opts.socket_path(); }
const Options& Daemon::options() const { return s_->opts; }

}  // namespace shmbusd
