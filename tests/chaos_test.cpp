// The control region is hostile input (issue 21): a scribbler process writes random and
// targeted values into the words of a topic's region while a publisher, a subscriber,
// subscribers joining and leaving, and the CLI's inspection commands run, on file-backed,
// anonymous and daemon-served topics, with several seeds. Pass: no process but the scribbler
// dies by a signal; every call returns within its bound (docs/usage.md, "Bounded waits");
// once the scribbler stops and the topic is re-created (or revoked by the daemon and served
// fresh), delivery resumes; the daemon still answers and honours SIGTERM.
//
// Short by default (well under 30 s for every case together). SHMBUS_CHAOS_SECONDS=N makes
// each scribbling phase N seconds long, with more seeds: the soak.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "layout.hpp"
#include "shmbus/client.hpp"
#include "shmbus/shmbus.hpp"
#include "test_support.hpp"

// Without the daemon and CLI built (SHMBUS_BUILD_DAEMON=OFF) the cases that need them skip.
#ifndef SHMBUSD_BINARY
#define SHMBUSD_BINARY ""
#define SHMBUS_CLI_PATH ""
#endif

namespace shmbus {
namespace {

using namespace shmbus::testing;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// ---- bounds every participant's calls are held to ----
// A publish waits at most max(1 s, block timeout) for a previous lap (kMinLapWaitNs); the
// rest is slack for a machine whose two cores are shared by many processes.
constexpr auto kBlockTimeout = 200ms;
constexpr auto kPublishBound = 6s;
constexpr auto kTakeWait = 100ms;
constexpr auto kTakeBound = kTakeWait + 5s;
constexpr auto kOpenBound = 10s;  // opening, registering, closing (a reclaim may run inside)
constexpr auto kCliBound = 15s;   // a whole CLI process, start to exit

enum ChaosExit : int { kCallTooSlow = kChildFirstFree };

std::chrono::milliseconds scribble_time() {
  if (const char* s = std::getenv("SHMBUS_CHAOS_SECONDS")) return std::chrono::milliseconds(std::atol(s) * 1000);
  return 1200ms;
}
std::vector<std::uint64_t> seeds() {
  if (std::getenv("SHMBUS_CHAOS_SECONDS")) return {1, 2, 3, 4, 5, 6, 7, 8};
  return {1, 2};
}

// Runs `call`; if it took longer than `bound`, says so on stderr and ends the child.
template <typename F>
auto timed(const char* what, std::chrono::milliseconds bound, F&& call) {
  const auto start = Clock::now();
  auto result = call();
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  if (took > bound) {
    std::fprintf(stderr, "chaos: pid %d: %s took %lld ms (bound %lld ms)\n", getpid(), what,
                 static_cast<long long>(took.count()), static_cast<long long>(bound.count()));
    _exit(kCallTooSlow);
  }
  return result;
}

// ---- the scribbler ----

// Where to write: every word of the mutable sections, and with `config_words` the immutable
// ones too (the header, the topic configuration, the size classes).
struct Target {
  std::uint64_t offset;
  std::uint64_t size;  // of the range
};

std::vector<Target> targets_of(const std::byte* base, bool config_words) {
  const auto& h = *reinterpret_cast<const detail::RegionHeader*>(base);
  std::vector<Target> t;
  auto section = [&](detail::SectionId id) { return Target{h.sections[id].offset, h.sections[id].size}; };
  const Target ctl = section(detail::kSectionControl);
  // The hot words: tail, futexes, sleepers, waiters, high-water mark, epoch, recovery lock.
  t.push_back({ctl.offset + offsetof(detail::TopicControl, tail), sizeof(detail::TopicControl) - offsetof(detail::TopicControl, tail)});
  for (detail::SectionId id : {detail::kSectionPublishers, detail::kSectionSubscribers, detail::kSectionLoans,
                               detail::kSectionHolds, detail::kSectionRing, detail::kSectionChunks,
                               detail::kSectionPools, detail::kSectionFreeLists}) {
    t.push_back(section(id));
  }
  if (config_words) {
    t.push_back({0, sizeof(detail::RegionHeader)});
    t.push_back({ctl.offset, offsetof(detail::TopicControl, tail)});
    t.push_back(section(detail::kSectionClasses));
  }
  std::erase_if(t, [](const Target& x) { return x.size < 8; });
  return t;
}

// A value a hostile or broken participant would write: offsets, counts, sequence numbers,
// generations, pids, fd numbers, lap words; or the word's own value nudged.
std::uint64_t hostile_value(std::mt19937_64& rng, std::uint64_t current, std::uint64_t tail, std::uint64_t capacity,
                            std::uint64_t chunks) {
  switch (rng() % 20) {
    case 0: return 0;
    case 1: return 1;
    case 2: return ~0ULL;
    case 3: return ~0ULL - 1;
    case 4: return 0xFFFF'FFFFull;
    case 5: return 0x8000'0000ull | (rng() % (chunks + 2));  // a pinned entry, maybe in range
    case 6: return chunks + rng() % 4;                        // just past the chunk table
    case 7: return rng() % (chunks ? chunks : 1);             // a real chunk, not ours
    case 8: return tail + capacity * (1 + rng() % 4);         // a lap or more ahead
    case 9: return tail > 0 ? tail - 1 : 0;
    case 10: return tail + (1ULL << (40 + rng() % 23));        // far ahead
    case 11: return static_cast<std::uint64_t>(getpid());       // our own pid
    case 12: return static_cast<std::uint64_t>(getppid());      // a live process
    case 13: return static_cast<std::uint32_t>(-1 - static_cast<int>(rng() % 3));  // negative pids
    case 14: return rng() % 8;                                  // fd numbers 0..7, slot states
    case 15: return 1ULL << 20;                                 // a huge fd number
    case 16: return current + 1;
    case 17: return current - 1;
    case 18: return current ^ (1ULL << (rng() % 64));
    default: return rng();
  }
}

// The scribbler's map of a region, read once from a sound one: after its own writes the
// header's offsets are garbage (a re-created region of the same configuration has the same).
struct ScribbleMap {
  std::vector<Target> targets;
  std::uint64_t control_offset, capacity, chunks;
};
ScribbleMap scribble_map(const std::byte* base, bool config_words) {
  const auto& h = *reinterpret_cast<const detail::RegionHeader*>(base);
  const std::uint64_t ctl = h.sections[detail::kSectionControl].offset;
  const auto& c = *reinterpret_cast<const detail::TopicControl*>(base + ctl);
  return {targets_of(base, config_words), ctl, c.ring_capacity, c.total_chunks};
}

// Writes hostile values into the region mapped at `base` (`size` bytes) until `end`.
void scribble(std::byte* base, std::size_t size, const ScribbleMap& map, std::uint64_t seed, Clock::time_point end) {
  std::mt19937_64 rng(seed);
  const auto& ctl = *reinterpret_cast<const detail::TopicControl*>(base + map.control_offset);
  const std::uint64_t capacity = map.capacity;
  const std::uint64_t chunks = map.chunks;
  const std::vector<Target>& targets = map.targets;
  while (Clock::now() < end) {
    for (int burst = 1 + static_cast<int>(rng() % 8); burst > 0; --burst) {
      const Target& t = targets[rng() % targets.size()];
      const bool wide = rng() % 2 == 0;
      std::uint64_t off = t.offset + (rng() % t.size) / (wide ? 8 : 4) * (wide ? 8 : 4);
      if (off + 8 > size) continue;
      const std::uint64_t tail = ctl.tail.load(std::memory_order_relaxed);
      if (wide) {
        auto* w = reinterpret_cast<std::uint64_t*>(base + off);
        __atomic_store_n(w, hostile_value(rng, __atomic_load_n(w, __ATOMIC_RELAXED), tail, capacity, chunks), __ATOMIC_RELAXED);
      } else {
        auto* w = reinterpret_cast<std::uint32_t*>(base + off);
        __atomic_store_n(w, static_cast<std::uint32_t>(hostile_value(rng, __atomic_load_n(w, __ATOMIC_RELAXED), tail, capacity, chunks)),
                         __ATOMIC_RELAXED);
      }
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200 + rng() % 300));
  }
}

// Maps the region behind `fd` for the scribbler (its own mapping, outside the library).
std::pair<std::byte*, std::size_t> map_raw(int fd) {
  struct stat st {};
  if (fstat(fd, &st) != 0) throw std::runtime_error("fstat of the region for the scribbler");
  void* p = mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) throw std::runtime_error("mmap of the region for the scribbler");
  return {static_cast<std::byte*>(p), static_cast<std::size_t>(st.st_size)};
}

// ---- the well-behaved participants ----

// How participants get the topic and their endpoints: a region they open themselves (file
// or inherited memfd), or the daemon (then a revoked topic is opened again, fresh, and the
// endpoints are registered with the daemon, which hands subscribers the publisher's pool).
struct Access {
  std::function<Topic(Role)> open;
  std::function<RawPublisher(const Topic&)> publisher = [](const Topic& t) { return RawPublisher(t); };
  std::function<RawSubscriber(const Topic&)> subscriber = [](const Topic& t) { return RawSubscriber(t); };
};

// Publishes until `end`, every call within its bound. A lost region is opened again.
int run_publisher(const Access& access, Clock::time_point end) {
  std::uint64_t n = 0;
  while (Clock::now() < end) {
    try {
      Topic topic = timed("open (publisher)", kOpenBound, [&] { return access.open(Role::publisher); });
      std::optional<RawPublisher> pub;
      timed("register publisher", kOpenBound, [&] { return &pub.emplace(access.publisher(topic)); });
      while (Clock::now() < end) {
        Status st = timed("loan+publish", kPublishBound, [&] { return publish_stamped(*pub, 0, n++, 64); });
        if (st.code() == Errc::region_lost) break;
        if (!st.ok()) std::this_thread::sleep_for(1ms);  // pool exhausted, timeout: go on
      }
      timed("unregister publisher", kOpenBound, [&] { pub.reset(); return 0; });
    } catch (const Error&) {  // refused at open or registration: a damaged region says so
      std::this_thread::sleep_for(20ms);
    }
  }
  return kChildOk;
}

// Takes until `end`; with `joiner`, leaves and joins again every few takes.
int run_subscriber(const Access& access, Clock::time_point end, bool joiner) {
  while (Clock::now() < end) {
    try {
      Topic topic = timed("open (subscriber)", kOpenBound, [&] { return access.open(Role::subscriber); });
      for (int round = 0; round < (joiner ? 20 : 1'000'000) && Clock::now() < end; ++round) {
        std::optional<RawSubscriber> sub;
        timed("register subscriber", kOpenBound, [&] { return &sub.emplace(access.subscriber(topic)); });
        bool lost = false;
        for (int i = 0; i < (joiner ? 5 : 1'000'000) && Clock::now() < end; ++i) {
          Result<RawSample> s = timed("take_wait", kTakeBound, [&] { return sub->take_wait(kTakeWait); });
          if (!s && s.code() == Errc::region_lost) {
            lost = true;
            break;
          }
          if (s) (void)check_stamped(s->data());  // reads the payload; contents may be disturbed
        }
        timed("unregister subscriber", kOpenBound, [&] { sub.reset(); return 0; });
        if (lost) break;
      }
    } catch (const Error&) {
      std::this_thread::sleep_for(20ms);
    }
  }
  return kChildOk;
}

// Runs the `shmbus` CLI with `args` repeatedly until `end`; every run within kCliBound and
// ended by no signal. Its own exit code (a refused, damaged region) is its business.
int run_cli(const std::vector<std::string>& args, Clock::time_point end) {
  while (Clock::now() < end) {
    pid_t pid = fork();
    if (pid < 0) return kChildThrew;
    if (pid == 0) {
      int null = open("/dev/null", O_WRONLY);
      dup2(null, 1);
      std::vector<std::string> a = {SHMBUS_CLI_PATH};
      a.insert(a.end(), args.begin(), args.end());
      std::vector<char*> argv;
      for (std::string& s : a) argv.push_back(s.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    const auto deadline = Clock::now() + kCliBound;
    int st = 0;
    while (waitpid(pid, &st, WNOHANG) == 0) {
      if (Clock::now() > deadline) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        std::fprintf(stderr, "chaos: CLI did not finish within %lld s\n", static_cast<long long>(kCliBound.count() / 1000));
        return kCallTooSlow;
      }
      std::this_thread::sleep_for(5ms);
    }
    if (WIFSIGNALED(st)) {
      std::fprintf(stderr, "chaos: CLI '%s' died by signal %d\n", args.back().c_str(), WTERMSIG(st));
      return 128 + WTERMSIG(st);
    }
    if (WIFEXITED(st) && WEXITSTATUS(st) == 127) {
      std::fprintf(stderr, "chaos: could not run the CLI at %s\n", SHMBUS_CLI_PATH);
      return kChildThrew;
    }
  }
  return kChildOk;
}

TopicConfig chaos_config(const std::string& name, std::uint64_t seed) {
  TopicConfig c;
  c.name = name;
  c.queue_depth = 8;
  c.policy = seed % 2 == 1 ? SlowSubscriberPolicy::drop_oldest : SlowSubscriberPolicy::block;
  c.block_timeout = kBlockTimeout;
  c.max_publishers = 2;
  c.max_subscribers = 6;
  c.size_classes = {{256, 32}};
  return c;
}

// Every participant's exit status: none may have died by a signal or overrun a bound.
void expect_clean(std::vector<std::pair<std::string, Child>>& children, const std::string& what) {
  for (auto& [role, child] : children) {
    const int status = child.wait(scribble_time() + 30s);
    EXPECT_EQ(status, kChildOk) << what << ": " << role << " ended with " << describe_exit(status);
  }
}

// After the chaos: a fresh publisher and subscriber in two processes on `open`'s topic
// deliver messages again within a few seconds.
void expect_delivery(const Access& access, const std::string& what) {
  Pipe ready, got;
  Child sub = Child::spawn([&]() -> int {
    const auto end = Clock::now() + 15s;
    while (Clock::now() < end) {
      try {
        Topic topic = access.open(Role::subscriber);
        RawSubscriber s = access.subscriber(topic);
        if (!ready.notify()) return kChildPipeFailed;
        for (int i = 0; i < 100; ++i) {
          Result<RawSample> r = s.take_wait(100ms);
          if (r && check_stamped(r->data())) return got.notify() ? kChildOk : kChildPipeFailed;
          if (!r && r.code() == Errc::region_lost) break;
        }
      } catch (const Error&) {
        std::this_thread::sleep_for(100ms);
      }
    }
    return kChildTimedOut;
  });
  Child pub = Child::spawn([&]() -> int {
    const auto end = Clock::now() + 15s;
    std::uint64_t n = 0;
    while (Clock::now() < end) {
      try {
        Topic topic = access.open(Role::publisher);
        RawPublisher p = access.publisher(topic);
        for (int i = 0; i < 200; ++i) {
          if (publish_stamped(p, 1, n++, 64).code() == Errc::region_lost) break;
          std::this_thread::sleep_for(10ms);
        }
      } catch (const Error&) {
        std::this_thread::sleep_for(100ms);
      }
    }
    return kChildOk;
  });
  EXPECT_TRUE(got.await(20s)) << what << ": no delivery after the scribbler stopped";
  EXPECT_EQ(sub.wait(20s), kChildOk) << what;
  pub.kill_and_reap();
}

// One chaos case on a topic every participant reaches through `access`; `scribble_fd` gives
// the scribbler the region to map (for a daemon topic, the one it serves now), or -1.
void run_chaos(const std::string& what, const Access& access, const std::function<int()>& scribble_fd,
               std::uint64_t seed, bool config_words, const std::vector<std::vector<std::string>>& cli) {
  const auto end = Clock::now() + scribble_time();
  std::vector<std::pair<std::string, Child>> children;
  children.emplace_back("publisher", Child::spawn([&] { return run_publisher(access, end + 300ms); }));
  children.emplace_back("subscriber", Child::spawn([&] { return run_subscriber(access, end + 300ms, false); }));
  children.emplace_back("joiner", Child::spawn([&] { return run_subscriber(access, end + 300ms, true); }));
  for (const auto& args : cli) children.emplace_back("CLI " + args.back(), Child::spawn([&] { return run_cli(args, end); }));
  Child scribbler = Child::spawn([&]() -> int {
    std::this_thread::sleep_for(200ms);  // let the others start on a sound region
    // A daemon may revoke the region and serve a fresh one: follow it every 300 ms.
    std::uint64_t round = 0;
    std::optional<ScribbleMap> layout;
    while (Clock::now() < end) {
      const int fd = scribble_fd();
      if (fd < 0) {
        std::this_thread::sleep_for(20ms);
        continue;
      }
      auto [base, size] = map_raw(fd);
      close(fd);
      if (!layout) layout = scribble_map(base, config_words);
      scribble(base, size, *layout, seed * 1000 + round++, std::min(end, Clock::now() + 300ms));
      munmap(base, size);
    }
    return kChildOk;
  });
  const int scribbled = scribbler.wait(scribble_time() + 10s);
  EXPECT_EQ(scribbled, kChildOk) << what << ": the scribbler itself failed: " << describe_exit(scribbled);
  expect_clean(children, what);
}

std::string case_name(const char* kind, std::uint64_t seed, bool config_words) {
  return std::string(kind) + " topic, seed " + std::to_string(seed) + (config_words ? ", config words too" : "");
}

void file_backed_case(std::uint64_t seed, bool config_words) {
  TempDir dir("chaos");
  const std::string name = unique_name("chaos-file");
  Topic created = Topic::create(chaos_config(name, seed), dir.region_options());
  const std::filesystem::path file = created.path();
  const std::string what = case_name("file-backed", seed, config_words);
  run_chaos(
      what, Access{[&](Role) { return Topic::open_file(file); }},
      [&] { return ::open(file.c_str(), O_RDWR | O_CLOEXEC); }, seed, config_words,
      std::string(SHMBUS_CLI_PATH).empty() ? std::vector<std::vector<std::string>>{}
                                            : std::vector<std::vector<std::string>>{{"region", "inspect", file.string()}});
  // The application re-creates the topic (a new region file) and delivery resumes.
  std::filesystem::remove(file);
  Topic fresh = Topic::create(chaos_config(name, seed), dir.region_options());
  expect_delivery(Access{[&](Role) { return Topic::open_file(fresh.path()); }}, what);
}

void anonymous_case(std::uint64_t seed, bool config_words) {
  const std::string name = unique_name("chaos-anon");
  RegionOptions o;
  o.backing = RegionOptions::Backing::anonymous;
  Topic created = Topic::create(chaos_config(name, seed), o);
  const std::string what = case_name("anonymous", seed, config_words);
  run_chaos(
      what, Access{[&](Role) { return Topic::open_fd(created.fd()); }}, [&] { return ::dup(created.fd()); }, seed,
      config_words, {});
  Topic fresh = Topic::create(chaos_config(name, seed), o);
  expect_delivery(Access{[&](Role) { return Topic::open_fd(fresh.fd()); }}, what);
}

// Runs `body` in a child process and returns its exit status. The test process itself makes
// no daemon client: its threads' stacks would leave holes in this process's address space
// that later tests in the binary (zero_copy_test's distinct-address check) trip over.
int in_child(const std::function<int()>& body) { return Child::spawn(body).wait(20s); }

// shmbusd as a child process (fork/exec of the built binary) on a private runtime directory.
struct ChaosDaemon {
  TempDir dir{"chaosd"};
  pid_t pid = -1;
  std::filesystem::path socket() const { return dir.path() / "default.sock"; }
  std::filesystem::path log_file() const { return dir.path() / "shmbusd.log"; }
  std::string log() const {
    std::ifstream in(log_file());
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  ClientOptions client() const {
    ClientOptions o;
    o.socket = socket();
    o.timeout = 3000ms;
    o.reconnect = false;
    return o;
  }
  void start() {
    pid = fork();
    if (pid == 0) {
      // Its log names each revoked region: kept in a file, shown when a case fails.
      int log = open(log_file().c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      dup2(log, 1);
      dup2(log, 2);
      execl(SHMBUSD_BINARY, SHMBUSD_BINARY, "--runtime-dir", dir.path().c_str(), "--log-level", "info", nullptr);
      _exit(127);
    }
    const int up = in_child([&] {
      const auto end = Clock::now() + 10s;
      while (Clock::now() < end) {
        try {
          Client c(client());
          return kChildOk;
        } catch (const Error&) {
          std::this_thread::sleep_for(20ms);
        }
      }
      return kChildTimedOut;
    });
    ASSERT_EQ(up, kChildOk) << "shmbusd did not come up";
  }
  // SIGTERM; the exit status, or -1 when it did not end within 5 s (then SIGKILLed).
  int stop() {
    if (pid <= 0) return -1;
    kill(pid, SIGTERM);
    const auto end = Clock::now() + 5s;
    int st = 0;
    for (;;) {
      if (waitpid(pid, &st, WNOHANG) == pid) break;
      if (Clock::now() > end) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        pid = -1;
        return -1;
      }
      std::this_thread::sleep_for(10ms);
    }
    pid = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }
  ~ChaosDaemon() {
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }
};

void daemon_case(std::uint64_t seed, bool config_words) {
  if (std::string(SHMBUSD_BINARY).empty()) GTEST_SKIP() << "built without the daemon";
  ChaosDaemon d;
  d.start();
  const int failures_before = ::testing::UnitTest::GetInstance()->current_test_info()->result()->total_part_count();
  const std::string name = unique_name("chaos-daemon");
  const TopicConfig config = chaos_config(name, seed);
  const std::string what = case_name("daemon-served", seed, config_words);
  // One client per process, made in the process that uses it (after the fork); endpoints
  // registered with it, as applications do (Client::publisher / Client::subscriber).
  auto client = [&]() -> Client& {
    static std::unique_ptr<Client> c;
    static pid_t of = 0;
    if (!c || of != getpid()) {
      (void)c.release();  // the parent's, inherited by fork: not ours to close
      c = std::make_unique<Client>(d.client());
      of = getpid();
    }
    return *c;
  };
  const Access access{[&](Role role) { return client().open_topic(config, role); },
                      [&](const Topic& t) { return client().publisher(t); },
                      [&](const Topic& t) { return client().subscriber(t); }};
  ASSERT_EQ(in_child([&] {
              Client c(d.client());
              (void)c.open_topic(config, Role::publisher);  // the daemon creates it
              return kChildOk;
            }),
            kChildOk);
  const std::string sock = d.socket().string();
  run_chaos(
      what, access,
      [&]() -> int {
        try {
          return ::dup(access.open(Role::subscriber).fd());  // the region the daemon serves now
        } catch (const Error&) {
          return -1;
        }
      },
      seed, config_words,
      {{"--socket", sock, "region", "inspect", name}, {"--socket", sock, "topic", "info", name}});
  ASSERT_EQ(kill(d.pid, 0), 0) << what << ": shmbusd died";
  EXPECT_EQ(in_child([&] {
              Client c(d.client());
              (void)c.status();
              return kChildOk;
            }),
            kChildOk)
      << what << ": shmbusd does not answer";
  // The daemon revokes what it finds damaged and serves a fresh region: delivery resumes
  // without anybody re-creating anything by hand.
  expect_delivery(access, what);
  EXPECT_EQ(d.stop(), 0) << what << ": shmbusd did not honour SIGTERM within 5 s";
  if (::testing::UnitTest::GetInstance()->current_test_info()->result()->total_part_count() != failures_before) {
    std::fprintf(stderr, "chaos: shmbusd's log for %s:\n%s\n", what.c_str(), d.log().c_str());
  }
}

TEST(Chaos, NoParticipantDiesOrHangsWhileTheMutableWordsOfAFileBackedRegionAreScribbled) {
  for (std::uint64_t seed : seeds()) file_backed_case(seed, false);
}

TEST(Chaos, NoParticipantDiesOrHangsWhileTheMutableWordsOfAnAnonymousRegionAreScribbled) {
  for (std::uint64_t seed : seeds()) anonymous_case(seed, false);
}

TEST(Chaos, NoParticipantDiesOrHangsAndTheDaemonServesAFreshRegionAfterScribbling) {
  for (std::uint64_t seed : seeds()) daemon_case(seed, false);
}

// The immutable configuration words too (the header, TopicControl's first lines, the size
// classes): what the openers validate (TopicMap::validate and bind_sections) must hold.
TEST(Chaos, NoParticipantDiesOrHangsWhenEveryWordIncludingTheConfigurationIsScribbled) {
  // One seed per kind in the default suite; every seed in the soak.
  const std::vector<std::uint64_t> soak = seeds();
  for (std::uint64_t seed : std::getenv("SHMBUS_CHAOS_SECONDS") ? soak : std::vector<std::uint64_t>{3}) {
    file_backed_case(seed, true);
    anonymous_case(seed + 1, true);
    daemon_case(seed + 2, true);
  }
}

}  // namespace
}  // namespace shmbus
