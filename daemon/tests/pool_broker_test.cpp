// The daemon as payload-pool broker (anonymous topics, layout v3): a subscriber that cannot
// open a publisher's pool through /proc (the publisher exited, or it is another user's process)
// gets the memfd from shmbusd, and shmbusd only keeps a memfd that is exactly the sealed pool
// the region names. Real processes throughout: the built shmbusd, forked publishers and
// subscribers, and a hostile client speaking the raw control protocol.
#include <capnp/rpc-twoparty.h>
#include <fcntl.h>
#include <kj/async-io.h>
#include <poll.h>
#include <sys/mman.h>

#include <fstream>
#include <functional>
#include <memory>

#include "control.capnp.h"
#include "control/pool_cap.hpp"
#include "daemon_harness.hpp"
#include "shmbus/client.hpp"
#include "shmbus/shmbus.hpp"
#include "topic_admin.hpp"
#include "topic_map.hpp"

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

namespace shmbusd::test {
namespace {

using namespace std::chrono_literals;

// ---- message content: every message says which one it is and carries a checksum ----

constexpr std::size_t kMessageSize = 200;

std::uint64_t fnv1a(std::span<const std::byte> b) {
  std::uint64_t h = 1469598103934665603ULL;
  for (std::byte x : b) h = (h ^ static_cast<std::uint8_t>(x)) * 1099511628211ULL;
  return h;
}

// Message `i`: its index, a pattern derived from it, and an FNV-1a checksum of both.
std::vector<std::byte> stamped(std::uint64_t i) {
  std::vector<std::byte> m(kMessageSize);
  std::memcpy(m.data(), &i, 8);
  for (std::size_t j = 8; j < kMessageSize - 8; ++j) m[j] = static_cast<std::byte>((i * 131 + j * 7) & 0xff);
  std::uint64_t sum = fnv1a(std::span(m).first(kMessageSize - 8));
  std::memcpy(m.data() + kMessageSize - 8, &sum, 8);
  return m;
}

// The index of a message that is exactly what stamped() made, else -1.
std::int64_t check_stamped(std::span<const std::byte> b) {
  if (b.size() != kMessageSize) return -1;
  std::uint64_t i = 0;
  std::memcpy(&i, b.data(), 8);
  std::vector<std::byte> want = stamped(i);
  return std::equal(b.begin(), b.end(), want.begin()) ? static_cast<std::int64_t>(i) : -1;
}

// A block-policy topic whose publisher waits for its subscriber 200 ms at a time.
shmbus::TopicConfig block_topic(const std::string& name) {
  shmbus::TopicConfig c;
  c.name = name;
  c.size_classes = {{256, 64}};
  c.queue_depth = 32;
  c.policy = shmbus::SlowSubscriberPolicy::block;
  c.block_timeout = 200ms;
  return c;
}

// Publishes stamped(0..count-1), retrying each blocked publish for up to 4 s in all; "" when
// all went out, else where it got stuck.
std::string publish_all(shmbus::RawPublisher& pub, int count) {
  auto give_up = std::chrono::steady_clock::now() + 4s;
  for (int i = 0; i < count; ++i) {
    while (!pub.publish_copy(stamped(i)).ok()) {
      if (std::chrono::steady_clock::now() > give_up) return "stuck at message " + std::to_string(i);
    }
  }
  return "";
}

// The pool a publisher created (generation 0 = never created).
std::optional<shmbus::Topic::RegionInfo::PoolInfo> used_pool(const shmbus::Topic& t) {
  for (const auto& p : t.region_info().pools) {
    if (p.generation != 0) return p;
  }
  return std::nullopt;
}

// ---- processes ----

// A one-shot signal between processes: a pipe every later fork inherits.
class Gate {
 public:
  Gate() {
    if (pipe2(fds_, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  }
  ~Gate() {
    close(fds_[0]);
    close(fds_[1]);
  }
  void open() { (void)!write(fds_[1], "g", 1); }
  // Opens the gate when the scope ends, however it ends: a process that fails early must not
  // leave its peer waiting out its timeout.
  struct OpenOnExit {
    Gate& gate;
    ~OpenOnExit() { gate.open(); }
  };
  // False when nobody opened it within `timeout`.
  bool wait(std::chrono::milliseconds timeout = 5s) {
    pollfd p{fds_[0], POLLIN, 0};
    char c;
    return poll(&p, 1, static_cast<int>(timeout.count())) == 1 && read(fds_[0], &c, 1) == 1;
  }

 private:
  int fds_[2];
};

// A forked process running `body`; what body returns (or the exception it threw) is its
// report. The parent compares reports with what it expects, so a failure shows what happened.
class Child {
 public:
  explicit Child(const std::function<std::string()>& body) {
    int out[2];
    if (pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
    pid_ = fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      close(out[0]);
      std::string report;
      int code = 0;
      try {
        report = body();
      } catch (const std::exception& e) {
        report = std::string("exception: ") + e.what();
        code = 1;
      }
      (void)!write(out[1], report.data(), report.size());
      _exit(code);
    }
    close(out[1]);
    out_ = out[0];
  }
  ~Child() {
    if (!reaped_) {
      ::kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    close(out_);
  }
  pid_t pid() const { return pid_; }
  // Waits for the child to exit and returns its report.
  std::string report(std::chrono::milliseconds timeout = 5s) {
    int rc = wait_exit(pid_, timeout);
    if (rc == -1) {
      ::kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    reaped_ = true;
    std::string r;
    char buf[4096];
    for (ssize_t n; (n = read(out_, buf, sizeof(buf))) > 0;) r.append(buf, static_cast<std::size_t>(n));
    if (rc == -1) return "timed out; said: " + r;
    return rc == 0 ? r : r + " (exit status " + std::to_string(rc) + ")";
  }

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  int out_ = -1;
};

bool process_exists(pid_t pid) { return ::kill(pid, 0) == 0 || errno != ESRCH; }

// ---- 1: history outlives its publisher ----

// How a late subscriber's process stands with the daemon when it takes.
enum class Aid {
  none,      // its Client is gone: nobody asks the daemon for this process
  client,    // its Client is there
  reopened,  // its Client is there, and has opened the topic again since (to publish as well)
};

// A late subscriber of a topic whose only publisher has exited: what it took, what it lost,
// and whose pool it was.
std::string late_subscriber(const DaemonProcess& d, const std::string& topic, Aid aid) {
  auto client = std::make_unique<shmbus::Client>(client_at(d, /*reconnect=*/false));
  shmbus::Topic t = client->open_topic(topic, shmbus::Role::subscriber);
  auto pool = used_pool(t);
  if (!pool) return "no pool was ever created";
  shmbus::RawSubscriber sub = client->subscriber(t, {.with_history = true});
  if (aid == Aid::none) client.reset();  // unregisters, and takes its pool source away
  if (aid == Aid::reopened) client->open_topic(topic, shmbus::Role::publisher);  // a second handle
  std::string took;
  for (;;) {
    auto s = sub.take();
    if (!s) {
      if (s.code() != shmbus::Errc::no_data) took += " error " + std::string(s.name());
      break;
    }
    took += " " + std::to_string(check_stamped(s->data()));
  }
  return "owner " + std::to_string(pool->owner_pid) + " took" + took + " lost " + std::to_string(sub.lost());
}

TEST(PoolBroker, PublisherThatExitedStillDeliversItsHistoryThroughTheDaemon) {
  DaemonProcess d(make_temp_dir("poolexit"));
  d.start();
  shmbus::TopicConfig cfg;
  cfg.name = "history/exited";
  cfg.size_classes = {{256, 32}};
  cfg.queue_depth = 16;
  cfg.history_depth = 4;
  const int count = 10;

  Child publisher([&]() -> std::string {
    shmbus::Client client(client_at(d, /*reconnect=*/false));
    shmbus::Topic t = client.open_topic(cfg, shmbus::Role::publisher);
    if (!t.external_pools()) return "not an anonymous topic with external pools";
    shmbus::RawPublisher pub = client.publisher(t);
    for (int i = 0; i < count; ++i) {
      if (auto st = pub.publish_copy(stamped(i)); !st) return "publish " + std::to_string(i) + ": " + st.name();
    }
    return "published";
  });
  ASSERT_EQ(publisher.report(), "published");  // exited normally, and has been reaped
  const pid_t dead = publisher.pid();
  ASSERT_FALSE(process_exists(dead));
  const std::string owner = "owner " + std::to_string(dead);

  // Without the daemon's copy the pool is out of reach (its owner's /proc/<pid>/fd is gone):
  // the four retained messages count as lost. This is what the daemon has to make up for.
  Child unaided([&] { return late_subscriber(d, cfg.name, Aid::none); });
  EXPECT_EQ(unaided.report(), owner + " took lost 4");

  // Through the daemon: the last four, intact, nothing lost.
  Child aided([&] { return late_subscriber(d, cfg.name, Aid::client); });
  EXPECT_EQ(aided.report(), owner + " took 6 7 8 9 lost 0");
  // Also when the process opened the topic a second time (a new handle) after subscribing.
  Child reopened([&] { return late_subscriber(d, cfg.name, Aid::reopened); });
  EXPECT_EQ(reopened.report(), owner + " took 6 7 8 9 lost 0");
}

// ---- 2: another user's subscriber ----

TEST(PoolBroker, SubscriberOfAnotherUserReadsThroughTheDaemon) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to run a subscriber as uid 65534 (running as uid " << geteuid() << ")";
  auto dir = make_temp_dir("otheruser");
  chmod(dir.c_str(), 0755);  // let uid 65534 reach the socket; the rules decide
  std::string config = (dir / "shmbusd.toml").string();
  std::ofstream(config) << "socket_dir_mode = 0o755\n[[access]]\ntopic = \"shared/*\"\npublish = [\"uid:0\"]\n"
                           "subscribe = [\"uid:65534\"]\n";
  DaemonProcess d(dir / "run", {"--config", config});
  d.start();
  const shmbus::TopicConfig cfg = block_topic("shared/frames");
  const int count = 100;
  Gate pub_ready, sub_ready, sub_done;

  Child subscriber([&]() -> std::string {
    Gate::OpenOnExit done{sub_done};
    if (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0) return "cannot become uid 65534";
    if (!pub_ready.wait()) return "the publisher never got ready";
    shmbus::Client client(client_at(d, /*reconnect=*/false));
    shmbus::Topic t = client.open_topic(cfg.name, shmbus::Role::subscriber);
    shmbus::RawSubscriber sub = client.subscriber(t, {.with_history = false});
    sub_ready.open();
    std::optional<shmbus::Topic::PayloadLocation> where;
    for (int i = 0; i < count; ++i) {
      auto s = sub.take_wait(3s);
      if (!s) return "message " + std::to_string(i) + ": " + s.name() + ", lost " + std::to_string(sub.lost());
      if (check_stamped(s->data()) != i) return "message " + std::to_string(i) + " is corrupt or out of order";
      where = t.locate_payload(s->data().data());
      if (!where) return "message " + std::to_string(i) + " lies in no pool mapping of the topic";
      if (where->writable) return "message " + std::to_string(i) + " lies in a writable mapping";
    }
    std::string r = "read " + std::to_string(count) + " lost " + std::to_string(sub.lost());
    // Why it had to ask the daemon: the root publisher's descriptor is not ours to open.
    const auto& slot = shmbus::detail::TopicAccess::map(t).pool_slot(where->pool);
    std::string proc = "/proc/" + std::to_string(slot.owner_pid.load()) + "/fd/" + std::to_string(slot.owner_fd.load());
    int direct = ::open(proc.c_str(), O_RDONLY | O_CLOEXEC);
    r += direct < 0 ? std::string(", /proc open: ") + strerror(errno) : ", /proc open succeeded";
    if (direct >= 0) close(direct);
    // The fd the daemon handed over cannot be turned into write access either (the seals).
    void* w = mmap(nullptr, where->mapping_size, PROT_READ | PROT_WRITE, MAP_SHARED, where->fd, 0);
    r += w == MAP_FAILED ? ", writable mmap refused" : ", writable mmap allowed";
    r += pwrite(where->fd, "x", 1, 0) < 0 ? ", write refused" : ", write allowed";
    r += mprotect(const_cast<void*>(where->mapping_base), where->mapping_size, PROT_READ | PROT_WRITE) != 0
             ? ", mprotect refused"
             : ", mprotect allowed";
    return r;
  });
  Child publisher([&]() -> std::string {
    shmbus::Client client(client_at(d, /*reconnect=*/false));
    shmbus::Topic t = client.open_topic(cfg, shmbus::Role::publisher);
    shmbus::RawPublisher pub = client.publisher(t);
    pub_ready.open();
    if (!sub_ready.wait()) return "the subscriber never got ready";
    if (std::string stuck = publish_all(pub, count); !stuck.empty()) return stuck;
    // Alive until the subscriber is done: the daemon is needed even while the owner lives.
    if (!sub_done.wait()) return "the subscriber never finished";
    return "published";
  });
  EXPECT_EQ(subscriber.report(),
            "read 100 lost 0, /proc open: Permission denied, writable mmap refused, write refused, mprotect refused");
  EXPECT_EQ(publisher.report(), "published");
}

// ---- 3: registerPool / getPool against a hostile client ----

// A request's outcome: "" when answered, else the daemon's reason.
template <typename Promise>
std::string refusal(Promise&& promise, kj::WaitScope& ws) {
  KJ_IF_MAYBE (e, kj::runCatchingExceptions([&]() { promise.wait(ws); })) {
    return e->getDescription().cStr();
  }
  return "";
}

// A memfd of `size` bytes with `seals` added (-1: created without MFD_ALLOW_SEALING).
int memfd_with(std::uint64_t size, int seals) {
  int fd = memfd_create("not-a-pool", MFD_CLOEXEC | (seals >= 0 ? MFD_ALLOW_SEALING : 0));
  if (fd < 0 || ftruncate(fd, static_cast<off_t>(size)) != 0) throw std::runtime_error("memfd");
  if (seals > 0 && fcntl(fd, F_ADD_SEALS, seals) != 0) throw std::runtime_error("F_ADD_SEALS");
  return fd;
}

// Points pool slot `pool` at `fd` of this process (owner pid, fd number, inode), keeping its
// generation: what a hostile publisher can do, since it maps the region writable.
void forge_pool_slot(const shmbus::Topic& t, std::uint32_t pool, int fd) {
  struct stat st {};
  fstat(fd, &st);
  shmbus::detail::PoolSlot& ps = shmbus::detail::TopicAccess::map(t).pool_slot(pool);
  const std::uint32_t seq = ps.seq.load();
  ps.seq.store(seq + 1);  // the slot's sequence lock: odd while rewritten
  ps.owner_pid.store(getpid());
  ps.owner_fd.store(fd);
  ps.inode.store(static_cast<std::uint64_t>(st.st_ino));
  ps.seq.store(seq + 2);
}

TEST(PoolBroker, RegisterPoolRefusesAFdThatIsNotThePublishersSealedPool) {
  DaemonProcess d(make_temp_dir("poolhostile"));
  d.start();
  const shmbus::TopicConfig pair_cfg = block_topic("pair");
  const int count = 50;
  Gate start_pair, sub_ready, pair_read;
  // The well-behaved pair, forked before this process starts an event loop, run afterwards.
  Child pair_sub([&]() -> std::string {
    Gate::OpenOnExit done{pair_read};
    if (!start_pair.wait(10s)) return "never started";
    shmbus::Client client(client_at(d, /*reconnect=*/false));
    shmbus::Topic t = client.open_topic(pair_cfg, shmbus::Role::subscriber);
    shmbus::RawSubscriber sub = client.subscriber(t, {.with_history = false});
    sub_ready.open();
    for (int i = 0; i < count; ++i) {
      auto s = sub.take_wait(3s);
      if (!s) return "message " + std::to_string(i) + ": " + s.name();
      if (check_stamped(s->data()) != i) return "message " + std::to_string(i) + " is corrupt or out of order";
    }
    return "read " + std::to_string(count) + " lost " + std::to_string(sub.lost());
  });
  Child pair_pub([&]() -> std::string {
    if (!sub_ready.wait(10s)) return "the subscriber never got ready";
    shmbus::Client client(client_at(d, /*reconnect=*/false));
    shmbus::Topic t = client.open_topic(pair_cfg, shmbus::Role::publisher);
    shmbus::RawPublisher pub = client.publisher(t);
    if (std::string stuck = publish_all(pub, count); !stuck.empty()) return stuck;
    if (!pair_read.wait()) return "the subscriber never finished";
    return "published";
  });

  // The hostile client: the raw control protocol, with fd passing both ways.
  auto io = kj::setupAsyncIo();
  kj::WaitScope& ws = io.waitScope;
  int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, d.socket().c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(connect(sock, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  auto stream = io.lowLevelProvider->wrapUnixSocketFd(sock, kj::LowLevelAsyncIoProvider::TAKE_OWNERSHIP);
  capnp::TwoPartyClient rpc(*stream, 1);  // one fd per incoming message: a region or a pool
  auto bus = rpc.bootstrap().castAs<shmbus::control::Bus>();
  {
    auto hello = bus.helloRequest();
    hello.setClientName("hostile");
    hello.setProtocolVersion(shmbus::control::PROTOCOL_VERSION);
    ASSERT_EQ(refusal(hello.send(), ws), "");
  }
  auto open_topic = [&](const std::string& name, shmbus::control::Role role) {
    auto req = bus.openTopicRequest();
    req.initConfig().setName(name);
    req.getConfig().setBacking(shmbus::control::Backing::ANONYMOUS);
    req.getConfig().initSizeClasses(1)[0].setChunkSize(256);
    req.getConfig().getSizeClasses()[0].setCount(16);
    req.setRole(role);
    auto resp = req.send().wait(ws);
    auto region = resp.getRegion();
    kj::Maybe<int> fd = region.getFd().wait(ws);
    return shmbus::Topic::open_fd(KJ_ASSERT_NONNULL(fd));  // dups it; ours closes with `region`
  };
  auto register_pool = [&](const std::string& topic, std::uint32_t pool, std::uint32_t generation, int fd) {
    auto req = bus.registerPoolRequest();
    req.setTopic(topic);
    req.setPool(pool);
    req.setGeneration(generation);
    req.setMemfd(kj::heap<shmbus::wire::PoolServer>(topic, pool, generation, fd));
    return refusal(req.send(), ws);
  };
  // "inode N" of the memfd the daemon hands out, or its reason for refusing.
  auto get_pool = [&](const std::string& topic, std::uint32_t pool, std::uint32_t generation) {
    std::string out;
    auto req = bus.getPoolRequest();
    req.setTopic(topic);
    req.setPool(pool);
    req.setGeneration(generation);
    std::string why = refusal(req.send().then([&](auto&& resp) {
      auto memfd = resp.getMemfd();
      return memfd.getFd().then([memfd, &out](kj::Maybe<int> fd) mutable {
        struct stat st {};
        KJ_IF_MAYBE (f, fd) {
          if (fstat(*f, &st) == 0) out = "inode " + std::to_string(st.st_ino);
        }
      });
    }), ws);
    return why.empty() ? out : why;
  };
  auto has = [](const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; };

  shmbus::Topic t = open_topic("hostile", shmbus::control::Role::PUBLISHER);
  shmbus::RawPublisher pub(t);  // creates pool `p`, sealed, named by the region's pool slot
  const std::uint32_t p = pub.slot();
  auto own = shmbus::detail::own_pool(t, p);
  ASSERT_TRUE(own);
  const std::uint32_t gen = own->generation;
  const std::uint64_t size = used_pool(t)->size;
  struct stat real {};
  ASSERT_EQ(fstat(own->fd, &real), 0);
  const std::string real_inode = "inode " + std::to_string(real.st_ino);

  // Nothing registered yet: nothing to hand out.
  EXPECT_TRUE(has(get_pool("hostile", p, gen), "has no registered pool")) << get_pool("hostile", p, gen);

  // (c) The real pool, but a generation that is not current.
  std::string why = register_pool("hostile", p, gen + 1, own->fd);
  EXPECT_TRUE(has(why, "generation " + std::to_string(gen + 1) + " is not the pool's current one (" +
                           std::to_string(gen) + ")")) << why;
  // (b) Sealed like a pool and of a pool's size, but not the memfd the slot names.
  int lookalike = memfd_with(size, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL);
  why = register_pool("hostile", p, gen, lookalike);
  EXPECT_TRUE(has(why, "not the memfd the pool slot names")) << why;
  // Neither refused fd was kept.
  EXPECT_TRUE(has(get_pool("hostile", p, gen), "has no registered pool")) << "a refused fd was kept";

  // The genuine pool is accepted (so the refusals above were about the fds), and handed out.
  EXPECT_EQ(register_pool("hostile", p, gen, own->fd), "");
  EXPECT_EQ(get_pool("hostile", p, gen), real_inode);

  // (a) The slot rewritten to name a memfd that is not sealed (anyone the daemon handed it to
  // could write the "read-only" payload), or sealed against resizing but not against writing.
  // Last, because it forges the slot: an unsealed fd the slot does not name fails as (b) does.
  int unsealed = memfd_with(size, -1);
  int writable = memfd_with(size, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
  for (int fd : {unsealed, writable}) {
    forge_pool_slot(t, p, fd);
    why = register_pool("hostile", p, gen, fd);
    EXPECT_TRUE(has(why, "not sealed against writing")) << why;
  }
  forge_pool_slot(t, p, own->fd);  // back to the genuine pool
  EXPECT_EQ(get_pool("hostile", p, gen), real_inode) << "a refused fd replaced the registered pool";
  close(lookalike);
  close(unsealed);
  close(writable);

  // The normal pair still works, and its publisher's pool is registered with the daemon.
  start_pair.open();
  EXPECT_EQ(pair_sub.report(), "read 50 lost 0");
  EXPECT_EQ(pair_pub.report(), "published");

  // On a topic this connection did not open it may neither register a pool nor fetch one.
  why = register_pool("pair", 0, 1, own->fd);
  EXPECT_TRUE(has(why, "registerPool: topic 'pair' was not opened to publish on this connection")) << why;
  why = get_pool("pair", 0, 1);
  EXPECT_TRUE(has(why, "getPool: topic 'pair' was not opened on this connection")) << why;
  // Once opened (to subscribe) on this connection, the same request is served: the refusal
  // above was about the connection's rights, not a missing pool.
  shmbus::Topic pair = open_topic("pair", shmbus::control::Role::SUBSCRIBER);
  auto pair_pool = used_pool(pair);
  ASSERT_TRUE(pair_pool);
  EXPECT_EQ(get_pool("pair", pair_pool->index, pair_pool->generation),
            "inode " + std::to_string(shmbus::detail::TopicAccess::map(pair).pool_slot(pair_pool->index).inode.load()));

  // The same connection is still served after every refusal, and the daemon lives.
  EXPECT_EQ(refusal(bus.statusRequest().send(), ws), "");
  int st;
  EXPECT_EQ(waitpid(d.pid(), &st, WNOHANG), 0) << "shmbusd died";
}

// ---- 4: a publisher slot reused while messages of its earlier pools are still queued ----

// A process's state, from /proc/<pid>/stat ('T' = stopped), or '?' when it is gone.
char process_state(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  const auto paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() ? line[paren + 2] : '?';
}

// How the subscriber stays away while the publishers come and go.
enum class Away { stopped, not_taking };

// `count` short-lived publishers in a row, each a process of its own that publishes message i
// and exits, while the subscriber is `away`: each one takes publisher slot 0 after the one
// before released it, so each creates a new generation of pool 0 while the messages of the
// earlier generations wait in the queue. Then the subscriber reads on.
void publishers_in_a_row_while_the_subscriber_is(Away away) {
  DaemonProcess d(make_temp_dir("poolreuse"));
  d.start();
  shmbus::TopicConfig cfg;
  cfg.name = away == Away::stopped ? "reuse/stopped" : "reuse/idle";
  cfg.size_classes = {{256, 32}};
  cfg.queue_depth = 16;  // far from full: nothing may be lost as "too slow"
  const int count = 5;
  Gate sub_ready, publishers_done;

  Child subscriber([&]() -> std::string {
    shmbus::Client client(client_at(d, /*reconnect=*/false));
    shmbus::Topic t = client.open_topic(cfg, shmbus::Role::subscriber);
    shmbus::RawSubscriber sub = client.subscriber(t, {.with_history = false});
    sub_ready.open();
    if (away == Away::not_taking && !publishers_done.wait(30s)) return "the publishers never finished";
    std::string took;
    for (int i = 0; i < count; ++i) {
      auto s = sub.take_wait(10s);
      if (!s) return "took" + took + " then " + s.name() + ", lost " + std::to_string(sub.lost());
      took += " " + std::to_string(check_stamped(s->data()));
    }
    return "took" + took + " lost " + std::to_string(sub.lost()) + ", pool 0 at generation " +
           std::to_string(shmbus::detail::TopicAccess::map(t).pool_slot(0).generation.load());
  });
  ASSERT_TRUE(sub_ready.wait(10s));
  if (away == Away::stopped) {
    ASSERT_EQ(::kill(subscriber.pid(), SIGSTOP), 0);
    for (int i = 0; i < 500 && process_state(subscriber.pid()) != 'T'; ++i) std::this_thread::sleep_for(2ms);
    ASSERT_EQ(process_state(subscriber.pid()), 'T');
  }
  for (int i = 0; i < count; ++i) {
    Child publisher([&]() -> std::string {
      shmbus::Client client(client_at(d, /*reconnect=*/false));
      shmbus::Topic t = client.open_topic(cfg, shmbus::Role::publisher);
      shmbus::RawPublisher pub = client.publisher(t);
      if (auto st = pub.publish_copy(stamped(i)); !st) return "publish: " + std::string(st.name());
      return "slot " + std::to_string(pub.slot());
    });
    ASSERT_EQ(publisher.report(), "slot 0") << "publisher " << i;
    ASSERT_FALSE(process_exists(publisher.pid()));
  }
  publishers_done.open();
  if (away == Away::stopped) {
    ASSERT_EQ(::kill(subscriber.pid(), SIGCONT), 0);
  }
  // Every message, in order, none lost, though each came from a pool generation whose
  // publisher had exited and whose slot the next publisher had taken over.
  EXPECT_EQ(subscriber.report(30s), "took 0 1 2 3 4 lost 0, pool 0 at generation 5");
}

TEST(PoolBroker, PublishersInARowWhileTheSubscriberIsStoppedAllArriveInOrder) {
  publishers_in_a_row_while_the_subscriber_is(Away::stopped);
}

TEST(PoolBroker, PublishersInARowWhileTheSubscriberIsNotTakingAllArriveInOrder) {
  publishers_in_a_row_while_the_subscriber_is(Away::not_taking);
}

}  // namespace
}  // namespace shmbusd::test
