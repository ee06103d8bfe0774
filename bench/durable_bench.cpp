// Durable topics (issue 17, "Performance"), each case beside its floor, measured in one run:
//   append   DurableAppender loan + store + publish, no flush, 64 B and 4 KiB messages, vs the
//            same loop on an in-memory shmbus topic (RawPublisher) and vs a raw mmap append
//            loop over a preallocated file (store the bytes, store the length, bump an index).
//   replay   DurableReader::oldest reading every byte of a log from the page cache, vs a raw
//            sequential scan of the same mapped segment files.
//   lookup   DurableReader::at_sequence / at_time on logs of growing length (full run: up to
//            10 million messages): the cost must not grow linearly with the log.
// Prints one JSON object per case on stdout (bench/run_bench.py collects them).
//
//   shmbus_durable_bench [--quick] [--dir DIR] [--replay-bytes N] [--lookup-max N]
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "shmbus/durable.hpp"
#include "shmbus/shmbus.hpp"

namespace {

namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

struct Args {
  bool quick = false;
  fs::path dir = fs::temp_directory_path() / ("shmbus-durable-bench-" + std::to_string(getpid()));
  std::uint64_t replay_bytes = 1ull << 30;
  std::uint64_t lookup_max = 10'000'000;
};

double seconds_since(clock_type::time_point t) { return std::chrono::duration<double>(clock_type::now() - t).count(); }

void emit(const std::string& json) { std::printf("%s\n", json.c_str()); std::fflush(stdout); }

// Every message's bytes are written (as a publisher building its message would), then the
// message is committed. The same fill in each case.
inline void fill(std::byte* p, std::size_t size, std::uint64_t seq) {
  std::memset(p, static_cast<int>(seq), size);
  std::memcpy(p, &seq, sizeof seq);
}

double durable_append_ns(const Args& a, std::size_t size, std::uint64_t n) {
  fs::remove_all(a.dir / "append");
  shmbus::DurableConfig c;
  c.directory = a.dir;
  c.topic = "append";
  c.segment_size = std::max<std::uint64_t>(n * (size + 64) + (4 << 20), 64 << 20);  // one segment: no roll in the loop
  shmbus::DurableAppender app(c);
  for (std::uint64_t i = 0; i < n / 10; ++i) {  // warm-up: fault the first pages in
    auto loan = app.loan(size);
    fill(loan->data().data(), size, i);
    (void)app.publish(*loan);
  }
  auto t = clock_type::now();
  for (std::uint64_t i = 0; i < n; ++i) {
    auto loan = app.loan(size);
    if (!loan) throw std::runtime_error("durable loan: " + app.last_error());
    fill(loan->data().data(), size, i);
    if (!app.publish(*loan).ok()) throw std::runtime_error("durable publish");
  }
  double ns = seconds_since(t) * 1e9 / static_cast<double>(n);
  fs::remove_all(a.dir / "append");
  return ns;
}

double topic_append_ns(std::size_t size, std::uint64_t n) {
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
  auto t = clock_type::now();
  for (std::uint64_t i = 0; i < n; ++i) once(i);
  return seconds_since(t) * 1e9 / static_cast<double>(n);
}

// The floor: a preallocated, mapped file; per message store the bytes and a length word, bump
// the index (no header, no index, no commit protocol).
double raw_append_ns(const Args& a, std::size_t size, std::uint64_t n) {
  const std::size_t record = (size + 8 + 7) & ~std::size_t{7};
  const std::uint64_t bytes = (n + n / 10) * record + 4096;
  fs::path path = a.dir / "raw-append.bin";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (fd < 0 || posix_fallocate(fd, 0, static_cast<off_t>(bytes)) != 0) throw std::runtime_error("raw append: cannot reserve " + path.string());
  auto* base = static_cast<std::byte*>(mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
  ::close(fd);
  if (base == MAP_FAILED) throw std::runtime_error("raw append: mmap");
  std::uint64_t offset = 0;
  auto once = [&](std::uint64_t i) {
    std::byte* p = base + offset;
    fill(p + 8, size, i);
    std::uint64_t len = size;
    std::memcpy(p, &len, sizeof len);
    offset += record;
  };
  for (std::uint64_t i = 0; i < n / 10; ++i) once(i);
  auto t = clock_type::now();
  for (std::uint64_t i = 0; i < n; ++i) once(i);
  double ns = seconds_since(t) * 1e9 / static_cast<double>(n);
  munmap(base, bytes);
  fs::remove(path);
  return ns;
}

void bench_append(const Args& a) {
  for (std::size_t size : {std::size_t{64}, std::size_t{4096}}) {
    const std::uint64_t n = size == 64 ? (a.quick ? 200'000 : 2'000'000) : (a.quick ? 20'000 : 200'000);
    double durable = durable_append_ns(a, size, n), mem = topic_append_ns(size, n), raw = raw_append_ns(a, size, n);
    char buf[512];
    std::snprintf(buf, sizeof buf,
                  R"({"case":"append","size":%zu,"messages":%llu,"durable_ns":%.1f,"topic_ns":%.1f,"raw_mmap_ns":%.1f,)"
                  R"("durable_vs_topic":%.3f,"durable_vs_raw_mmap":%.3f})",
                  size, static_cast<unsigned long long>(n), durable, mem, raw, mem / durable, raw / durable);
    emit(buf);
  }
}

std::uint64_t sum_words(const std::byte* p, std::size_t bytes) {
  std::uint64_t s = 0, w;
  for (std::size_t i = 0; i + 8 <= bytes; i += 8) {
    std::memcpy(&w, p + i, 8);
    s += w;
  }
  return s;
}

void bench_replay(const Args& a) {
  const std::size_t size = 4096;
  const std::uint64_t n = std::max<std::uint64_t>(a.replay_bytes / size, 1);
  fs::remove_all(a.dir / "replay");
  {
    shmbus::DurableConfig c;
    c.directory = a.dir;
    c.topic = "replay";
    c.segment_size = 256ull << 20;
    shmbus::DurableAppender app(c);
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
  fs::remove_all(a.dir / "replay");
}

// Lookups at random sequences and times of a log, measured at several lengths of one log.
void bench_lookup(const Args& a) {
  fs::remove_all(a.dir / "lookup");
  shmbus::DurableConfig c;
  c.directory = a.dir;
  c.topic = "lookup";
  c.segment_size = 256ull << 20;
  shmbus::DurableAppender app(c);
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
    else throw std::runtime_error("unknown option " + s + " (--quick, --dir DIR, --replay-bytes N, --lookup-max N)");
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
    bench_append(a);
    bench_replay(a);
    bench_lookup(a);
    fs::remove_all(a.dir);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shmbus_durable_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
