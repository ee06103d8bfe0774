// Open/validate fuzzing: a region is hostile input to whoever opens it. Valid regions (file-
// backed and sealed memfds, several configurations) with one 8-byte word changed (every word
// of the header with its section table, of the control block's immutable part and of the size
// class entries, each with boundary values), and random images, are given to
// Topic::open_file / open_fd / inspect_file / read_region_header, and a sample of them to
// `shmbus region inspect`. Each must be refused with a named Error (a region Errc, a message
// saying which region and what is wrong) or open and then be usable without a crash
// (stats, busy_chunks, region_info, a publish/take round trip).
//
// Each batch runs in a forked child that records the case it is at in shared memory, so that
// a crash names the word and value that caused it. SHMBUS_FUZZ_ROUNDS=N multiplies the random
// rounds (long soak).
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <random>
#include <csignal>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "layout.hpp"
#include "region_facts.hpp"
#include "shmbus/shmbus.hpp"
#include "test_support.hpp"
#include "topic_admin.hpp"
#include "topic_map.hpp"

namespace shmbus {
namespace {

using namespace detail;

// Shared between a batch's child and the test: where the child is, and why it failed.
struct Progress {
  std::atomic<std::uint64_t> case_index;
  std::atomic<std::uint64_t> offset;
  std::atomic<std::uint64_t> value;
  std::atomic<std::uint64_t> opened;
  std::atomic<std::uint64_t> refused;
  char failure[1024];
};

class SharedProgress {
 public:
  SharedProgress() {
    void* p = mmap(nullptr, sizeof(Progress), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("mmap");
    p_ = new (p) Progress{};
  }
  ~SharedProgress() { munmap(p_, sizeof(Progress)); }
  Progress* get() const { return p_; }

 private:
  Progress* p_;
};

enum FuzzExit : int { kCaseFailed = testing::kChildFirstFree };

bool is_region_refusal(Errc c) {
  switch (c) {
    case Errc::not_a_region: case Errc::unknown_layout_version: case Errc::abi_mismatch:
    case Errc::region_too_short: case Errc::region_corrupt: case Errc::region_unsealed: case Errc::region_lost:
      return true;
    default:
      return false;
  }
}

std::vector<TopicConfig> configs() {
  std::vector<TopicConfig> out;
  TopicConfig a;
  a.name = testing::unique_name("fuzz-a");
  a.size_classes = {{256, 8}, {4096, 4}};
  a.queue_depth = 8;
  a.history_depth = 2;
  a.max_publishers = 2;
  a.max_subscribers = 3;
  a.max_loans_per_publisher = 4;
  a.max_held_per_subscriber = 4;
  out.push_back(a);
  TopicConfig b;
  b.name = testing::unique_name("fuzz-b/with/slashes");
  b.size_classes = {{64, 24}};
  b.queue_depth = 16;
  b.policy = SlowSubscriberPolicy::block;
  b.block_timeout = std::chrono::milliseconds(20);
  b.max_publishers = 1;
  b.max_subscribers = 2;
  b.max_loans_per_publisher = 2;
  b.max_held_per_subscriber = 2;
  b.max_segments = 1;
  b.stamp_publish_time = true;
  out.push_back(b);
  TopicConfig c;
  c.name = testing::unique_name("fuzz-c");
  c.size_classes = {{128, 6}, {1024, 6}, {8192, 2}};
  c.queue_depth = 4;
  c.history_depth = 4;
  c.policy = SlowSubscriberPolicy::fail_publish;
  c.max_publishers = 3;
  c.max_subscribers = 2;
  c.max_loans_per_publisher = 3;
  c.max_held_per_subscriber = 3;
  c.type_id = 0xfeedULL;
  c.schema = std::string(100, 'x');
  out.push_back(c);
  return out;
}

// Byte offsets of every 8-byte word an opener reads as configuration: the header up to and
// including its health/layout-version word, the control block's immutable part, the size
// class entries.
std::vector<std::uint64_t> config_words(const RegionFacts& f) {
  std::vector<std::uint64_t> words;
  for (std::uint64_t o = 0; o < offsetof(RegionHeader, health) + 8; o += 8) words.push_back(o);
  for (std::uint64_t o = 0; o < offsetof(TopicControl, tail); o += 8) words.push_back(f.section(kSectionControl).offset + o);
  for (std::uint64_t o = 0; o < f.classes.size() * sizeof(SizeClassEntry); o += 8) words.push_back(f.section(kSectionClasses).offset + o);
  return words;
}

std::vector<std::uint64_t> boundary_values(std::uint64_t original, std::uint64_t region_size) {
  return {0,
          1,
          ~0ULL,
          1ULL << 31,
          region_size + 1,
          1ULL << 32,
          1ULL << 40,
          1ULL << 63,
          0xFFFF'FFFFULL,
          original + 1,
          original ^ 0xFFFF'FFFFULL,  // low half (often a whole 32-bit field) inverted
          original ^ (0xFFFF'FFFFULL << 32),
          original + kPageSize,
          original - kCacheLine};
}

// Reads the whole region behind `fd`.
std::vector<std::byte> image_of(int fd, std::size_t size) {
  std::vector<std::byte> img(size);
  EXPECT_EQ(pread(fd, img.data(), size, 0), static_cast<ssize_t>(size));
  return img;
}

// A new memfd holding `img`, sealed as the library seals its regions (bus/region.cpp).
int sealed_memfd_copy(const std::vector<std::byte>& img, bool seal = true) {
  int fd = memfd_create("fuzz-copy", MFD_ALLOW_SEALING | MFD_CLOEXEC);
  if (fd < 0) throw std::runtime_error("memfd_create");
  if (!img.empty() && pwrite(fd, img.data(), img.size(), 0) != static_cast<ssize_t>(img.size())) throw std::runtime_error("pwrite");
  if (seal && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) throw std::runtime_error("seal");
  return fd;
}

void fail(Progress* p, const std::string& why) {
  std::snprintf(p->failure, sizeof p->failure, "%s", why.c_str());
  std::fflush(stdout);
  _exit(kCaseFailed);
}

// Everything a tool or a client does with a topic it opened: must not crash, whatever the
// region says (it passed validation).
void use(Progress* p, Topic& t, bool writable) {
  (void)t.region_info();
  (void)t.stats();
  (void)t.busy_chunks();
  (void)t.describe_pool();
  if (t.name().empty()) fail(p, "opened a topic with an empty name");
  if (!writable || detail::TopicAccess::map(t).pool_bytes() > (1u << 20)) return;  // pools of the test's configurations only
  try {
    RawSubscriber sub(t);
    RawPublisher pub(t);
    for (int i = 0; i < 3; ++i) {
      auto loan = pub.loan(16);
      if (!loan) break;
      std::memset(loan->data().data(), i, 16);
      if (!pub.publish(std::move(*loan), 16)) break;
    }
    for (int i = 0; i < 4; ++i) {
      if (!sub.take()) break;
    }
  } catch (const Error&) {
    // A registration refused (slots, pools) is fine; a crash is not.
  }
}

// Opens `fd`/`path` every way the library offers; records the outcome or _exits on a bad one.
void open_every_way(Progress* p, int fd, const std::filesystem::path& path) {
  auto check = [&](auto&& open, bool writable) {
    try {
      Topic t = open();
      p->opened.fetch_add(1, std::memory_order_relaxed);
      use(p, t, writable);
    } catch (const Error& e) {
      p->refused.fetch_add(1, std::memory_order_relaxed);
      const std::string what = e.what();
      if (!is_region_refusal(e.code())) fail(p, "refused with unexpected " + std::string(errc_name(e.code())) + ": " + what);
      // "<region fd N | region file P>: <what is wrong>"
      const std::size_t colon = what.find(": ");
      if (what.rfind("region ", 0) != 0 || colon == std::string::npos || what.size() < colon + 6) {
        fail(p, "refusal without a named reason: " + what);
      }
    }
  };
  if (fd >= 0) check([&] { return Topic::open_fd(fd); }, true);
  if (!path.empty()) {
    check([&] { return Topic::open_file(path); }, true);
    check([&] { return Topic::inspect_file(path); }, false);
    try {
      (void)Topic::read_region_header(path);
    } catch (const Error& e) {
      if (e.code() != Errc::region_too_short) fail(p, std::string("read_region_header: ") + e.what());
    }
  }
}

// Runs `body` in a child; fails the test naming the case the child was at if it did not end well.
void run_batch(const std::string& name, const std::function<void(Progress*)>& body) {
  SharedProgress progress;
  Progress* p = progress.get();
  testing::Child child = testing::Child::spawn([&] {
    // A forged region that passed validation could still make a publisher create a huge
    // memfd (shared memory no process is charged for: the OOM killer would pick others).
    // Files and memfds beyond 256 MiB fail with EFBIG here instead.
    rlimit limit{256ULL << 20, 256ULL << 20};
    setrlimit(RLIMIT_FSIZE, &limit);
    signal(SIGXFSZ, SIG_IGN);
    body(p);
    return 0;
  });
  int status = child.wait(std::chrono::seconds(120));
  EXPECT_EQ(status, 0) << name << ": " << testing::describe_exit(status) << " at case " << p->case_index.load()
                       << " (word at offset " << p->offset.load() << " = " << p->value.load() << "): " << p->failure;
  EXPECT_GT(p->refused.load() + p->opened.load(), 0u) << name;
  std::printf("[ fuzz     ] %s: %llu opened, %llu refused\n", name.c_str(),
              static_cast<unsigned long long>(p->opened.load()), static_cast<unsigned long long>(p->refused.load()));
}

void write_word(int fd, std::uint64_t offset, std::uint64_t value) {
  ASSERT_EQ(pwrite(fd, &value, sizeof value, static_cast<off_t>(offset)), 8);
}

TEST(RegionFuzz, EverySingleWordChangeOfAFileRegionIsRefusedByNameOrOpensUsable) {
  testing::TempDir dir("fuzz-file");
  for (const TopicConfig& config : configs()) {
    RegionOptions options = dir.region_options();
    options.payload_in_region = config.policy == SlowSubscriberPolicy::block;  // both pool models
    Topic created = Topic::create(config, options);
    {
      RawPublisher pub(created);
      auto loan = pub.loan(8);
      ASSERT_TRUE(loan);
      ASSERT_TRUE(pub.publish(std::move(*loan), 8));
    }
    const std::filesystem::path path = created.path();
    const RegionFacts facts = detail::TopicAccess::map(created).facts();
    const std::uint64_t size = created.mapping_size();
    run_batch(config.name, [&](Progress* p) {
      int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
      std::uint64_t n = 0;
      for (std::uint64_t offset : config_words(facts)) {
        std::uint64_t original = 0;
        pread(fd, &original, 8, static_cast<off_t>(offset));
        for (std::uint64_t value : boundary_values(original, size)) {
          if (value == original) continue;
          p->case_index = n++;
          p->offset = offset;
          p->value = value;
          pwrite(fd, &value, 8, static_cast<off_t>(offset));
          open_every_way(p, -1, path);
          pwrite(fd, &original, 8, static_cast<off_t>(offset));
        }
      }
      close(fd);
    });
  }
}

TEST(RegionFuzz, EverySingleWordChangeOfASealedMemfdCopyIsRefusedByNameOrOpensUsable) {
  for (const TopicConfig& config : configs()) {
    Topic created = Topic::create(config);
    const std::vector<std::byte> img = image_of(created.fd(), created.mapping_size());
    const RegionFacts facts = detail::TopicAccess::map(created).facts();
    run_batch(config.name + " (memfd)", [&](Progress* p) {
      int fd = sealed_memfd_copy(img);
      std::uint64_t n = 0;
      for (std::uint64_t offset : config_words(facts)) {
        std::uint64_t original = 0;
        std::memcpy(&original, img.data() + offset, 8);
        for (std::uint64_t value : boundary_values(original, img.size())) {
          if (value == original) continue;
          p->case_index = n++;
          p->offset = offset;
          p->value = value;
          pwrite(fd, &value, 8, static_cast<off_t>(offset));
          open_every_way(p, fd, {});
          pwrite(fd, &original, 8, static_cast<off_t>(offset));
        }
      }
      close(fd);
    });
  }
}

TEST(RegionFuzz, RandomImagesAndRandomlyRewrittenRegionsAreRefusedByNameOrOpenUsable) {
  const long rounds = std::getenv("SHMBUS_FUZZ_ROUNDS") ? std::atol(std::getenv("SHMBUS_FUZZ_ROUNDS")) : 1;
  testing::TempDir dir("fuzz-random");
  std::vector<std::vector<std::byte>> valid;
  std::vector<RegionFacts> valid_facts;
  for (const TopicConfig& config : configs()) {
    Topic t = Topic::create(config);
    valid.push_back(image_of(t.fd(), t.mapping_size()));
    valid_facts.push_back(detail::TopicAccess::map(t).facts());
  }
  const std::filesystem::path path = dir.path() / "random.shmbus";
  run_batch("random images", [&](Progress* p) {
    std::mt19937_64 rng(0x5eed);
    for (long i = 0; i < testing::scaled(300) * rounds; ++i) {
      p->case_index = static_cast<std::uint64_t>(i);
      std::vector<std::byte> img;
      const int kind = static_cast<int>(rng() % 3);
      if (kind == 0) {  // noise, sometimes behind a believable header start
        img.resize(rng() % (4 * kPageSize));
        for (auto& b : img) b = static_cast<std::byte>(rng());
        if (img.size() >= kPageSize && rng() % 2 == 0) {
          RegionHeader h{};
          std::memcpy(static_cast<void*>(&h), img.data(), sizeof h);
          h.magic = kRegionMagic;
          h.abi_word = kAbiWord;
          h.kind = RegionKind::kFile;
          h.region_size = img.size();
          h.section_count = kSectionCount;
          h.health.store(0);
          h.layout_version.store(kLayoutVersion);
          std::memcpy(img.data(), &h, sizeof h);
        }
      } else {  // a valid region with 1..8 words of its configuration randomised
        const std::size_t which = rng() % valid.size();
        img = valid[which];
        const std::vector<std::uint64_t> words = config_words(valid_facts[which]);
        for (int w = 1 + static_cast<int>(rng() % 8); w > 0; --w) {
          const std::uint64_t offset = words[rng() % words.size()];
          const std::uint64_t value = kind == 1 ? rng() : std::uint64_t{1} << (rng() % 64);
          p->offset = offset;
          p->value = value;
          std::memcpy(img.data() + offset, &value, 8);
        }
      }
      int fd = sealed_memfd_copy(img);
      open_every_way(p, fd, {});
      close(fd);
      int ffd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      if (!img.empty()) (void)!write(ffd, img.data(), img.size());
      close(ffd);
      open_every_way(p, -1, path);
    }
    // An unsealed memfd copy of a valid region is refused: it could be truncated under us.
    int fd = sealed_memfd_copy(valid[0], /*seal=*/false);
    try {
      Topic::open_fd(fd);
      fail(p, "an unsealed memfd region was opened");
    } catch (const Error& e) {
      if (e.code() != Errc::region_unsealed) fail(p, e.what());
    }
    close(fd);
  });
}

// Targeted words: the error names the field that is wrong.
TEST(RegionFuzz, AnInconsistentFieldIsNamedInTheError) {
  TopicConfig config = configs()[0];
  Topic created = Topic::create(config);
  const std::vector<std::byte> img = image_of(created.fd(), created.mapping_size());
  const RegionFacts& f = detail::TopicAccess::map(created).facts();
  const std::uint64_t ctl = f.section(kSectionControl).offset;
  const std::uint64_t cls = f.section(kSectionClasses).offset;
  struct Target {
    std::uint64_t offset;
    std::uint32_t value;
    const char* named;
  };
  const Target targets[] = {
      {offsetof(RegionHeader, region_size), 12345, "region_size"},
      {offsetof(RegionHeader, kind), 7, "kind"},
      {offsetof(RegionHeader, section_count), 3, "section_count"},
      {offsetof(RegionHeader, sections) + kSectionRing * sizeof(Section), 0x7fff'ffff, "section 6"},
      {offsetof(RegionHeader, sections) + kSectionHolds * sizeof(Section),
       static_cast<std::uint32_t>(f.section(kSectionRing).offset), "overlap"},
      {ctl + offsetof(TopicControl, ring_capacity), 6, "ring_capacity"},
      {ctl + offsetof(TopicControl, ring_capacity), 1u << 25, "ring_capacity"},
      {ctl + offsetof(TopicControl, history_depth), 9, "history_depth"},
      {ctl + offsetof(TopicControl, max_publishers), 0, "max_publishers"},
      {ctl + offsetof(TopicControl, max_subscribers), 1u << 31, "max_subscribers"},
      {ctl + offsetof(TopicControl, max_loans_per_publisher), 5000, "max_loans_per_publisher"},
      {ctl + offsetof(TopicControl, max_held_per_subscriber), 1000, "hold section"},
      {ctl + offsetof(TopicControl, max_segments), 33, "max_segments"},
      {ctl + offsetof(TopicControl, class_count), 3, "size class section"},
      {ctl + offsetof(TopicControl, class_count), 13, "class_count"},
      {ctl + offsetof(TopicControl, total_chunks), 0, "total_chunks"},
      {ctl + offsetof(TopicControl, pool_count), 1, "pool_count"},
      {ctl + offsetof(TopicControl, chunks_per_pool), 11, "chunks_per_pool"},
      {ctl + offsetof(TopicControl, policy), 9, "policy"},
      {ctl + offsetof(TopicControl, flags), 8, "flags"},
      {ctl + offsetof(TopicControl, block_timeout_ns) + 4, 0x8000'0000u, "block_timeout_ns"},
      {ctl + offsetof(TopicControl, pool_bytes), 4097, "pool_bytes"},
      {ctl, 0, "topic name"},
      {cls + offsetof(SizeClassEntry, chunk_size), 13, "size class 0"},
      {cls + sizeof(SizeClassEntry) + offsetof(SizeClassEntry, first_chunk), 0, "size class 1"},
  };
  for (const Target& t : targets) {
    std::vector<std::byte> bad = img;
    std::memcpy(bad.data() + t.offset, &t.value, sizeof t.value);
    int fd = sealed_memfd_copy(bad);
    try {
      Topic::open_fd(fd);
      ADD_FAILURE() << "opened with " << t.value << " at offset " << t.offset << " (" << t.named << ")";
    } catch (const Error& e) {
      EXPECT_TRUE(is_region_refusal(e.code())) << e.what();
      EXPECT_NE(std::string(e.what()).find(t.named), std::string::npos) << "expected '" << t.named << "' in: " << e.what();
    }
    close(fd);
  }
}

// Introspection reads mutable words too (ring slots, rows, chunk headers, pool and client
// slots): with another process writing random values over all of them, stats(), busy_chunks(),
// region_info() and describe_pool() must neither crash nor stray, on both pool models.
TEST(RegionFuzz, IntrospectionSurvivesAConcurrentScribblerOfEveryMutableWord) {
  for (bool in_region : {false, true}) {
    SCOPED_TRACE(in_region ? "payload in region" : "publisher pools");
    TopicConfig config = configs()[0];
    config.name = testing::unique_name("fuzz-scribbled");
    RegionOptions options;
    options.payload_in_region = in_region;
    Topic created = Topic::create(config, options);
    {
      RawPublisher pub(created);
      RawSubscriber sub(created);
      for (int i = 0; i < 5; ++i) {
        auto loan = pub.loan(100);
        ASSERT_TRUE(loan);
        ASSERT_TRUE(pub.publish(std::move(*loan), 100));
      }
      ASSERT_TRUE(sub.take());
    }
    Topic inspector = Topic::open_fd(created.fd());
    const RegionFacts& f = detail::TopicAccess::map(created).facts();
    // Everything after the control block's immutable part, up to the end of the last section
    // that holds words (the payload and schema are never indexed with).
    std::byte* first = detail::TopicAccess::map(created).base() + f.section(kSectionControl).offset + offsetof(TopicControl, tail);
    std::byte* end = detail::TopicAccess::map(created).base() + f.section(kSectionFreeLists).offset + f.section(kSectionFreeLists).size;
    testing::Pipe started;
    testing::Child scribbler = testing::Child::spawn([&] {
      std::mt19937_64 rng(42);
      started.notify();
      const std::uint64_t targeted[] = {0, 1, ~0ULL, 0xFFFF'FFFFULL, 1ULL << 31, 0x8000'0000'FFFF'FFFFULL};
      for (;;) {
        auto* word = reinterpret_cast<std::atomic<std::uint64_t>*>(first + (rng() % static_cast<std::uint64_t>(end - first)) / 8 * 8);
        const std::uint64_t v = rng() % 2 ? rng() : targeted[rng() % std::size(targeted)];
        word->store(v, std::memory_order_relaxed);
      }
      return 0;
    });
    ASSERT_TRUE(started.await());
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(700);
    int rounds = 0;
    while (std::chrono::steady_clock::now() < until) {
      (void)inspector.stats();
      (void)inspector.busy_chunks();
      (void)inspector.region_info();
      (void)inspector.describe_pool();
      ++rounds;
    }
    scribbler.kill_and_reap();
    EXPECT_GT(rounds, 10);
    EXPECT_EQ(inspector.config().queue_depth, 8u);  // the copy never moved
  }
}

#ifdef SHMBUS_CLI_PATH
// Runs `shmbus region inspect FILE`; returns its exit status, stdout and stderr.
struct CliRun {
  int status;
  std::string out, err;
};

std::string slurp(const std::filesystem::path& p) {
  std::string s;
  if (FILE* f = std::fopen(p.c_str(), "r")) {
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
    std::fclose(f);
  }
  return s;
}

CliRun inspect_with_cli(const std::filesystem::path& region, const std::filesystem::path& scratch) {
  const std::filesystem::path out = scratch / "out", err = scratch / "err";
  pid_t pid = fork();
  if (pid == 0) {
    int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(o, 1);
    dup2(e, 2);
    execl(SHMBUS_CLI_PATH, SHMBUS_CLI_PATH, "region", "inspect", region.c_str(), nullptr);
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return {status, slurp(out), slurp(err)};
}

TEST(RegionFuzz, RegionInspectShowsTheHeaderOfADamagedRegionAndNamesTheBadField) {
  testing::TempDir dir("fuzz-cli");
  TopicConfig config = configs()[0];
  Topic created = Topic::create(config, dir.region_options());
  const std::filesystem::path path = created.path();
  const RegionFacts facts = detail::TopicAccess::map(created).facts();
  const std::uint64_t ctl = facts.section(kSectionControl).offset;
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  // A handful of words across header, section table, control block and classes.
  const std::uint64_t words[] = {offsetof(RegionHeader, region_size), offsetof(RegionHeader, sections) + 16 * kSectionRing,
                                 ctl + offsetof(TopicControl, ring_capacity), ctl + offsetof(TopicControl, max_publishers),
                                 facts.section(kSectionClasses).offset, 0};
  int refused = 0;
  for (std::uint64_t offset : words) {
    std::uint64_t original = 0;
    ASSERT_EQ(pread(fd, &original, 8, static_cast<off_t>(offset)), 8);
    for (std::uint64_t value : {std::uint64_t{0}, ~std::uint64_t{0}, std::uint64_t{1} << 31}) {
      if (value == original) continue;
      write_word(fd, offset, value);
      CliRun r = inspect_with_cli(path, dir.path());
      write_word(fd, offset, original);
      SCOPED_TRACE("offset " + std::to_string(offset) + " = " + std::to_string(value));
      ASSERT_TRUE(WIFEXITED(r.status)) << "the CLI died: " << testing::describe_exit(r.status) << "\n" << r.err;
      if (WEXITSTATUS(r.status) == 0) continue;  // a change that left the region valid
      ++refused;
      EXPECT_EQ(WEXITSTATUS(r.status), 1);
      EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
      EXPECT_NE(r.err.find(path.string()), std::string::npos) << r.err;
      // What the header says is shown even so, section table included.
      EXPECT_NE(r.out.find("SECTION"), std::string::npos) << "stdout: " << r.out << "\nstderr: " << r.err;
      EXPECT_NE(r.out.find("ring"), std::string::npos) << r.out;
    }
  }
  EXPECT_GE(refused, 10);
  CliRun ok = inspect_with_cli(path, dir.path());
  EXPECT_TRUE(WIFEXITED(ok.status) && WEXITSTATUS(ok.status) == 0) << ok.err;
  close(fd);
}
#endif

}  // namespace
}  // namespace shmbus
