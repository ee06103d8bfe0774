// File leases on file-backed regions, with real processes: a writer's open, truncate(2) and
// O_RDONLY|O_TRUNC revoke the region (clients get region_lost, not SIGBUS, within
// milliseconds; other topics go on); a read-only open does not, and the lease comes back;
// a killed daemon's orphaned lease never stalls an opener for lease-break-time.
#include <fcntl.h>
#include <poll.h>

#include <cstring>

#include "daemon_harness.hpp"
#include "layout.hpp"
#include "shmbus/client.hpp"
#include "shmbus/shmbus.hpp"

namespace shmbusd::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

shmbus::TopicConfig topic(const std::string& name) {
  shmbus::TopicConfig c;
  c.name = name;
  c.size_classes = {{256, 64}};
  c.queue_depth = 16;
  c.policy = shmbus::SlowSubscriberPolicy::drop_oldest;
  return c;
}

std::span<const std::byte> bytes(const std::string& s) { return std::as_bytes(std::span<const char>(s.data(), s.size())); }

// Child exit codes.
constexpr int kRevokedSeen = 0;      // region_lost with region_info().revoked, the other topic works
constexpr int kSetupFailed = 2;
constexpr int kWrongError = 3;       // failed, but not with region_lost on a revoked region
constexpr int kNeverFailed = 4;      // still working after 10 s
constexpr int kOtherBroken = 5;      // the second topic stopped working too

// A client process: a publisher (or a subscriber) of "doomed" and a publisher+subscriber of
// "other", both file-backed. Writes one byte to `ready` once set up and one to `seen` the
// moment a call on "doomed" fails; exits with one of the codes above.
pid_t start_client(const DaemonProcess& d, bool publisher, int ready, int seen) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  try {
    shmbus::Client client(client_at(d, /*reconnect=*/false));
    shmbus::Topic doomed = client.open_topic(topic("doomed"), publisher ? shmbus::Role::publisher : shmbus::Role::subscriber);
    shmbus::Topic other = client.open_topic(topic("other"), shmbus::Role::publisher);
    client.open_topic(topic("other"), shmbus::Role::subscriber);
    std::optional<shmbus::RawPublisher> pub;
    std::optional<shmbus::RawSubscriber> sub;
    if (publisher) pub.emplace(client.publisher(doomed));
    if (!publisher) sub.emplace(client.subscriber(doomed));
    shmbus::RawPublisher other_pub = client.publisher(other);
    shmbus::RawSubscriber other_sub = client.subscriber(other);
    if (write(ready, "r", 1) != 1) _exit(kSetupFailed);
    auto end = Clock::now() + 10s;
    shmbus::Errc failed = shmbus::Errc::ok;
    while (Clock::now() < end) {
      if (pub) {
        shmbus::Status s = pub->publish_copy(bytes("doomed"));
        if (!s.ok()) failed = s.code();
      } else {
        auto s = sub->take();
        if (!s && s.code() != shmbus::Errc::no_data) failed = s.code();
      }
      if (failed != shmbus::Errc::ok) break;
      std::this_thread::sleep_for(1ms);
    }
    if (failed == shmbus::Errc::ok) _exit(kNeverFailed);
    if (write(seen, "s", 1) != 1) _exit(kSetupFailed);
    if (failed != shmbus::Errc::region_lost || !doomed.region_info().revoked) {
      fprintf(stderr, "client: failed with %s, revoked=%d\n", shmbus::errc_name(failed), doomed.region_info().revoked);
      _exit(kWrongError);
    }
    for (int i = 0; i < 20; ++i) {
      std::string m = "other " + std::to_string(i);
      if (!other_pub.publish_copy(bytes(m)).ok()) _exit(kOtherBroken);
      auto got = other_sub.take_wait(2s);
      if (!got) _exit(kOtherBroken);
    }
    _exit(kRevokedSeen);
  } catch (const std::exception& e) {
    fprintf(stderr, "client: %s\n", e.what());
    _exit(kSetupFailed);
  }
}

bool wait_readable(int fd, std::chrono::milliseconds timeout) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, static_cast<int>(timeout.count())) == 1;
}

std::optional<shmbus::TopicListing> listing(shmbus::Client& c, const std::string& name, bool revoked) {
  for (auto& t : c.list_topics()) {
    if (t.config.name == name && t.revoked == revoked) return t;
  }
  return std::nullopt;
}

// Polls until the topic's lease is held (the daemon arms it at creation and re-arms it in its
// 500 ms sweep).
bool wait_leased(shmbus::Client& c, const std::string& name, std::chrono::milliseconds timeout) {
  auto end = Clock::now() + timeout;
  while (Clock::now() < end) {
    auto t = listing(c, name, false);
    if (t && t->leased) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

// Opens `file` with `flags` (blocking until the daemon lets go of its lease) and closes it.
void open_and_close(const std::filesystem::path& file, int flags) {
  int fd = open(file.c_str(), flags | O_CLOEXEC);
  ASSERT_GE(fd, 0) << strerror(errno);
  close(fd);
}

struct Fixture {
  DaemonProcess daemon;
  int ready[2], seen[2];
  pid_t pub = -1, sub = -1;
  std::filesystem::path file;

  explicit Fixture(const char* tag) : daemon(make_temp_dir(tag), {"--default-backing", "file"}) {
    daemon.start();
    if (pipe(ready) != 0 || pipe(seen) != 0) throw std::runtime_error("pipe");
    pub = start_client(daemon, true, ready[1], seen[1]);
    sub = start_client(daemon, false, ready[1], seen[1]);
    for (int i = 0; i < 2; ++i) {
      char c;
      if (!wait_readable(ready[0], 10s) || read(ready[0], &c, 1) != 1) throw std::runtime_error("clients did not start");
    }
    shmbus::Client c(client_at(daemon, /*reconnect=*/false));
    auto t = listing(c, "doomed", false);
    if (!t || t->anonymous) throw std::runtime_error("no file-backed topic 'doomed'");
    file = t->path;
  }
  ~Fixture() {
    if (pub > 0) kill(pub, SIGKILL), wait_exit(pub);
    if (sub > 0) kill(sub, SIGKILL), wait_exit(sub);
    for (int fd : {ready[0], ready[1], seen[0], seen[1]}) close(fd);
  }

  // Runs `tamper` (in this process) and checks what the issue asks: both clients fail with the
  // revoked error promptly, their other topic works, the daemon lists the topic as revoked
  // with its file renamed aside, and a new openTopic gets a fresh, leased region.
  void expect_revoked_by(const std::function<void()>& tamper) {
    shmbus::Client c(client_at(daemon, /*reconnect=*/false));
    ASSERT_TRUE(wait_leased(c, "doomed", 3s)) << "the daemon holds no lease on " << file;
    auto t0 = Clock::now();
    tamper();
    for (int i = 0; i < 2; ++i) {
      char ch;
      ASSERT_TRUE(wait_readable(seen[0], 3s)) << "a client did not notice within 3 s";
      ASSERT_EQ(read(seen[0], &ch, 1), 1);
    }
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
    std::printf("both clients saw the revocation %lld ms after the tampering began\n", static_cast<long long>(ms));
    // The ~100 ms goal; generous here, the test machine is shared.
    EXPECT_LT(ms, 1000);
    EXPECT_EQ(wait_exit(pub, 20s), kRevokedSeen) << "publisher (2 setup, 3 wrong error, 4 never failed, 5 other topic broken)";
    EXPECT_EQ(wait_exit(sub, 20s), kRevokedSeen) << "subscriber (2 setup, 3 wrong error, 4 never failed, 5 other topic broken)";
    pub = sub = -1;
    auto gone = listing(c, "doomed", true);
    ASSERT_TRUE(gone) << "the daemon does not list 'doomed' as revoked";
    EXPECT_NE(gone->path, file);
    EXPECT_NE(gone->path.string().find(".revoked-"), std::string::npos) << gone->path;
    EXPECT_TRUE(std::filesystem::exists(gone->path)) << gone->path;
    EXPECT_FALSE(listing(c, "doomed", false)) << "a revoked topic must not be served any more";
    // A fresh region under the same name, leased again.
    shmbus::Topic fresh = c.open_topic(topic("doomed"), shmbus::Role::publisher);
    shmbus::RawPublisher p = c.publisher(fresh);
    EXPECT_TRUE(p.publish_copy(bytes("again")).ok());
    EXPECT_FALSE(fresh.region_info().revoked);
    EXPECT_TRUE(wait_leased(c, "doomed", 3s));
    EXPECT_TRUE(listing(c, "other", false)) << "the other topic must be untouched";
  }
};

TEST(Lease, OpenForWritingRevokesTheRegion) {
  Fixture f("lease-rdwr");
  f.expect_revoked_by([&] { open_and_close(f.file, O_RDWR); });
}

TEST(Lease, TruncateByPathRevokesTheRegion) {
  Fixture f("lease-trunc");
  f.expect_revoked_by([&] { ASSERT_EQ(truncate(f.file.c_str(), 0), 0) << strerror(errno); });
}

// Issue 21: a participant that writes garbage into the control words (here: a slot state no
// honest participant writes) gets the topic revoked and served fresh, exactly as a truncation
// does; nobody opened the file, so no lease broke: the daemon's sweep found the damage.
TEST(Lease, ADamagedControlRegionIsRevokedLikeATruncatedOne) {
  Fixture f("lease-damaged");
  f.expect_revoked_by([&] {
    shmbus::Client c(client_at(f.daemon, /*reconnect=*/false));
    shmbus::Topic t = c.open_topic(topic("doomed"), shmbus::Role::subscriber);
    auto* base = static_cast<std::byte*>(const_cast<void*>(t.mapping_base()));
    const auto& header = *reinterpret_cast<const shmbus::detail::RegionHeader*>(base);
    auto* subscribers = reinterpret_cast<shmbus::detail::SubscriberSlot*>(
        base + header.sections[shmbus::detail::kSectionSubscribers].offset);
    subscribers[t.config().max_subscribers - 1].state.store(77);  // the last slot: nobody's
  });
}

// O_RDONLY|O_TRUNC breaks a write lease only as a reader would (docs/linux-facts.md §1, the probe
// in docs/internals.md): the daemon must still tell it from a reader.
TEST(Lease, ReadOnlyOpenWithTruncRevokesTheRegion) {
  Fixture f("lease-rotrunc");
  f.expect_revoked_by([&] { open_and_close(f.file, O_RDONLY | O_TRUNC); });
}

// A reader (a backup, `shmbus region inspect`) may look: nothing is revoked, the clients go
// on, and the lease comes back once the reader is gone.
TEST(Lease, ReadOnlyOpenDoesNotRevokeAndTheLeaseComesBack) {
  Fixture f("lease-reader");
  shmbus::Client c(client_at(f.daemon, /*reconnect=*/false));
  ASSERT_TRUE(wait_leased(c, "doomed", 3s));
  pid_t reader = fork();
  if (reader == 0) {
    try {
      auto t0 = Clock::now();
      shmbus::Topic t = shmbus::Topic::inspect_file(f.file);
      bool quick = Clock::now() - t0 < 1s;
      std::this_thread::sleep_for(200ms);  // holds it open and mapped meanwhile
      _exit(t.name() == "doomed" && quick ? 0 : 1);
    } catch (const std::exception& e) {
      fprintf(stderr, "reader: %s\n", e.what());
      _exit(2);
    }
  }
  EXPECT_EQ(wait_exit(reader, 10s), 0);
  EXPECT_FALSE(wait_readable(f.seen[0], 300ms)) << "a read-only open must not revoke the region";
  auto t = listing(c, "doomed", false);
  ASSERT_TRUE(t);
  EXPECT_FALSE(listing(c, "doomed", true));
  EXPECT_TRUE(wait_leased(c, "doomed", 3s)) << "the sweep must re-arm the lease once the reader is gone";
  // And it works again: a writer now revokes it.
  f.expect_revoked_by([&] { open_and_close(f.file, O_RDWR); });
}

// A SIGKILLed daemon cannot release its lease, which stays on the file description its
// clients share: opening the file must not hang for lease-break-time (45 s).
TEST(Lease, OrphanedLeaseNeverStallsAnOpener) {
  Fixture f("lease-orphan");
  shmbus::Client c(client_at(f.daemon, /*reconnect=*/false));
  ASSERT_TRUE(wait_leased(c, "doomed", 3s));
  f.daemon.kill_now(SIGKILL);
  auto t0 = Clock::now();
  try {
    shmbus::Topic t = shmbus::Topic::inspect_file(f.file);
    EXPECT_EQ(t.name(), "doomed");
  } catch (const shmbus::Error& e) {
    EXPECT_EQ(e.code(), shmbus::Errc::lease_held) << e.what();
    EXPECT_NE(std::string(e.what()).find(f.file.string()), std::string::npos) << e.what();
  }
  EXPECT_LT(Clock::now() - t0, 2500ms);
  EXPECT_FALSE(wait_readable(f.seen[0], 100ms)) << "nothing revoked the region";
}

}  // namespace
}  // namespace shmbusd::test
