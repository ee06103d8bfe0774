// Shared harness for the shmbus benchmark programs (shmbus_bench, shmbus_bench_iox).
//
// Every case forks: the measuring side runs in the parent pinned to CPU 0, the other side(s)
// in children pinned to CPU 1 (sched_setaffinity). Transports plug in as small endpoint
// classes made by a factory *after* the fork, so each process builds its own publisher /
// subscriber / socket end. Results are printed as one JSON object per run on stdout; the
// driver (bench/run_bench.py) collects them.
#pragma once

#include <linux/perf_event.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace bench {

inline constexpr std::uint64_t kStop = ~0ULL;

// ------------------------------------------------------------------ time

inline std::uint64_t mono_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
}

inline std::uint64_t tsc() { return __rdtsc(); }

// TSC ticks per ns, calibrated once against CLOCK_MONOTONIC (the TSC is constant and
// nonstop here: cpuinfo flags constant_tsc nonstop_tsc tsc_known_freq).
inline double tsc_per_ns() {
  static double v = [] {
    std::uint64_t n0 = mono_ns(), t0 = tsc();
    while (mono_ns() - n0 < 20'000'000) {
    }
    std::uint64_t n1 = mono_ns(), t1 = tsc();
    return static_cast<double>(t1 - t0) / static_cast<double>(n1 - n0);
  }();
  return v;
}

inline void spin_until_ns(std::uint64_t deadline) {
  while (mono_ns() < deadline) _mm_pause();
}

// ------------------------------------------------------------------ process placement

inline void pin_to(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0) {
    std::perror("sched_setaffinity");
  }
}

inline int cpu_count() { return static_cast<int>(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN))); }
inline int cpu_main() { return 0; }
inline int cpu_peer() { return cpu_count() > 1 ? 1 : 0; }

// Anonymous MAP_SHARED memory that a fork shares.
template <class T>
T* shared_new(std::size_t count = 1) {
  void* p = mmap(nullptr, sizeof(T) * count, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    std::perror("mmap");
    std::exit(2);
  }
  return new (p) T[count]();
}

inline void* shared_bytes(std::size_t n) {
  void* p = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    std::perror("mmap");
    std::exit(2);
  }
  return p;
}

// Control block shared by the parent and its children for one run.
struct alignas(64) Ctl {
  std::atomic<int> ready{0};
  std::atomic<int> connected{0};
  alignas(64) std::atomic<int> stop{0};
  std::atomic<int> done{0};
  alignas(64) std::atomic<std::uint64_t> acks{0};
  alignas(64) std::atomic<std::uint64_t> count{0};
  std::atomic<std::uint64_t> elapsed_ns{0};
  std::atomic<std::uint64_t> checksum{0};
  std::atomic<long> child_rss_kb{0};
  std::atomic<long> child_pss_kb{0};
  std::atomic<long> child_cpu_us{0};
  std::atomic<long> child_extra{0};
  char error[256]{};
};

inline void barrier(std::atomic<int>& a, int parties) {
  a.fetch_add(1);
  while (a.load() < parties) _mm_pause();
}

// Forks `children` processes; child k runs body(k+1) pinned to the peer CPU, the parent runs
// body(0) pinned to the main CPU. Returns false if a child failed.
inline bool run_forked(int children, const std::function<void(int)>& body, Ctl* ctl = nullptr) {
  std::vector<pid_t> pids;
  std::fflush(stdout);
  std::fflush(stderr);
  for (int k = 0; k < children; ++k) {
    pid_t pid = fork();
    if (pid < 0) {
      std::perror("fork");
      std::exit(2);
    }
    if (pid == 0) {
      pin_to(cpu_peer());
      try {
        body(k + 1);
      } catch (const std::exception& e) {
        if (ctl) std::snprintf(ctl->error, sizeof ctl->error, "child: %s", e.what());
        std::fprintf(stderr, "child %d: %s\n", k + 1, e.what());
        std::fflush(stderr);
        _exit(3);
      }
      std::fflush(stdout);
      _exit(0);
    }
    pids.push_back(pid);
  }
  pin_to(cpu_main());
  bool ok = true;
  try {
    body(0);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "parent: %s\n", e.what());
    if (ctl) std::snprintf(ctl->error, sizeof ctl->error, "parent: %s", e.what());
    ok = false;
    for (pid_t p : pids) kill(p, SIGKILL);
  }
  for (pid_t p : pids) {
    int st = 0;
    waitpid(p, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) ok = false;
  }
  return ok;
}

// ------------------------------------------------------------------ memory facts

inline long proc_field_kb(const char* file, const char* key) {
  std::ifstream f(file);
  std::string line;
  std::size_t n = std::strlen(key);
  while (std::getline(f, line)) {
    if (line.compare(0, n, key) == 0 && line.size() > n && line[n] == ':') return std::atol(line.c_str() + n + 1);
  }
  return -1;
}
inline long self_rss_kb() { return proc_field_kb("/proc/self/status", "VmRSS"); }
inline long self_pss_kb() { return proc_field_kb("/proc/self/smaps_rollup", "Pss"); }
inline long self_cpu_us() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec * 1'000'000L + ru.ru_utime.tv_usec + ru.ru_stime.tv_sec * 1'000'000L + ru.ru_stime.tv_usec;
}

// ------------------------------------------------------------------ payload touching

// Reads every byte (8 at a time): what a consumer that uses its data pays.
inline std::uint64_t sum_bytes(const void* p, std::size_t n) {
  const auto* w = static_cast<const std::uint64_t*>(p);
  std::uint64_t a = 0, b = 0, c = 0, d = 0;
  std::size_t words = n / 8, i = 0;
  for (; i + 4 <= words; i += 4) {
    a += w[i];
    b += w[i + 1];
    c += w[i + 2];
    d += w[i + 3];
  }
  for (; i < words; ++i) a += w[i];
  const auto* bytes = static_cast<const unsigned char*>(p);
  for (std::size_t j = words * 8; j < n; ++j) a += bytes[j];
  return a + b + c + d;
}

// Writes every byte: what a producer that fills its payload pays.
inline void fill_bytes(void* p, std::size_t n, std::uint64_t seq) {
  std::memset(p, static_cast<int>(seq & 0xff), n);
  if (n >= 8) std::memcpy(p, &seq, 8);
}

inline void put_seq(void* p, std::size_t n, std::uint64_t seq) {
  if (n >= 8) std::memcpy(p, &seq, 8);
}
inline std::uint64_t get_seq(const void* p, std::size_t n) {
  std::uint64_t s = 0;
  if (n >= 8) std::memcpy(&s, p, 8);
  return s;
}

// ------------------------------------------------------------------ statistics

struct Stats {
  std::size_t n = 0;
  double median = 0, p90 = 0, p99 = 0, p999 = 0, min = 0, max = 0, mean = 0;
};

inline Stats stats_of(std::vector<double> v) {
  Stats s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  auto q = [&](double f) {
    std::size_t i = static_cast<std::size_t>(f * static_cast<double>(v.size() - 1) + 0.5);
    return v[std::min(i, v.size() - 1)];
  };
  s.n = v.size();
  s.median = q(0.5);
  s.p90 = q(0.9);
  s.p99 = q(0.99);
  s.p999 = q(0.999);
  s.min = v.front();
  s.max = v.back();
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / static_cast<double>(v.size());
  return s;
}

// One JSON object, built field by field.
class Json {
 public:
  Json& str(const std::string& k, const std::string& v) {
    std::string e;
    for (char c : v) {
      if (c == '"' || c == '\\') e += '\\';
      if (static_cast<unsigned char>(c) < 0x20) continue;
      e += c;
    }
    return raw(k, "\"" + e + "\"");
  }
  Json& num(const std::string& k, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.10g", v);
    return raw(k, buf);
  }
  Json& stats(const std::string& prefix, const Stats& s) {
    num(prefix + "n", static_cast<double>(s.n));
    num(prefix + "median_us", s.median / 1000);
    num(prefix + "p90_us", s.p90 / 1000);
    num(prefix + "p99_us", s.p99 / 1000);
    num(prefix + "p999_us", s.p999 / 1000);
    num(prefix + "min_us", s.min / 1000);
    num(prefix + "max_us", s.max / 1000);
    return num(prefix + "mean_us", s.mean / 1000);
  }
  Json& raw(const std::string& k, const std::string& v) {
    body_ += (body_.empty() ? "" : ", ") + ("\"" + k + "\": ") + v;
    return *this;
  }
  void print() const {
    std::printf("{%s}\n", body_.c_str());
    std::fflush(stdout);
  }

 private:
  std::string body_;
};

// ------------------------------------------------------------------ arguments

struct Args {
  std::string mode;       // lat | tput | wake | stream | fanout | idle
  std::string transport;  // floor, shmbus, uds, ...
  std::string wait = "busy";  // busy | block | adaptive (transport's waiting style)
  std::size_t size = 64;
  std::size_t iters = 20000;
  std::size_t warmup = 1000;
  double seconds = 1.0;   // time budget (latency: cap; throughput: measuring window)
  int subs = 1;           // fan-out
  double rate = 100000;   // stream: messages per second
  double gap_us = 1200;   // wake: sender waits this long after the receiver went to sleep
  bool rss = false;       // report VmRSS/Pss of both processes after the run
  std::string policy;     // shmbus lat/tput: drop_oldest | block (default: lat drop_oldest, tput block)
};

inline Args parse_args(int argc, char** argv) {
  Args a;
  if (argc < 3) {
    std::fprintf(stderr,
                 "usage: %s MODE TRANSPORT [--wait busy|block|adaptive] [--size N] [--iters N] [--warmup N]\n"
                 "          [--seconds S] [--subs N] [--rate R] [--gap-us U] [--rss]\n"
                 "          [--policy drop_oldest|block]\n"
                 "  MODE: lat tput wake stream fanout\n",
                 argv[0]);
    std::exit(2);
  }
  a.mode = argv[1];
  a.transport = argv[2];
  for (int i = 3; i < argc; ++i) {
    std::string k = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", k.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (k == "--wait") a.wait = next();
    else if (k == "--size") a.size = std::stoull(next());
    else if (k == "--iters") a.iters = std::stoull(next());
    else if (k == "--warmup") a.warmup = std::stoull(next());
    else if (k == "--seconds") a.seconds = std::stod(next());
    else if (k == "--subs") a.subs = std::stoi(next());
    else if (k == "--rate") a.rate = std::stod(next());
    else if (k == "--gap-us") a.gap_us = std::stod(next());
    else if (k == "--rss") a.rss = true;
    else if (k == "--policy") a.policy = next();
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      std::exit(2);
    }
  }
  return a;
}

inline Json head(const Args& a) {
  Json j;
  j.str("mode", a.mode).str("transport", a.transport).str("wait", a.wait).num("size", static_cast<double>(a.size));
  return j;
}

// ------------------------------------------------------------------ endpoints

// A ping-pong end. send() carries a 64-bit sequence (in the payload's first 8 bytes for
// message transports); recv() returns the next one, waiting in the endpoint's own style.
// Zero-copy endpoints hold the message recv() read until their next send() has published,
// then release it, as a request/reply server replies while it holds the request: a
// message's release is no part of its delivery, so it stays off the measured path (it runs
// while the reply travels). Every zero-copy peer does the same (bench/NOTES.md).
struct PingPong {
  virtual ~PingPong() = default;
  virtual void connect() {}  // after both sides exist (e.g. wait for subscription matching)
  virtual void send(std::uint64_t seq) = 0;
  virtual std::uint64_t recv() = 0;
};
// role 0 = pinger (parent), 1 = ponger (child).
using PingPongFactory = std::function<std::unique_ptr<PingPong>(int role)>;

// Throughput: the producer writes every byte of each payload, the consumer reads every byte.
struct Producer {
  virtual ~Producer() = default;
  virtual void connect() {}
  virtual void send(std::uint64_t seq) = 0;  // blocks while the consumer is behind
};
struct Consumer {
  virtual ~Consumer() = default;
  virtual void connect() {}
  // Non-blocking: true and adds the payload's byte sum when a message was taken.
  virtual bool try_recv(std::uint64_t& sum) = 0;
};
using ProducerFactory = std::function<std::unique_ptr<Producer>()>;
using ConsumerFactory = std::function<std::unique_ptr<Consumer>()>;

// Fan-out / wake-up: one sender, `subs` receivers (roles 1..subs).
struct Sender {
  virtual ~Sender() = default;
  virtual void connect() {}
  virtual void send(std::uint64_t value) = 0;
};
struct Receiver {
  virtual ~Receiver() = default;
  virtual void connect() {}
  virtual std::uint64_t recv() = 0;  // waits in the endpoint's style
};
using SenderFactory = std::function<std::unique_ptr<Sender>()>;
using ReceiverFactory = std::function<std::unique_ptr<Receiver>(int role)>;

// ------------------------------------------------------------------ cases

// One-way latency = round trip / 2, measured by the pinger with the TSC.
inline int case_latency(const Args& a, const PingPongFactory& make) {
  Ctl* ctl = shared_new<Ctl>();
  const double tpn = tsc_per_ns();
  std::vector<double> samples;
  long rss[2] = {0, 0}, pss[2] = {0, 0};
  bool ok = run_forked(1, [&](int role) {
    auto ep = make(role);
    barrier(ctl->ready, 2);
    ep->connect();
    barrier(ctl->connected, 2);
    if (role == 1) {
      for (;;) {
        std::uint64_t s = ep->recv();
        ep->send(s);
        if (s == kStop) break;
      }
      if (a.rss) {
        ctl->child_rss_kb = self_rss_kb();
        ctl->child_pss_kb = self_pss_kb();
      }
      barrier(ctl->ready, 4);
      return;
    }
    const std::uint64_t budget = static_cast<std::uint64_t>(a.seconds * 1e9 * tpn);
    const std::uint64_t start = tsc();
    samples.reserve(a.iters);
    for (std::uint64_t i = 0; i < a.warmup + a.iters; ++i) {
      std::uint64_t t0 = tsc();
      ep->send(i);
      std::uint64_t r = ep->recv();
      std::uint64_t t1 = tsc();
      if (r != i) throw std::runtime_error("ping-pong sequence mismatch: sent " + std::to_string(i) + " got " + std::to_string(r));
      if (i >= a.warmup) samples.push_back(static_cast<double>(t1 - t0) / tpn / 2.0);
      // Stop early on the time budget (copying transports at 16 MiB), keeping >= 200 samples.
      if (t1 - start > budget && samples.size() >= 200) break;
    }
    ep->send(kStop);
    (void)ep->recv();
    if (a.rss) {
      rss[0] = self_rss_kb();
      pss[0] = self_pss_kb();
    }
    barrier(ctl->ready, 4);
  }, ctl);
  Json j = head(a);
  if (!ok) {
    j.str("error", ctl->error[0] ? ctl->error : "a process failed").print();
    return 1;
  }
  j.stats("", stats_of(samples));
  if (a.rss) {
    j.num("pinger_rss_kb", static_cast<double>(rss[0])).num("pinger_pss_kb", static_cast<double>(pss[0]));
    j.num("ponger_rss_kb", static_cast<double>(ctl->child_rss_kb.load()))
        .num("ponger_pss_kb", static_cast<double>(ctl->child_pss_kb.load()));
  }
  j.print();
  return 0;
}

// Throughput: producer (parent, CPU 0) as fast as the transport lets it; the consumer (child,
// CPU 1) busy-polls, reads every byte, and measures messages over `seconds` from its first.
inline int case_throughput(const Args& a, const ProducerFactory& mkp, const ConsumerFactory& mkc) {
  Ctl* ctl = shared_new<Ctl>();
  const double tpn = tsc_per_ns();
  bool ok = run_forked(1, [&](int role) {
    if (role == 0) {
      auto p = mkp();
      barrier(ctl->ready, 2);
      p->connect();
      barrier(ctl->connected, 2);
      std::uint64_t i = 0;
      while (!ctl->stop.load(std::memory_order_relaxed)) p->send(i++);
      ctl->done = 1;
      return;
    }
    auto c = mkc();
    barrier(ctl->ready, 2);
    c->connect();
    barrier(ctl->connected, 2);
    std::uint64_t sum = 0, n = 0;
    while (!c->try_recv(sum)) _mm_pause();
    const std::uint64_t t0 = tsc();
    const std::uint64_t window = static_cast<std::uint64_t>(a.seconds * 1e9 * tpn);
    std::uint64_t t1 = t0;
    for (;;) {
      if (c->try_recv(sum)) {
        ++n;
        if ((n & 31) == 0) {
          t1 = tsc();
          if (t1 - t0 >= window) break;
        }
      } else {
        _mm_pause();
        t1 = tsc();
        if (t1 - t0 >= window) break;
      }
    }
    ctl->count = n;
    ctl->elapsed_ns = static_cast<std::uint64_t>(static_cast<double>(t1 - t0) / tpn);
    ctl->checksum = sum;
    ctl->stop = 1;
    // Drain so a producer blocked in send() can see the stop flag.
    std::uint64_t quiet = 0;
    while (!ctl->done.load() || quiet < 2000) {
      if (c->try_recv(sum)) quiet = 0;
      else {
        ++quiet;
        _mm_pause();
      }
      if (quiet > 50'000'000) break;
    }
  }, ctl);
  Json j = head(a);
  if (!ok) {
    j.str("error", ctl->error[0] ? ctl->error : "a process failed").print();
    return 1;
  }
  double secs = static_cast<double>(ctl->elapsed_ns.load()) / 1e9;
  double msgs = static_cast<double>(ctl->count.load()) / secs;
  j.num("msgs_per_s", msgs).num("gb_per_s", msgs * static_cast<double>(a.size) / 1e9).num("seconds", secs);
  j.print();
  return 0;
}

// Syscalls entered by the calling thread, through the raw_syscalls:sys_enter tracepoint.
// Needs tracefs at /sys/kernel/tracing and perf_event_open permission; ok() is false otherwise.
class SyscallCounter {
 public:
  SyscallCounter() {
    std::ifstream f("/sys/kernel/tracing/events/raw_syscalls/sys_enter/id");
    long id = -1;
    if (!(f >> id)) return;
    perf_event_attr pa{};
    pa.type = PERF_TYPE_TRACEPOINT;
    pa.size = sizeof pa;
    pa.config = static_cast<std::uint64_t>(id);
    pa.sample_period = 0;
    pa.disabled = 0;
    fd_ = static_cast<int>(syscall(SYS_perf_event_open, &pa, 0, -1, -1, 0));
  }
  ~SyscallCounter() {
    if (fd_ >= 0) close(fd_);
  }
  bool ok() const { return fd_ >= 0; }
  long read_count() const {
    std::uint64_t v = 0;
    if (::read(fd_, &v, sizeof v) != sizeof v) return -1;
    return static_cast<long>(v);
  }

 private:
  int fd_ = -1;
};

// Wake-up and steady stream: the sender (parent, CPU 0) stamps CLOCK_MONOTONIC into each
// message; the receiver (child, CPU 1) measures arrival - stamp.
//  wake:   the sender waits until the receiver has been waiting >= gap_us before each message.
//  stream: the sender publishes at a steady `rate`, the receiver waits in its style.
// fanout: `subs` receivers, the sender records what send() costs it.
inline int case_oneway(const Args& a, const SenderFactory& mks, const ReceiverFactory& mkr) {
  const int subs = a.mode == "fanout" ? a.subs : 1;
  const std::size_t total = a.warmup + a.iters;
  Ctl* ctl = shared_new<Ctl>();
  double* lat = shared_new<double>(total);
  double* cost = shared_new<double>(total);
  std::atomic<std::uint64_t>* gone_to_wait = shared_new<std::atomic<std::uint64_t>>(total);
  const double tpn = tsc_per_ns();
  long sys_count = -1;
  bool ok = run_forked(subs, [&](int role) {
    if (role != 0) {
      auto r = mkr(role);
      barrier(ctl->ready, subs + 1);
      r->connect();
      barrier(ctl->connected, subs + 1);
      std::uint64_t cpu0 = 0;
      for (std::size_t i = 0; i < total; ++i) {
        gone_to_wait[i].store(mono_ns(), std::memory_order_release);
        if (i == total / 2 && role == 1) cpu0 = static_cast<std::uint64_t>(self_cpu_us());
        std::uint64_t stamp = r->recv();
        std::uint64_t now = mono_ns();
        if (role == 1) lat[i] = static_cast<double>(now - stamp);
        ctl->acks.fetch_add(1);
      }
      if (role == 1) ctl->child_cpu_us = self_cpu_us() - static_cast<long>(cpu0);
      return;
    }
    auto s = mks();
    barrier(ctl->ready, subs + 1);
    s->connect();
    barrier(ctl->connected, subs + 1);
    SyscallCounter sc;
    long sys0 = 0, base = 0;
    const bool count_sys = a.mode == "stream";
    if (count_sys && sc.ok()) {
      long c0 = sc.read_count();
      long c1 = sc.read_count();
      base = c1 - c0;
      sys0 = sc.read_count();
    }
    const std::uint64_t period = static_cast<std::uint64_t>(1e9 / a.rate);
    std::uint64_t next = mono_ns() + period;
    for (std::size_t i = 0; i < total; ++i) {
      if (a.mode == "stream") {
        spin_until_ns(next);
        next += period;
      } else {
        // Every receiver has taken the previous message and gone back to waiting; then let
        // it sleep at least gap_us.
        while (ctl->acks.load() < static_cast<std::uint64_t>(subs) * i) _mm_pause();
        if (a.mode == "wake" || a.mode == "fanout") {
          while (gone_to_wait[i].load(std::memory_order_acquire) == 0) _mm_pause();
          spin_until_ns(gone_to_wait[i].load() + static_cast<std::uint64_t>(a.gap_us * 1000));
        }
      }
      std::uint64_t stamp = mono_ns();
      std::uint64_t t0 = tsc();
      s->send(stamp);
      cost[i] = static_cast<double>(tsc() - t0) / tpn;
    }
    if (count_sys && sc.ok()) sys_count = sc.read_count() - sys0 - base;
    const std::uint64_t deadline = mono_ns() + 20'000'000'000ULL;
    while (ctl->acks.load() < static_cast<std::uint64_t>(subs) * total) {
      _mm_pause();
      if (mono_ns() > deadline) throw std::runtime_error("receivers did not take every message within 20 s (lost messages?)");
    }
  }, ctl);
  Json j = head(a);
  if (!ok) {
    j.str("error", ctl->error[0] ? ctl->error : "a process failed").print();
    return 1;
  }
  j.num("subs", subs);
  std::vector<double> l(lat + a.warmup, lat + total), c(cost + a.warmup, cost + total);
  j.stats("", stats_of(l));
  j.stats("send_", stats_of(c));
  if (a.mode == "stream") {
    j.num("rate", a.rate);
    j.num("sender_syscalls", static_cast<double>(sys_count));
    j.num("sender_syscalls_per_msg", sys_count < 0 ? -1.0 : static_cast<double>(sys_count) / static_cast<double>(total));
  }
  j.print();
  return 0;
}

// An idle receiver: CPU time it uses while waiting `seconds` for a message that never comes.
inline int case_idle(const Args& a, const ReceiverFactory& mkr, const std::function<bool(Receiver&, double)>& wait_for) {
  Ctl* ctl = shared_new<Ctl>();
  bool ok = run_forked(1, [&](int role) {
    if (role == 0) {
      barrier(ctl->ready, 2);
      barrier(ctl->connected, 2);
      return;
    }
    auto r = mkr(1);
    barrier(ctl->ready, 2);
    barrier(ctl->connected, 2);
    long c0 = self_cpu_us();
    std::uint64_t w0 = mono_ns();
    (void)wait_for(*r, a.seconds);
    ctl->child_cpu_us = self_cpu_us() - c0;
    ctl->elapsed_ns = mono_ns() - w0;
  }, ctl);
  Json j = head(a);
  if (!ok) {
    j.str("error", ctl->error[0] ? ctl->error : "a process failed").print();
    return 1;
  }
  double secs = static_cast<double>(ctl->elapsed_ns.load()) / 1e9;
  j.num("idle_seconds", secs).num("idle_cpu_us", static_cast<double>(ctl->child_cpu_us.load()));
  j.num("idle_cpu_percent", static_cast<double>(ctl->child_cpu_us.load()) / (secs * 1e6) * 100.0);
  j.print();
  return 0;
}

}  // namespace bench
