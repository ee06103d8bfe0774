// Durable topics (issue 17, "Performance"), each case beside its floor, measured in one run:
//   append   DurableAppender loan + store + publish, no flush, 64 B and 4 KiB messages, vs the
//            same loop on an in-memory shmbus topic (RawPublisher) and vs a raw mmap append
//            loop over a preallocated file (store the bytes, store the length, bump an index);
//            three times, as the log and the raw loop meet their fresh pages: cold (a page
//            fault each), ahead (populated ahead of the writer) and prefaulted (before the
//            timed loop; the only fair comparison with the topic, whose chunks are warm).
//            Thread CPU time per message, wall time beside it (see LoopTimer). Beside them the
//            floor rows (raw loop + stamp, + claim, + commit; see floor_append_ns) and the
//            exclusive appender (DurableConfig::exclusive_appender).
//   latency  one-way latency of a busy-polling live subscriber, durable log vs in-memory topic.
//   replay   DurableReader::oldest reading every byte of a log from the page cache, vs a raw
//            sequential scan of the same mapped segment files.
//   cold     the same replay after the log's pages were dropped, vs read() of the same bytes.
//   lookup   DurableReader::at_sequence / at_time on logs of growing length (full run: up to
//            10 million messages): the cost must not grow linearly with the log.
//   roll     every append timed alone across segment rolls: the largest are the rolls' stalls.
// Prints one JSON object per case on stdout (bench/run_bench.py collects them).
//
//   shmbus_durable_bench [--quick] [--dir DIR] [--replay-bytes N] [--lookup-max N]
//                        [--cases append,latency,replay,cold,lookup,roll] [--drop-caches]
//   shmbus_durable_bench --only ROW [--size N] [--pages cold|ahead|prefaulted] [--quick]
//                        (one append row once, e.g. under callgrind: bench/NOTES.md)
// DIR defaults to the temporary directory (a disk filesystem here; on tmpfs cold replay
// cannot drop anything).
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "durable/stamp_clock.hpp"
#include "shmbus/durable.hpp"
#include "shmbus/shmbus.hpp"

namespace {

namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

// How a case meets the fresh pages of its file. A log writes pages it never wrote before, so its
// fair floor pays for them too; the in-memory topic recycles a few hundred warm chunks, so the
// comparison with it is fair only when the log's pages are populated before the timed loop.
enum class Pages {
  cold,        // every new page faults on first write (the appender: prefault_window = 0)
  ahead,       // populated ahead of the writer, 256 KiB per madvise (the appender's default)
  prefaulted,  // all populated before the timed loop
};
struct Args {
  bool quick = false;
  fs::path dir = fs::temp_directory_path() / ("shmbus-durable-bench-" + std::to_string(getpid()));
  std::uint64_t replay_bytes = 1ull << 30;
  std::uint64_t lookup_max = 10'000'000;
  bool drop_caches = false;
  std::string only;  // one append row, once (--only ROW [--size N] [--pages P])
  std::size_t only_size = 64;
  Pages only_pages = Pages::prefaulted;
  std::string cases = "append,latency,replay,cold,lookup,roll";
  bool wants(const char* name) const { return ("," + cases + ",").find("," + std::string(name) + ",") != std::string::npos; }
};

double seconds_since(clock_type::time_point t) { return std::chrono::duration<double>(clock_type::now() - t).count(); }

// The append cases count this thread's CPU time (user + system: page faults and populate calls
// included) beside the wall time: on a shared, loaded machine the wall time is mostly time spent
// preempted (a 64 B loop measured 0.28 CPUs utilised at load 19), which says nothing about the
// code. The CPU time leaves out sleeps, e.g. a writer throttled by dirty-page writeback.
double thread_cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}
struct PerMessage {
  double cpu_ns = 0, wall_ns = 0;
};
struct LoopTimer {
  clock_type::time_point wall = clock_type::now();
  double cpu = thread_cpu_s();
  PerMessage per(std::uint64_t n) const {
    return {(thread_cpu_s() - cpu) * 1e9 / static_cast<double>(n), seconds_since(wall) * 1e9 / static_cast<double>(n)};
  }
};

void emit(const std::string& json) { std::printf("%s\n", json.c_str()); std::fflush(stdout); }

// Every message's bytes are written (as a publisher building its message would), then the
// message is committed. The same fill in each case.
inline void fill(std::byte* p, std::size_t size, std::uint64_t seq) {
  std::memset(p, static_cast<int>(seq), size);
  std::memcpy(p, &seq, sizeof seq);
}

const char* pages_name(Pages p) { return p == Pages::cold ? "cold" : p == Pages::ahead ? "ahead" : "prefaulted"; }

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
constexpr std::uint64_t kStep = 256 * 1024, kWindow = 2 << 20;  // as the appender's default

// Every case's log: `topic` in the bench directory, removed first (a previous run's leftovers).
shmbus::DurableConfig durable_config(const Args& a, const char* topic, std::uint64_t segment_size) {
  fs::remove_all(a.dir / topic);
  shmbus::DurableConfig c;
  c.directory = a.dir;
  c.topic = topic;
  c.segment_size = segment_size;
  return c;
}

// Every case's timed loop: one function, not inlined, so that callgrind can count it alone
// (`--toggle-collect='*timed_loop*'`, with --only: bench/NOTES.md).
template <typename Once>
[[gnu::noinline]] PerMessage timed_loop(std::uint64_t n, Once& once) {
  LoopTimer t;
  for (std::uint64_t i = 0; i < n; ++i) once(i);
  return t.per(n);
}

// `exclusive`: DurableConfig::exclusive_appender, the claim without the append lock's CAS.
PerMessage durable_append_ns(const Args& a, std::size_t size, std::uint64_t n, Pages pages, bool exclusive = false) {
  // One segment: no roll in the loop.
  shmbus::DurableConfig c = durable_config(a, "append", std::max<std::uint64_t>(n * (size + 64) + (4 << 20), 64 << 20));
  c.prefault_window = pages == Pages::cold ? 0 : kWindow;
  c.exclusive_appender = exclusive;
  shmbus::DurableAppender app(c);
  auto once = [&](std::uint64_t i) {
    auto loan = app.loan(size);
    if (!loan) [[unlikely]] throw std::runtime_error("durable loan: " + app.last_error());
    fill(loan->data().data(), size, i);
    if (!app.publish(*loan).ok()) [[unlikely]] throw std::runtime_error("durable publish");
  };
  for (std::uint64_t i = 0; i < n / 10; ++i) once(i);  // warm-up: the code and the first pages
  if (pages == Pages::prefaulted && !app.prefault(c.segment_size).ok()) throw std::runtime_error(app.last_error());
  PerMessage ns = timed_loop(n, once);
  fs::remove_all(a.dir / "append");
  return ns;
}

PerMessage topic_append_ns(std::size_t size, std::uint64_t n) {
  shmbus::TopicConfig c;
  c.name = "durable-bench-mem";
  c.size_classes = {{std::max<std::uint64_t>(size, 64), 256}};
  c.queue_depth = 64;
  shmbus::Topic topic = shmbus::Topic::create(c);
  shmbus::RawPublisher pub(topic);
  auto once = [&](std::uint64_t i) {
    auto loan = pub.loan(size);
    if (!loan) throw std::runtime_error(std::string("topic loan: ") + loan.name());
    fill(loan->data().data(), size, i);
    if (!pub.publish(std::move(loan.value())).ok()) throw std::runtime_error("topic publish");
  };
  for (std::uint64_t i = 0; i < n / 10; ++i) once(i);
  return timed_loop(n, once);
}

// A preallocated file mapped shared, which the raw loops append into; removed when done.
class ScratchFile {
 public:
  ScratchFile(const fs::path& path, std::uint64_t bytes, Pages pages, const char* what)
      : path_(path), bytes_(bytes), pages_(pages), what_(what) {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || posix_fallocate(fd, 0, static_cast<off_t>(bytes)) != 0) fail("cannot reserve " + path.string());
    void* m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    if (m == MAP_FAILED) fail("mmap");
    base_ = static_cast<std::byte*>(m);
  }
  ~ScratchFile() {
    munmap(base_, bytes_);
    fs::remove(path_);
  }
  ScratchFile(const ScratchFile&) = delete;
  ScratchFile& operator=(const ScratchFile&) = delete;

  std::byte* base() const { return base_; }
  // Pages::ahead: the next step populated once the writer (at `end`) is within kWindow of the
  // populated end, as the appender does.
  void written_to(std::uint64_t end) {
    if (pages_ != Pages::ahead || end + kWindow <= populated_) [[likely]] return;
    populated_ = std::max(populated_, end / 4096 * 4096);
    const std::uint64_t step = std::min(kStep, bytes_ - populated_);
    if (step != 0 && madvise(base_ + populated_, step, MADV_POPULATE_WRITE) != 0) fail("populate");
    populated_ += step;
  }
  // Pages::prefaulted: every page populated before the timed loop.
  void before_timing() {
    if (pages_ == Pages::prefaulted && madvise(base_, bytes_, MADV_POPULATE_WRITE) != 0) fail("populate");
  }

 private:
  [[noreturn]] void fail(const std::string& why) const { throw std::runtime_error(std::string(what_) + ": " + why); }
  fs::path path_;
  std::uint64_t bytes_;
  Pages pages_;
  const char* what_;
  std::byte* base_ = nullptr;
  std::uint64_t populated_ = 0;
};

// The floor: a preallocated, mapped file; per message store the bytes and a length word, bump
// the index (no header, no index, no commit protocol). Its pages met as `pages` says.
PerMessage raw_append_ns(const Args& a, std::size_t size, std::uint64_t n, Pages pages) {
  const std::size_t record = (size + 8 + 7) & ~std::size_t{7};
  ScratchFile file(a.dir / "raw-append.bin", (n + n / 10) * record + kWindow + 4096, pages, "raw append");
  std::byte* base = file.base();
  std::uint64_t offset = 0;
  auto once = [&](std::uint64_t i) {
    std::byte* p = base + offset;
    fill(p + 8, size, i);
    std::uint64_t len = size;
    std::memcpy(p, &len, sizeof len);
    offset += record;
    file.written_to(offset);
  };
  for (std::uint64_t i = 0; i < n / 10; ++i) once(i);
  file.before_timing();
  return timed_loop(n, once);
}

// The floor of a log with a time index, built up from the raw loop one step at a time, so that a
// row shows what each costs: a stamp in each record (CLOCK_REALTIME through the vDSO, or the TSC
// read through the appender's own StampClock), a claim by a locked fetch_add on a shared tail word
// (what lets several writers append), a release store of the record's length word after its
// bytes (the commit that lets a reader trust them). Records: length word, time, payload.
struct FloorSteps {
  bool tsc = false;     // the stamp from StampClock (durable/stamp_clock.hpp), else clock_gettime
  bool claim = false;   // a locked fetch_add claims the record
  bool commit = false;  // a release store of the length word commits it
};
constexpr FloorSteps kRawStamp{}, kRawStampClaim{false, true, false}, kRawStampClaimCommit{false, true, true};
constexpr FloorSteps kRawTsc{true, false, false}, kRawTscCommit{true, false, true}, kRawTscClaimCommit{true, true, true};

template <FloorSteps kSteps>
PerMessage floor_append_ns(const Args& a, std::size_t size, std::uint64_t n, Pages pages) {
  constexpr std::uint64_t kData = 4096;  // the tail word's page, then the records
  const std::size_t record = (size + 16 + 7) & ~std::size_t{7};
  ScratchFile file(a.dir / "floor-append.bin", kData + (n + n / 10) * record + kWindow + 4096, pages, "floor append");
  std::byte* base = file.base();
  auto* tail = reinterpret_cast<std::atomic<std::uint64_t>*>(base);
  std::uint64_t offset = 0;
  shmbus::detail::StampClock clock;
  auto once = [&](std::uint64_t i) {
    std::uint64_t at;
    if constexpr (kSteps.claim) {
      at = tail->fetch_add(record, std::memory_order_relaxed);  // relaxed: only the claim's atomicity is measured
    } else {
      at = offset;
      offset += record;
    }
    std::byte* p = base + kData + at;
    std::uint64_t now;
    if constexpr (kSteps.tsc) {
      now = clock.now();
    } else {
      timespec ts{};
      clock_gettime(CLOCK_REALTIME, &ts);
      now = static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(ts.tv_nsec);
    }
    std::memcpy(p + 8, &now, sizeof now);
    fill(p + 16, size, i);
    const std::uint64_t len = size;
    if constexpr (kSteps.commit) {
      // Release: a reader's acquire load of the length sees the bytes before it.
      std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(p)).store(len, std::memory_order_release);
    } else {
      std::memcpy(p, &len, sizeof len);
    }
    file.written_to(kData + at + record);
  };
  for (std::uint64_t i = 0; i < n / 10; ++i) once(i);
  file.before_timing();
  return timed_loop(n, once);
}

// Each case run twice, the second round in reverse order (1 2 3 .. 3 2 1), the lower CPU time
// of its two kept: fresh memory costs more than memory freed by the case before (on this VM a
// first touch of guest memory can cost the host's fault too: 5-9 us per 4 KiB page against
// 1.3 us, measured), so a case that always ran first would lose by its order alone.
std::vector<PerMessage> best_of_two_interleaved(const std::vector<std::function<PerMessage()>>& cases) {
  std::vector<PerMessage> best;
  for (const auto& c : cases) best.push_back(c());
  for (std::size_t i = cases.size(); i-- > 0;) {
    PerMessage again = cases[i]();
    if (again.cpu_ns < best[i].cpu_ns) best[i] = again;
  }
  return best;
}

// The append cases of one size and page mode, by name: the row names of the JSON output and
// of --only.
std::vector<std::pair<const char*, std::function<PerMessage()>>> append_cases(const Args& a, std::size_t size,
                                                                             std::uint64_t n, Pages pages) {
  return {
      {"durable", [&a, size, n, pages] { return durable_append_ns(a, size, n, pages); }},
      {"raw", [&a, size, n, pages] { return raw_append_ns(a, size, n, pages); }},
      {"raw+stamp", [&a, size, n, pages] { return floor_append_ns<kRawStamp>(a, size, n, pages); }},
      {"raw+stamp+claim", [&a, size, n, pages] { return floor_append_ns<kRawStampClaim>(a, size, n, pages); }},
      {"raw+stamp+claim+commit", [&a, size, n, pages] { return floor_append_ns<kRawStampClaimCommit>(a, size, n, pages); }},
      {"raw+tsc", [&a, size, n, pages] { return floor_append_ns<kRawTsc>(a, size, n, pages); }},
      {"raw+tsc+commit", [&a, size, n, pages] { return floor_append_ns<kRawTscCommit>(a, size, n, pages); }},
      {"raw+tsc+claim+commit", [&a, size, n, pages] { return floor_append_ns<kRawTscClaimCommit>(a, size, n, pages); }},
      {"durable_exclusive", [&a, size, n, pages] { return durable_append_ns(a, size, n, pages, true); }},
  };
}

std::uint64_t append_messages(const Args& a, std::size_t size) {
  return size <= 64 ? (a.quick ? 200'000 : 2'000'000) : (a.quick ? 20'000 : 100'000);
}

void bench_append(const Args& a) {
  for (std::size_t size : {std::size_t{64}, std::size_t{4096}}) {
    const std::uint64_t n = append_messages(a, size);
    const PerMessage mem = topic_append_ns(size, n);
    for (Pages pages : {Pages::cold, Pages::ahead, Pages::prefaulted}) {
      auto cases = append_cases(a, size, n, pages);
      std::vector<std::function<PerMessage()>> runs;
      for (auto& c : cases) runs.push_back(c.second);
      std::vector<PerMessage> r = best_of_two_interleaved(runs);
      const PerMessage &durable = r[0], &raw = r[1];  // r[2..7] the floors, r[8] the exclusive appender
      std::string floors;
      for (std::size_t i = 2; i + 1 < cases.size(); ++i) {
        char one[96];
        std::snprintf(one, sizeof one, "%s\"%s\":%.1f", i == 2 ? "" : ",", cases[i].first, r[i].cpu_ns);
        floors += one;
      }
      char buf[1024];
      std::snprintf(buf, sizeof buf,
                    R"({"case":"append","size":%zu,"pages":"%s","messages":%llu,"durable_cpu_ns":%.1f,"topic_cpu_ns":%.1f,"raw_mmap_cpu_ns":%.1f,)"
                    R"("durable_vs_topic":%.3f,"durable_vs_raw_mmap":%.3f,"wall_ns":[%.1f,%.1f,%.1f],)"
                    R"("floor_cpu_ns":{%s},"durable_vs_floor":%.3f,"durable_vs_tsc_floor":%.3f,)"
                    R"("durable_exclusive_cpu_ns":%.1f,"exclusive_vs_raw_mmap":%.3f,"exclusive_vs_topic":%.3f,"exclusive_vs_single_writer_floor":%.3f})",
                    size, pages_name(pages), static_cast<unsigned long long>(n), durable.cpu_ns, mem.cpu_ns, raw.cpu_ns,
                    mem.cpu_ns / durable.cpu_ns, raw.cpu_ns / durable.cpu_ns, durable.wall_ns, mem.wall_ns, raw.wall_ns,
                    floors.c_str(), r[4].cpu_ns / durable.cpu_ns, r[7].cpu_ns / durable.cpu_ns, r[8].cpu_ns,
                    raw.cpu_ns / r[8].cpu_ns, mem.cpu_ns / r[8].cpu_ns, r[6].cpu_ns / r[8].cpu_ns);
      emit(buf);
    }
  }
}

// --only ROW: that one append case, once (for callgrind: bench/NOTES.md).
void bench_append_only(const Args& a) {
  const std::uint64_t n = append_messages(a, a.only_size);
  if (a.only == "topic") {
    PerMessage t = topic_append_ns(a.only_size, n);
    std::printf(R"({"case":"append_only","row":"topic","size":%zu,"messages":%llu,"cpu_ns":%.1f})" "\n", a.only_size,
                static_cast<unsigned long long>(n), t.cpu_ns);
    return;
  }
  for (auto& [name, run] : append_cases(a, a.only_size, n, a.only_pages)) {
    if (a.only != name) continue;
    PerMessage t = run();
    std::printf(R"({"case":"append_only","row":"%s","size":%zu,"pages":"%s","messages":%llu,"cpu_ns":%.1f})" "\n", name,
                a.only_size, pages_name(a.only_pages), static_cast<unsigned long long>(n), t.cpu_ns);
    return;
  }
  throw std::runtime_error("--only " + a.only + ": no such append row (durable, raw, raw+stamp, ..., topic)");
}

// End-to-end latency of a live subscriber: a publisher thread stamps CLOCK_MONOTONIC into a
// 64 B message and publishes it; a subscriber thread busy-polls, and on receipt records now -
// stamp and acknowledges. The publisher sends the next message only after the acknowledgement,
// so no queue builds up. The same method on a durable log and on an in-memory topic.
struct Latency {
  double median_ns = 0, p99_ns = 0;
};

std::uint64_t mono_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

template <typename Publish, typename Receive>
Latency one_way(std::uint64_t n, Publish publish, Receive receive) {
  std::vector<std::uint64_t> samples(n);
  std::atomic<std::uint64_t> acked{0};
  std::thread subscriber([&] {
    for (std::uint64_t i = 0; i < n; ++i) {
      std::uint64_t stamp = receive();
      samples[i] = mono_ns() - stamp;
      acked.store(i + 1, std::memory_order_release);  // pairs with the publisher's acquire wait
    }
  });
  for (std::uint64_t i = 0; i < n; ++i) {
    publish(mono_ns());
    while (acked.load(std::memory_order_acquire) <= i) {  // pairs with the subscriber's release
    }
  }
  subscriber.join();
  std::sort(samples.begin(), samples.end());
  return {static_cast<double>(samples[n / 2]), static_cast<double>(samples[n * 99 / 100])};
}

void bench_latency(const Args& a) {
  const std::uint64_t n = a.quick ? 2'000 : 50'000;
  const std::size_t size = 64;
  shmbus::DurableAppender app(durable_config(a, "latency", 64ull << 20));
  shmbus::DurableReader reader = shmbus::DurableReader::oldest(a.dir, "latency");
  Latency durable = one_way(
      n,
      [&](std::uint64_t stamp) {
        auto loan = app.loan(size);
        if (!loan) throw std::runtime_error("latency loan: " + app.last_error());
        std::memset(loan->data().data(), 0, size);
        std::memcpy(loan->data().data(), &stamp, sizeof stamp);
        (void)app.publish(*loan);
      },
      [&] {
        for (;;) {
          if (auto s = reader.next()) {
            std::uint64_t stamp;
            std::memcpy(&stamp, s->data.data(), sizeof stamp);
            return stamp;
          }
        }
      });
  fs::remove_all(a.dir / "latency");

  shmbus::TopicConfig tc;
  tc.name = "durable-bench-lat";
  tc.size_classes = {{size, 256}};
  tc.queue_depth = 64;
  shmbus::Topic topic = shmbus::Topic::create(tc);
  shmbus::RawPublisher pub(topic);
  shmbus::SubscriberOptions so;
  so.wait_mode = shmbus::WaitMode::busy_poll;
  so.with_history = false;
  shmbus::RawSubscriber sub(topic, so);
  Latency mem = one_way(
      n,
      [&](std::uint64_t stamp) {
        auto loan = pub.loan(size);
        if (!loan) throw std::runtime_error(std::string("latency topic loan: ") + loan.name());
        std::memset(loan->data().data(), 0, size);
        std::memcpy(loan->data().data(), &stamp, sizeof stamp);
        (void)pub.publish(std::move(loan.value()));
      },
      [&] {
        for (;;) {
          if (auto s = sub.take()) {
            std::uint64_t stamp;
            std::memcpy(&stamp, s->data().data(), sizeof stamp);
            return stamp;
          }
        }
      });
  char buf[384];
  std::snprintf(buf, sizeof buf,
                R"({"case":"latency","size":%zu,"messages":%llu,"durable_median_ns":%.0f,"durable_p99_ns":%.0f,)"
                R"("topic_median_ns":%.0f,"topic_p99_ns":%.0f,"durable_over_topic_median":%.3f})",
                size, static_cast<unsigned long long>(n), durable.median_ns, durable.p99_ns, mem.median_ns, mem.p99_ns,
                durable.median_ns / mem.median_ns);
  emit(buf);
}

std::uint64_t sum_words(const std::byte* p, std::size_t bytes) {
  std::uint64_t s = 0, w;
  for (std::size_t i = 0; i + 8 <= bytes; i += 8) {
    std::memcpy(&w, p + i, 8);
    s += w;
  }
  return s;
}

// Drops the log's pages from the page cache: written back first (a dirty page cannot be
// dropped), then posix_fadvise(DONTNEED) per segment, and with --drop-caches also
// `echo 1 > /proc/sys/vm/drop_caches` (the whole machine's clean page cache: off by default on a
// shared machine). Returns the fraction of the segments' used pages still resident (mincore).
double drop_log_pages(const Args& a, const std::vector<shmbus::DurableSegmentInfo>& segments) {
  std::uint64_t pages = 0, resident = 0;
  for (const shmbus::DurableSegmentInfo& seg : segments) {
    int fd = ::open(seg.path.c_str(), O_RDONLY);
    if (fd < 0) throw std::runtime_error("cold replay: open " + seg.path.string());
    ::fdatasync(fd);
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
  if (a.drop_caches) {
    int fd = ::open("/proc/sys/vm/drop_caches", O_WRONLY);
    if (fd < 0 || ::write(fd, "1", 1) != 1) std::fprintf(stderr, "shmbus_durable_bench: drop_caches not writable here\n");
    if (fd >= 0) ::close(fd);
  }
  for (const shmbus::DurableSegmentInfo& seg : segments) {
    int fd = ::open(seg.path.c_str(), O_RDONLY);
    void* m = mmap(nullptr, seg.used_bytes, PROT_READ, MAP_SHARED, fd, 0);
    ::close(fd);
    if (m == MAP_FAILED) throw std::runtime_error("cold replay: mmap " + seg.path.string());
    std::vector<unsigned char> vec((seg.used_bytes + 4095) / 4096);
    if (mincore(m, seg.used_bytes, vec.data()) == 0) {
      pages += vec.size();
      for (unsigned char v : vec) resident += v & 1;
    }
    munmap(m, seg.used_bytes);
  }
  return pages == 0 ? 1.0 : static_cast<double>(resident) / static_cast<double>(pages);
}

// Cold replay: the same log read by DurableReader after its pages were dropped, beside
// `cat`-speed: read() of the same bytes of the same files (the used part of each segment, in
// 1 MiB reads), after dropping them again. One round each: a second would be warm.
void bench_cold_replay(const Args& a, std::uint64_t n, std::size_t size) {
  const std::vector<shmbus::DurableSegmentInfo> segments = shmbus::list_durable_segments(a.dir, "replay");
  double resident_before_durable = drop_log_pages(a, segments);
  auto t = clock_type::now();
  shmbus::DurableReader r = shmbus::DurableReader::oldest(a.dir, "replay");
  std::uint64_t got = 0, sum = 0;
  while (auto s = r.next()) {
    sum += sum_words(s->data.data(), s->data.size());
    ++got;
  }
  double durable_s = seconds_since(t);
  if (got != n) throw std::runtime_error("cold replay read " + std::to_string(got) + " of " + std::to_string(n));
  double resident_before_read = drop_log_pages(a, segments);
  std::vector<std::byte> buffer(1 << 20);
  std::uint64_t bytes_read = 0;
  t = clock_type::now();
  for (const shmbus::DurableSegmentInfo& seg : segments) {
    int fd = ::open(seg.path.c_str(), O_RDONLY);
    for (std::uint64_t off = 0; off < seg.used_bytes;) {
      ssize_t got_now = ::read(fd, buffer.data(), std::min<std::uint64_t>(buffer.size(), seg.used_bytes - off));
      if (got_now <= 0) break;
      sum += sum_words(buffer.data(), 64);  // touch it, as cat hands it on
      off += static_cast<std::uint64_t>(got_now);
      bytes_read += static_cast<std::uint64_t>(got_now);
    }
    ::close(fd);
  }
  double read_s = seconds_since(t);
  char buf[512];
  std::snprintf(buf, sizeof buf,
                R"({"case":"cold_replay","bytes":%llu,"durable_gb_s":%.2f,"read_gb_s":%.2f,"durable_vs_read":%.3f,)"
                R"("resident_after_drop":[%.3f,%.3f],"dropped_by":"%s","sum":"%llx"})",
                static_cast<unsigned long long>(n * size), static_cast<double>(n * size) / durable_s / 1e9,
                static_cast<double>(bytes_read) / read_s / 1e9, read_s / durable_s, resident_before_durable,
                resident_before_read, a.drop_caches ? "fdatasync+fadvise(DONTNEED)+drop_caches" : "fdatasync+fadvise(DONTNEED)",
                static_cast<unsigned long long>(sum));
  emit(buf);
}

void bench_replay(const Args& a) {
  const std::size_t size = 4096;
  const std::uint64_t n = std::max<std::uint64_t>(a.replay_bytes / size, 1);
  {
    shmbus::DurableAppender app(durable_config(a, "replay", 256ull << 20));
    for (std::uint64_t i = 0; i < n; ++i) {
      auto loan = app.loan(size);
      if (!loan) throw std::runtime_error("replay fill: " + app.last_error());
      fill(loan->data().data(), size, i);
      (void)app.publish(*loan);
    }
  }
  std::uint64_t check_durable = 0, check_raw = 0;
  double durable_s = 1e30, raw_s = 1e30;
  for (int round = 0; round < 3; ++round) {  // best of 3: the page cache is warm after the first
    auto t = clock_type::now();
    shmbus::DurableReader r = shmbus::DurableReader::oldest(a.dir, "replay");
    std::uint64_t got = 0, sum = 0;
    while (auto s = r.next()) {
      sum += sum_words(s->data.data(), s->data.size());
      ++got;
    }
    durable_s = std::min(durable_s, seconds_since(t));
    if (got != n) throw std::runtime_error("replay read " + std::to_string(got) + " of " + std::to_string(n));
    check_durable = sum;

    t = clock_type::now();
    sum = 0;
    for (const shmbus::DurableSegmentInfo& seg : shmbus::list_durable_segments(a.dir, "replay")) {
      int fd = ::open(seg.path.c_str(), O_RDONLY);
      void* m = mmap(nullptr, seg.used_bytes, PROT_READ, MAP_SHARED, fd, 0);
      ::close(fd);
      if (m == MAP_FAILED) throw std::runtime_error("raw scan: mmap " + seg.path.string());
      sum += sum_words(static_cast<const std::byte*>(m), seg.used_bytes);
      munmap(m, seg.used_bytes);
    }
    raw_s = std::min(raw_s, seconds_since(t));
    check_raw = sum;
  }
  char buf[512];
  std::snprintf(buf, sizeof buf,
                R"({"case":"replay","bytes":%llu,"messages":%llu,"durable_gb_s":%.2f,"raw_scan_gb_s":%.2f,"durable_vs_raw_scan":%.3f,"sums":"%llx/%llx"})",
                static_cast<unsigned long long>(n * size), static_cast<unsigned long long>(n), static_cast<double>(n * size) / durable_s / 1e9,
                static_cast<double>(n * size) / raw_s / 1e9, raw_s / durable_s, static_cast<unsigned long long>(check_durable),
                static_cast<unsigned long long>(check_raw));
  emit(buf);
  if (a.wants("cold")) bench_cold_replay(a, n, size);
  fs::remove_all(a.dir / "replay");
}

// The stall at a segment roll: every append (loan, fill, publish) timed alone, 4 KiB messages
// into 64 MiB segments (the default size) across several rolls; the largest times are the
// rolls'. Both the wall time (what a caller waits for, preemptions included: on a loaded
// machine they dominate the largest) and this thread's CPU time (what the append itself cost,
// a system call's included) of each; the largest few of each are printed, with percentiles.
void bench_roll(const Args& a) {
  const std::size_t size = 4096;
  const std::uint64_t segment = 64ull << 20;
  const int rolls = a.quick ? 2 : 6;
  const std::uint64_t n = (segment / (size + 64) + 1) * static_cast<std::uint64_t>(rolls) + 1000;
  std::vector<std::uint64_t> wall(n), cpu(n);
  auto cpu_ns = [] {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(ts.tv_nsec);
  };
  {
    shmbus::DurableAppender app(durable_config(a, "roll", segment));
    for (std::uint64_t i = 0; i < n; ++i) {
      const std::uint64_t w0 = mono_ns(), c0 = cpu_ns();
      auto loan = app.loan(size);
      if (!loan) throw std::runtime_error("roll: " + app.last_error());
      fill(loan->data().data(), size, i);
      if (!app.publish(*loan).ok()) throw std::runtime_error("roll publish");
      cpu[i] = cpu_ns() - c0;
      wall[i] = mono_ns() - w0;
    }
  }
  const std::size_t segments = shmbus::list_durable_segments(a.dir, "roll").size();
  fs::remove_all(a.dir / "roll");
  auto summary = [n](std::vector<std::uint64_t>& v) {
    std::sort(v.begin(), v.end());
    char out[256];
    std::snprintf(out, sizeof out, R"({"p50":%llu,"p99":%llu,"p999":%llu,"largest":[%llu,%llu,%llu,%llu,%llu,%llu]})",
                  static_cast<unsigned long long>(v[n / 2]), static_cast<unsigned long long>(v[n * 99 / 100]),
                  static_cast<unsigned long long>(v[n * 999 / 1000]), static_cast<unsigned long long>(v[n - 1]),
                  static_cast<unsigned long long>(v[n - 2]), static_cast<unsigned long long>(v[n - 3]),
                  static_cast<unsigned long long>(v[n - 4]), static_cast<unsigned long long>(v[n - 5]),
                  static_cast<unsigned long long>(v[n - 6]));
    return std::string(out);
  };
  char buf[768];
  std::snprintf(buf, sizeof buf,
                R"({"case":"roll","size":%zu,"segment_bytes":%llu,"appends":%llu,"segments":%zu,"cpu_ns":%s,"wall_ns":%s,"dir":"%s"})",
                size, static_cast<unsigned long long>(segment), static_cast<unsigned long long>(n), segments,
                summary(cpu).c_str(), summary(wall).c_str(), a.dir.string().c_str());
  emit(buf);
}

// Lookups at random sequences and times of a log, measured at several lengths of one log.
void bench_lookup(const Args& a) {
  shmbus::DurableAppender app(durable_config(a, "lookup", 256ull << 20));
  std::vector<std::uint64_t> checkpoints;
  for (std::uint64_t n = 10'000; n <= a.lookup_max; n *= 10) checkpoints.push_back(n);
  std::mt19937_64 rng(17);
  std::uint64_t written = 0, first_ns = 0;
  std::byte payload[16] = {};
  for (std::uint64_t target : checkpoints) {
    for (; written < target; ++written) {
      std::memcpy(payload, &written, 8);
      if (!app.append(payload).ok()) throw std::runtime_error("lookup fill: " + app.last_error());
    }
    if (first_ns == 0) first_ns = shmbus::list_durable_segments(a.dir, "lookup").front().first_time_ns;
    const std::uint64_t last_ns = shmbus::list_durable_segments(a.dir, "lookup").back().last_time_ns;
    const int lookups = 2000;
    auto t = clock_type::now();
    for (int i = 0; i < lookups; ++i) {
      auto r = shmbus::DurableReader::at_sequence(a.dir, "lookup", rng() % target);
      if (!r.next()) throw std::runtime_error("lookup by sequence found nothing");
    }
    double seq_us = seconds_since(t) * 1e6 / lookups;
    t = clock_type::now();
    for (int i = 0; i < lookups; ++i) {
      auto r = shmbus::DurableReader::at_time(a.dir, "lookup", first_ns + rng() % (last_ns - first_ns + 1));
      if (!r.next()) throw std::runtime_error("lookup by time found nothing");
    }
    double time_us = seconds_since(t) * 1e6 / lookups;
    char buf[256];
    std::snprintf(buf, sizeof buf, R"({"case":"lookup","messages":%llu,"segments":%zu,"by_sequence_us":%.2f,"by_time_us":%.2f})",
                  static_cast<unsigned long long>(target), shmbus::list_durable_segments(a.dir, "lookup").size(), seq_us, time_us);
    emit(buf);
  }
  fs::remove_all(a.dir / "lookup");
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(s + " needs a value");
      return argv[++i];
    };
    if (s == "--quick") a.quick = true;
    else if (s == "--dir") a.dir = value();
    else if (s == "--replay-bytes") a.replay_bytes = std::stoull(value());
    else if (s == "--lookup-max") a.lookup_max = std::stoull(value());
    else if (s == "--cases") a.cases = value();
    else if (s == "--drop-caches") a.drop_caches = true;
    else if (s == "--only") a.only = value();
    else if (s == "--size") a.only_size = std::stoull(value());
    else if (s == "--pages") {
      std::string p = value();
      if (p == "cold") a.only_pages = Pages::cold;
      else if (p == "ahead") a.only_pages = Pages::ahead;
      else if (p == "prefaulted") a.only_pages = Pages::prefaulted;
      else throw std::runtime_error("--pages " + p + ": use cold, ahead or prefaulted");
    }
    else throw std::runtime_error("unknown option " + s + " (--quick, --dir DIR, --replay-bytes N, --lookup-max N, --cases LIST, --drop-caches, --only ROW, --size N, --pages P)");
  }
  if (a.quick) {
    a.replay_bytes = std::min<std::uint64_t>(a.replay_bytes, 32ull << 20);
    a.lookup_max = std::min<std::uint64_t>(a.lookup_max, 100'000);
  }
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Args a = parse(argc, argv);
    fs::create_directories(a.dir);
    if (!a.only.empty()) {
      bench_append_only(a);
      fs::remove_all(a.dir);
      return 0;
    }
    if (a.wants("append")) bench_append(a);
    if (a.wants("latency")) bench_latency(a);
    if (a.wants("replay")) bench_replay(a);
    if (a.wants("lookup")) bench_lookup(a);
    if (a.wants("roll")) bench_roll(a);
    fs::remove_all(a.dir);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shmbus_durable_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
