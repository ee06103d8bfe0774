// The Bus capability one connection talks to: every request is checked against that
// connection's kernel-given identity, never against anything the client claims.
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include "control/pool_cap.hpp"
#include "control/region_cap.hpp"
#include "control/wire.hpp"
#include "state.hpp"
#include "topic_admin.hpp"

namespace shmbusd {

namespace {

PeerIdentity identity(const ClientState& c) { return {c.peer.uid, c.peer.gid, c.peer.groups}; }

shmbus::wire::SlotRef slot_ref(const SlotRegistration& r) {
  return {r.topic, r.publisher ? shmbus::Role::publisher : shmbus::Role::subscriber, r.slot, r.generation};
}

class BusService final : public control::Bus::Server {
 public:
  BusService(Daemon::State& d, std::shared_ptr<ClientState> c) : d_(d), c_(std::move(c)) {}

 protected:
  kj::Promise<void> hello(HelloContext context) override {
    admit();
    auto p = context.getParams();
    c_->name = std::string(p.getClientName()).substr(0, 64);
    if (p.getProtocolVersion() != control::PROTOCOL_VERSION) {
      refuse(*c_, control::RefusalCode::UNSUPPORTED_VERSION,
             "protocol version " + std::to_string(p.getProtocolVersion()) + " is not spoken here (daemon speaks " +
                 std::to_string(control::PROTOCOL_VERSION) + ")");
    }
    spdlog::debug("{}: hello from '{}'", c_->tag(), c_->name);
    auto r = context.getResults();
    r.setBusName(d_.opts.bus);
    r.setProtocolVersion(control::PROTOCOL_VERSION);
    r.setEpoch(d_.epoch);
    return kj::READY_NOW;
  }

  kj::Promise<void> openTopic(OpenTopicContext context) override {
    admit();
    auto p = context.getParams();
    std::string name = p.getConfig().getName();
    bool publish = p.getRole() == control::Role::PUBLISHER;
    if (std::string why = d_.opts.rules.check(name, publish, identity(*c_)); !why.empty()) {
      refuse(*c_, control::RefusalCode::ACCESS_DENIED, why);
    }
    // The access check comes first, so that a refused peer learns nothing about which topics exist.
    if (!d_.topics.count(name)) {
      if (p.getMustExist()) {
        refuse(*c_, control::RefusalCode::NO_SUCH_TOPIC, "no topic '" + name + "' on bus '" + d_.opts.bus + "'");
      }
      if (std::string why = d_.opts.rules.check(name, Right::create, identity(*c_)); !why.empty()) {
        refuse(*c_, control::RefusalCode::ACCESS_DENIED, why);
      }
    }
    TopicEntry* entry = nullptr;
    try {
      auto schema = p.getTypeSchema();
      entry = &d_.open_or_create(p.getConfig(), std::string(reinterpret_cast<const char*>(schema.begin()), schema.size()),
                                 c_->peer.uid);
    } catch (const shmbus::Error& e) {
      refuse(*c_, e.code() == shmbus::Errc::type_mismatch ? control::RefusalCode::EXISTS_WITH_OTHER_CONFIG
                                                          : control::RefusalCode::INVALID_CONFIG,
             "cannot open topic '" + name + "': " + e.what());
    } catch (const std::exception& e) {
      refuse(*c_, control::RefusalCode::INVALID_CONFIG, "cannot open topic '" + name + "': " + e.what());
    }
    if (entry->schema.empty() && p.getTypeSchema().size() != 0) {
      auto bytes = p.getTypeSchema();
      entry->schema.assign(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
    }
    c_->granted.insert({name, publish});
    spdlog::info("{}: opened topic '{}' to {}", c_->tag(), name, publish ? "publish" : "subscribe");
    auto r = context.getResults();
    r.setRegion(kj::heap<shmbus::wire::RegionServer>(entry->topic));
    shmbus::wire::to_wire(entry->topic.config(), r.initConfig());
    r.getConfig().setBacking(entry->topic.path().empty() ? control::Backing::ANONYMOUS : control::Backing::FILE);
    return kj::READY_NOW;
  }

  kj::Promise<void> registerSlot(RegisterSlotContext context) override {
    admit();
    register_one(context.getParams().getSlot());
    return kj::READY_NOW;
  }

  kj::Promise<void> unregisterSlot(UnregisterSlotContext context) override {
    admit();
    auto s = context.getParams().getSlot();
    shmbus::wire::SlotRef ref = shmbus::wire::from_wire(s);
    c_->regs.erase({ref.topic, ref.role == shmbus::Role::publisher, ref.slot, ref.generation});
    return kj::READY_NOW;
  }

  kj::Promise<void> listTopics(ListTopicsContext context) override {
    admit();
    std::vector<const TopicEntry*> visible;
    for (auto& [name, e] : d_.topics) {
      // Only topics this peer may use at all: the names themselves can be sensitive.
      if (d_.opts.rules.check(name, false, identity(*c_)).empty() || d_.opts.rules.check(name, true, identity(*c_)).empty()) {
        visible.push_back(&e);
      }
    }
    std::vector<const RevokedTopic*> revoked;
    for (const RevokedTopic& r : d_.revoked) {
      if (d_.opts.rules.check(r.name, false, identity(*c_)).empty() || d_.opts.rules.check(r.name, true, identity(*c_)).empty()) {
        revoked.push_back(&r);
      }
    }
    auto list = context.getResults().initTopics(static_cast<unsigned>(visible.size() + revoked.size()));
    for (unsigned i = 0; i < visible.size(); ++i) fill(*visible[i], list[i]);
    for (unsigned i = 0; i < revoked.size(); ++i) fill_revoked(*revoked[i], list[static_cast<unsigned>(visible.size()) + i]);
    return kj::READY_NOW;
  }

  kj::Promise<void> status(StatusContext context) override {
    admit();
    shmbus::BusStatusInfo s;
    s.bus_name = d_.opts.bus;
    s.daemon_pid = getpid();
    s.daemon_uid = geteuid();
    s.protocol_version = control::PROTOCOL_VERSION;
    s.epoch = d_.epoch;
    s.uptime_ms = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - d_.started).count());
    s.socket_path = d_.opts.socket_path().string();
    s.region_dir = d_.opts.resolved_region_dir().string();
    s.topics = static_cast<std::uint32_t>(d_.topics.size());
    s.clients = static_cast<std::uint32_t>(d_.clients.size());
    s.rules_source = d_.opts.rules.source;
    shmbus::wire::to_wire(s, context.getResults().initStatus());
    return kj::READY_NOW;
  }

  kj::Promise<void> clients(ClientsContext context) override {
    admit();
    // Root and the daemon's uid see everyone; others see their own uid's connections.
    bool all = c_->peer.uid == 0 || c_->peer.uid == geteuid();
    std::vector<const ClientState*> shown;
    for (auto& [id, c] : d_.clients) {
      if (all || c->peer.uid == c_->peer.uid) shown.push_back(c.get());
    }
    auto list = context.getResults().initClients(static_cast<unsigned>(shown.size()));
    auto now = std::chrono::steady_clock::now();
    for (unsigned i = 0; i < shown.size(); ++i) {
      const ClientState& c = *shown[i];
      shmbus::ClientListing l{c.id, c.peer.pid, c.peer.uid, c.peer.gid, c.name,
                              static_cast<std::uint64_t>(
                                  std::chrono::duration_cast<std::chrono::milliseconds>(now - c.connected_at).count()),
                              {}};
      std::vector<shmbus::wire::SlotRef> regs;
      for (const SlotRegistration& r : c.regs) regs.push_back(slot_ref(r));
      shmbus::wire::to_wire(l, regs, list[i]);
    }
    return kj::READY_NOW;
  }

  kj::Promise<void> adoptRegion(AdoptRegionContext context) override {
    admit();
    auto p = context.getParams();
    control::Region::Client region = p.getRegion();
    return region.getFd().then([this, context, region](kj::Maybe<int> maybe_fd) mutable {
      int fd = -1;
      KJ_IF_MAYBE (f, maybe_fd) { fd = *f; }
      if (fd < 0) refuse(*c_, control::RefusalCode::BAD_REQUEST, "adoptRegion: no region fd came with the request");
      // A sealed memfd (an anonymous region of a previous daemon), or a file of our region
      // directory that the killed daemon's lease keeps us from opening by path: the client's
      // fd is that very file description, so adopting through it takes the lease over at once
      // instead of after lease-break-time. Any other file only matches a topic we know.
      int seals = fcntl(fd, F_GET_SEALS);
      const bool sealed = seals >= 0 && (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) == (F_SEAL_SHRINK | F_SEAL_GROW);
      std::optional<std::filesystem::path> pending = sealed ? std::nullopt : d_.pending_file_of(fd);
      shmbus::Topic handed = [&]() {
        try {
          return shmbus::Topic::open_fd(fd, pending.value_or(std::filesystem::path{}));
        } catch (const std::exception& e) {
          refuse(*c_, control::RefusalCode::BAD_REQUEST, std::string("adoptRegion: not a usable region: ") + e.what());
        }
      }();
      std::string name = handed.name();
      if (std::string why = d_.opts.rules.check(name, true, identity(*c_)); !why.empty()) {
        // A pure subscriber may still re-register its slots on a region the daemon knows.
        if (!d_.topics.count(name) || d_.opts.rules.check(name, false, identity(*c_)).size()) {
          refuse(*c_, control::RefusalCode::ACCESS_DENIED, why);
        }
      }
      auto it = d_.topics.find(name);
      if (it == d_.topics.end() && pending) {
        it = d_.adopt(name, std::move(handed), *pending, c_->peer.uid);
        spdlog::info("{}: handed back the file description of {} (topic '{}'); lease taken over", c_->tag(),
                     pending->string(), name);
      } else if (it == d_.topics.end()) {
        if (!sealed) {
          refuse(*c_, control::RefusalCode::BAD_REQUEST,
                 "adoptRegion: topic '" + name + "' is neither a sealed anonymous region nor a file of this bus");
        }
        // A region of the client's making becomes a topic of this bus: that is creating one.
        // (A file of our region directory was created by a daemon of this bus; no right needed.)
        if (std::string why = d_.opts.rules.check(name, Right::create, identity(*c_)); !why.empty()) {
          refuse(*c_, control::RefusalCode::ACCESS_DENIED, "adoptRegion: " + why);
        }
        it = d_.topics.emplace(name, TopicEntry{handed, handed.config().schema, true, c_->peer.uid}).first;
        spdlog::info("{}: handed back anonymous region of topic '{}'", c_->tag(), name);
      } else {
        struct stat a {}, b {};
        if (fstat(fd, &a) != 0 || fstat(it->second.topic.fd(), &b) != 0 || a.st_dev != b.st_dev ||
            a.st_ino != b.st_ino) {
          refuse(*c_, control::RefusalCode::EXISTS_WITH_OTHER_CONFIG,
                 "adoptRegion: this bus already has another region for topic '" + name + "'");
        }
      }
      for (auto s : context.getParams().getSlots()) {
        bool publish = s.getRole() == control::Role::PUBLISHER;
        if (s.getTopic() != name) continue;
        if (d_.opts.rules.check(name, publish, identity(*c_)).empty()) c_->granted.insert({name, publish});
        try {
          register_one(s);
        } catch (const kj::Exception&) {
          // A slot released meanwhile: nothing to look after.
        }
      }
      context.getResults().setRegion(kj::heap<shmbus::wire::RegionServer>(it->second.topic));
    });
  }

  kj::Promise<void> registerPool(RegisterPoolContext context) override {
    admit();
    auto p = context.getParams();
    std::string name = p.getTopic();
    const std::uint32_t pool = p.getPool(), generation = p.getGeneration();
    if (!c_->granted.count({name, true})) {
      refuse(*c_, control::RefusalCode::BAD_REQUEST,
             "registerPool: topic '" + name + "' was not opened to publish on this connection");
    }
    control::PayloadPool::Client memfd = p.getMemfd();
    return memfd.getFd().then([this, name, pool, generation, memfd](kj::Maybe<int> maybe_fd) mutable {
      int fd = -1;
      KJ_IF_MAYBE (f, maybe_fd) { fd = *f; }
      if (fd < 0) refuse(*c_, control::RefusalCode::BAD_REQUEST, "registerPool: no memfd came with the request");
      auto it = d_.topics.find(name);
      if (it == d_.topics.end()) refuse(*c_, control::RefusalCode::NO_SUCH_TOPIC, "registerPool: no topic '" + name + "'");
      try {
        // Created by the very process on this connection (SO_PEERCRED; 0 in another pid
        // namespace, where only the inode can be checked): a participant that rewrote the pool
        // slot cannot get its own memfd vouched for.
        shmbus::detail::check_pool_fd(it->second.topic, pool, generation, fd, c_->peer.pid);
      } catch (const std::exception& e) {
        refuse(*c_, control::RefusalCode::BAD_REQUEST, std::string("registerPool: ") + e.what());
      }
      int own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
      if (own < 0) refuse(*c_, control::RefusalCode::UNSPECIFIED, "registerPool: out of file descriptors");
      it->second.pools[{pool, generation}] = std::make_shared<kj::AutoCloseFd>(own);
      spdlog::debug("{}: registered payload pool {} (generation {}) of topic '{}'", c_->tag(), pool, generation, name);
    });
  }

  kj::Promise<void> getPool(GetPoolContext context) override {
    admit();
    auto p = context.getParams();
    std::string name = p.getTopic();
    if (!c_->granted.count({name, false}) && !c_->granted.count({name, true})) {
      refuse(*c_, control::RefusalCode::BAD_REQUEST, "getPool: topic '" + name + "' was not opened on this connection");
    }
    auto it = d_.topics.find(name);
    if (it == d_.topics.end()) refuse(*c_, control::RefusalCode::NO_SUCH_TOPIC, "getPool: no topic '" + name + "'");
    auto pool = it->second.pools.find({p.getPool(), p.getGeneration()});
    if (pool == it->second.pools.end()) {
      refuse(*c_, control::RefusalCode::BAD_REQUEST, "getPool: topic '" + name + "' has no registered pool " + std::to_string(p.getPool()) +
                      " of generation " + std::to_string(p.getGeneration()));
    }
    context.getResults().setMemfd(
        kj::heap<shmbus::wire::PoolServer>(name, p.getPool(), p.getGeneration(), pool->second->get()));
    return kj::READY_NOW;
  }

  kj::Promise<void> openDurable(OpenDurableContext context) override {
    admit();
    auto p = context.getParams();
    std::string name = p.getName();
    bool publish = p.getRole() == control::Role::PUBLISHER;
    // Access first, as for openTopic: a refused peer learns nothing about which logs exist.
    if (std::string why = d_.opts.rules.check(name, publish, identity(*c_)); !why.empty()) {
      refuse(*c_, control::RefusalCode::ACCESS_DENIED, why);
    }
    const DurableTopicSettings* log = find_durable_topic(d_.opts.durable, name);
    if (log == nullptr) {
      refuse(*c_, control::RefusalCode::NO_SUCH_TOPIC, "no durable topic '" + name + "' is declared on bus '" +
                                                           d_.opts.bus + "' (its [[durable]] tables)");
    }
    spdlog::info("{}: opened durable topic '{}' to {}", c_->tag(), name, publish ? "append" : "read");
    shmbus::wire::to_wire(describe(*log), context.getResults().initLog());
    return kj::READY_NOW;
  }

  // Services (docs/services.md): the region here, the topics by openTopic afterwards.
  kj::Promise<void> openService(OpenServiceContext context) override {
    admit();
    auto p = context.getParams();
    std::string name = p.getConfig().getName();
    const Right right = p.getRole() == control::ServiceRole::CALL ? Right::call : Right::serve;
    if (std::string why = d_.opts.rules.check_service(name, right, identity(*c_)); !why.empty()) {
      refuse(*c_, control::RefusalCode::ACCESS_DENIED, why);
    }
    auto it = d_.services.find(name);
    if (it == d_.services.end()) {
      if (p.getMustExist()) {
        refuse(*c_, control::RefusalCode::NO_SUCH_TOPIC, "no service '" + name + "' on bus '" + d_.opts.bus + "'");
      }
      if (std::string why = d_.opts.rules.check_service(name, Right::create, identity(*c_)); !why.empty()) {
        refuse(*c_, control::RefusalCode::ACCESS_DENIED, why);
      }
      auto text = [](capnp::Data::Reader d) { return std::string(reinterpret_cast<const char*>(d.begin()), d.size()); };
      try {
        d_.create_service(p.getConfig(), text(p.getRequestSchema()), text(p.getResponseSchema()), c_->peer.uid);
      } catch (const shmbus::Error& e) {
        refuse(*c_, e.code() == shmbus::Errc::type_mismatch ? control::RefusalCode::EXISTS_WITH_OTHER_CONFIG
                                                            : control::RefusalCode::INVALID_CONFIG,
               "cannot create service '" + name + "': " + e.what());
      } catch (const std::exception& e) {
        refuse(*c_, control::RefusalCode::INVALID_CONFIG, "cannot create service '" + name + "': " + e.what());
      }
      it = d_.services.find(name);
    } else {
      const shmbus::Service& s = it->second.service;
      auto differs = [](std::uint64_t asked, std::uint64_t have) { return asked != 0 && asked != have; };
      if (differs(p.getConfig().getRequestTypeId(), s.request_type_id()) ||
          differs(p.getConfig().getResponseTypeId(), s.response_type_id())) {
        refuse(*c_, control::RefusalCode::EXISTS_WITH_OTHER_CONFIG,
               "service '" + name + "' carries request/response type ids " + std::to_string(s.request_type_id()) + "/" +
                   std::to_string(s.response_type_id()) + ", not " + std::to_string(p.getConfig().getRequestTypeId()) +
                   "/" + std::to_string(p.getConfig().getResponseTypeId()));
      }
    }
    c_->services.insert(name);
    spdlog::info("{}: opened service '{}' to {}", c_->tag(), name, right_name(right));
    auto r = context.getResults();
    r.setRegion(kj::heap<shmbus::wire::ServiceRegionServer>(it->second.service));
    shmbus::wire::to_wire(it->second.service.config(), r.initConfig());
    return kj::READY_NOW;
  }

  kj::Promise<void> listServices(ListServicesContext context) override {
    admit();
    std::vector<const ServiceEntry*> visible;
    for (auto& [name, e] : d_.services) {
      // Only services this peer may call or serve: the names themselves can be sensitive.
      if (d_.opts.rules.check_service(name, Right::call, identity(*c_)).empty() ||
          d_.opts.rules.check_service(name, Right::serve, identity(*c_)).empty()) {
        visible.push_back(&e);
      }
    }
    auto list = context.getResults().initServices(static_cast<unsigned>(visible.size()));
    for (unsigned i = 0; i < visible.size(); ++i) shmbus::wire::to_wire(visible[i]->service.listing(), list[i]);
    return kj::READY_NOW;
  }

 private:
  // Every request starts here: the connection has spoken (the handshake timer leaves it
  // alone now) and spends one request of its budget. Over budget, the request is refused
  // with a reason the client can read; a connection that goes on regardless is closed.
  void admit() {
    c_->spoke = true;
    if (c_->budget.admit()) return;
    auto now = std::chrono::steady_clock::now();
    if (now - c_->last_refusal_log >= std::chrono::seconds(1)) {  // a line a second, not one a request
      c_->last_refusal_log = now;
      spdlog::warn("{}: over its request budget ({} requests/s, burst {}); {} refused so far", c_->tag(),
                   c_->budget.limits().per_second, c_->budget.limits().burst, c_->budget.refused());
    }
    if (c_->budget.should_close() && c_->cut_off) c_->cut_off->fulfill();
    kj::throwFatalException(shmbus::wire::refusal(
        control::RefusalCode::RATE_LIMITED, "rate limit: this connection sent more than " +
                                                std::to_string(c_->budget.limits().per_second) + " requests per second (burst " +
                                                std::to_string(c_->budget.limits().burst) + "); slow down"));
  }

  void register_one(control::SlotRef::Reader s) {
    std::string topic = s.getTopic();
    bool publish = s.getRole() == control::Role::PUBLISHER;
    if (!c_->granted.count({topic, publish})) {
      refuse(*c_, control::RefusalCode::BAD_REQUEST, std::string("register: topic '") + topic + "' was not opened to " +
                      shmbus::wire::role_name(s.getRole()) + " on this connection");
    }
    auto it = d_.topics.find(topic);
    if (it == d_.topics.end()) refuse(*c_, control::RefusalCode::NO_SUCH_TOPIC, "register: no topic '" + topic + "'");
    const shmbus::Topic& t = it->second.topic;
    std::uint32_t max = publish ? t.config().max_publishers : t.config().max_subscribers;
    if (s.getSlot() >= max) refuse(*c_, control::RefusalCode::BAD_REQUEST, "register: topic '" + topic + "' has no slot " + std::to_string(s.getSlot()));
    std::uint64_t gen = publish ? shmbus::detail::publisher_generation(t, s.getSlot()) : shmbus::detail::subscriber_generation(t, s.getSlot());
    bool active = false;
    for (const shmbus::ClientSlotInfo& ci : t.stats().clients) {
      active |= ci.slot == s.getSlot() && (ci.role == shmbus::ClientSlotInfo::Role::publisher) == publish;
    }
    // The pid the slot records is not compared with SO_PEERCRED: in another pid namespace they
    // differ legitimately, and a client with rights on the topic can write the region anyway.
    if (!active || gen != s.getGeneration()) {
      refuse(*c_, control::RefusalCode::BAD_REQUEST, "register: slot " + std::to_string(s.getSlot()) + " of topic '" + topic +
                      "' is not active with generation " + std::to_string(s.getGeneration()));
    }
    c_->regs.insert({topic, publish, s.getSlot(), s.getGeneration()});
  }

  void fill(const TopicEntry& e, control::TopicInfo::Builder o) {
    const shmbus::Topic& t = e.topic;
    shmbus::TopicListing l;
    l.config = t.config();
    l.config.schema = e.schema;
    l.anonymous = t.path().empty();
    l.path = t.path();
    l.region_size = t.mapping_size();
    l.creator_uid = e.creator_uid;
    l.adopted = e.adopted;
    l.leased = e.leased;
    shmbus::TopicStats st = t.stats();
    l.published = st.published;
    l.classes = st.classes;
    for (const shmbus::ClientSlotInfo& ci : st.clients) {
      const bool pub = ci.role == shmbus::ClientSlotInfo::Role::publisher;
      std::uint64_t client_id = 0;
      for (auto& [id, c] : d_.clients) {
        for (const SlotRegistration& r : c->regs) {
          if (r.topic == t.name() && r.publisher == pub && r.slot == ci.slot) client_id = id;
        }
      }
      l.slots.push_back({pub ? shmbus::Role::publisher : shmbus::Role::subscriber, ci.slot, ci.pid, ci.messages, ci.lost,
                         ci.backlog, static_cast<std::uint32_t>(ci.chunks.size()), client_id});
    }
    shmbus::wire::to_wire(l, o);
  }

  // A revoked topic: what it was and where its file went. No statistics: the daemon no longer
  // maps it (the file may have been truncated).
  void fill_revoked(const RevokedTopic& r, control::TopicInfo::Builder o) {
    shmbus::TopicListing l;
    l.config = r.config;
    l.anonymous = false;
    l.path = r.file;
    l.region_size = r.region_size;
    l.creator_uid = r.creator_uid;
    l.revoked = true;
    shmbus::wire::to_wire(l, o);
  }

  Daemon::State& d_;
  std::shared_ptr<ClientState> c_;
};

}  // namespace

kj::Own<control::Bus::Server> make_bus_service(Daemon::State& daemon, std::shared_ptr<ClientState> client) {
  return kj::heap<BusService>(daemon, std::move(client));
}

}  // namespace shmbusd
