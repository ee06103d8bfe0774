// Hostile control input: random bytes, truncated frames, a client that never speaks, and a
// bit-flip loop over valid serialized requests. Each must cost only that connection.
#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>
#include <poll.h>

#include <random>

#include "control.capnp.h"
#include "daemon_harness.hpp"
#include "request_budget.hpp"
#include "shmbus/client.hpp"

namespace shmbusd::test {
namespace {

using namespace std::chrono_literals;

int raw_connect(const std::filesystem::path& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// True when the daemon closes the connection within `timeout` (reads until EOF).
bool closed_by_daemon(int fd, std::chrono::milliseconds timeout) {
  auto end = std::chrono::steady_clock::now() + timeout;
  char buf[4096];
  while (std::chrono::steady_clock::now() < end) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 20) != 1) continue;
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) return true;
  }
  return false;
}

void expect_still_serving(const DaemonProcess& d) {
  shmbus::ClientOptions o;
  o.socket = d.socket();
  o.reconnect = false;
  shmbus::Client client(o);
  shmbus::TopicConfig c;
  c.name = "still-serving";
  EXPECT_NO_THROW(client.open_topic(c, shmbus::Role::publisher));
}

// The exact bytes a real client sends for hello + openTopic, captured from a TwoPartyClient
// writing into an in-process pipe.
std::vector<capnp::byte> valid_request_bytes() {
  auto io = kj::setupAsyncIo();
  auto pipe = io.provider->newTwoWayPipe();
  capnp::TwoPartyClient rpc(*pipe.ends[0]);
  auto bus = rpc.bootstrap().castAs<shmbus::control::Bus>();
  auto hello = bus.helloRequest();
  hello.setClientName("fuzz");
  hello.setProtocolVersion(shmbus::control::PROTOCOL_VERSION);
  auto p1 = hello.send();
  auto open = bus.openTopicRequest();
  open.initConfig().setName("fuzzed");
  open.getConfig().initSizeClasses(1)[0].setChunkSize(128);
  open.getConfig().getSizeClasses()[0].setCount(8);
  open.setRole(shmbus::control::Role::PUBLISHER);
  auto p2 = open.send();
  std::vector<capnp::byte> out;
  capnp::byte buf[8192];
  for (;;) {
    auto n = pipe.ends[1]->tryRead(buf, 1, sizeof(buf)).exclusiveJoin(
        io.provider->getTimer().afterDelay(50 * kj::MILLISECONDS).then([]() -> size_t { return 0; }));
    size_t got = n.wait(io.waitScope);
    if (got == 0) break;
    out.insert(out.end(), buf, buf + got);
  }
  return out;
}

TEST(HostileInput, RandomBytesCloseThatConnectionOnly) {
  DaemonProcess d(make_temp_dir("random"));
  d.start();
  std::mt19937 rng(42);
  for (int round = 0; round < 20; ++round) {
    int fd = raw_connect(d.socket());
    ASSERT_GE(fd, 0);
    std::vector<unsigned char> junk(1 + rng() % 4096);
    for (auto& b : junk) b = static_cast<unsigned char>(rng());
    (void)!write(fd, junk.data(), junk.size());
    // Either the RPC layer rejects it at once, or it waits for the rest of a frame and the
    // handshake timeout closes it.
    EXPECT_TRUE(closed_by_daemon(fd, 3s)) << "round " << round;
    close(fd);
  }
  expect_still_serving(d);
}

TEST(HostileInput, TruncatedFrameAndSilentClientAreClosed) {
  DaemonProcess d(make_temp_dir("silent"), {"--handshake-timeout-ms", "300"});
  d.start();
  auto valid = valid_request_bytes();
  ASSERT_GT(valid.size(), 16u);
  // Cut inside the second frame (hello): the daemon never sees a complete request.
  auto frame_size = [&](std::size_t at) {
    std::uint32_t segs = 0;
    std::memcpy(&segs, &valid[at], 4);
    segs += 1;
    std::size_t header = 4 + 4 * segs + ((segs % 2 == 0) ? 4 : 0);
    std::size_t words = 0;
    for (std::uint32_t i = 0; i < segs; ++i) {
      std::uint32_t w;
      std::memcpy(&w, &valid[at + 4 + 4 * i], 4);
      words += w;
    }
    return header + words * 8;
  };
  std::size_t first = frame_size(0);
  std::size_t cut = first + frame_size(first) / 2;
  ASSERT_LT(cut, valid.size());
  int truncated = raw_connect(d.socket());
  (void)!write(truncated, valid.data(), cut);
  int silent = raw_connect(d.socket());
  expect_still_serving(d);  // served while those two hang
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(closed_by_daemon(silent, 3s));
  EXPECT_TRUE(closed_by_daemon(truncated, 3s));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  close(truncated);
  close(silent);
  expect_still_serving(d);
}

// Bit-flip fuzzing over valid requests (the GoogleTest form of capnp's fuzz-test): every
// mutated stream goes to the real daemon; it must never crash or stop serving others.
TEST(HostileInput, BitFlippedRequestsNeverHurtTheDaemon) {
  DaemonProcess d(make_temp_dir("bitflip"), {"--handshake-timeout-ms", "200"});
  d.start();
  auto valid = valid_request_bytes();
  ASSERT_GT(valid.size(), 16u);
  std::mt19937 rng(7);
  const int rounds = 400;
  for (int round = 0; round < rounds; ++round) {
    auto bytes = valid;
    int flips = 1 + static_cast<int>(rng() % 3);
    for (int f = 0; f < flips; ++f) {
      std::size_t bit = rng() % (bytes.size() * 8);
      bytes[bit / 8] ^= static_cast<capnp::byte>(1u << (bit % 8));
    }
    int fd = raw_connect(d.socket());
    ASSERT_GE(fd, 0) << "daemon stopped accepting at round " << round;
    (void)!write(fd, bytes.data(), bytes.size());
    pollfd p{fd, POLLIN, 0};
    poll(&p, 1, 5);  // let it chew; replies (or an abort) are ignored
    close(fd);
    int st;
    ASSERT_EQ(waitpid(d.pid(), &st, WNOHANG), 0) << "shmbusd died at round " << round;
  }
  expect_still_serving(d);
}


// The token bucket itself, on a clock the test moves.
TEST(RequestBudget, AllowsTheBurstThenTheRateThenAsksToClose) {
  using namespace std::chrono;
  RequestLimits limits;
  limits.per_second = 100;
  limits.burst = 10;
  auto t = steady_clock::time_point{} + hours(1);
  RequestBudget budget(limits, t);
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(budget.admit(t)) << i;
  EXPECT_FALSE(budget.admit(t));
  t += milliseconds(50);  // 5 requests' worth at 100/s
  int admitted = 0;
  for (int i = 0; i < 20; ++i) admitted += budget.admit(t) ? 1 : 0;
  EXPECT_EQ(admitted, 5);
  EXPECT_EQ(budget.refused(), 16u);
  EXPECT_TRUE(budget.should_close());
  limits.per_second = 0;  // unlimited
  RequestBudget open(limits, t);
  for (int i = 0; i < 100000; ++i) ASSERT_TRUE(open.admit(t));
}

// One connection pipelines thousands of requests: it gets "rate limit" refusals beyond its
// budget, is then cut off, and a polite client in another process is served throughout.
TEST(HostileInput, AFloodingConnectionIsRefusedThenClosedWhileOthersAreServed) {
  auto dir = make_temp_dir("flood");
  auto conf = dir / "flood.toml";
  std::ofstream(conf) << "max_requests_per_second = 100\nrequest_burst = 50\n";
  DaemonProcess d(dir, {"--config", conf.string()});
  d.start();

  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t polite = fork();
  ASSERT_GE(polite, 0);
  if (polite == 0) {
    close(ready[0]);
    int code = 0;
    try {
      shmbus::ClientOptions o;
      o.socket = d.socket();
      o.reconnect = false;
      shmbus::Client client(o);
      (void)!write(ready[1], "r", 1);
      auto worst = std::chrono::steady_clock::duration::zero();
      for (int i = 0; i < 40; ++i) {  // 40 requests over ~0.4 s: within its own budget
        auto t0 = std::chrono::steady_clock::now();
        client.status();
        worst = std::max(worst, std::chrono::steady_clock::now() - t0);
        std::this_thread::sleep_for(10ms);
      }
      if (worst > 500ms) code = 2;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "polite client: %s\n", e.what());
      code = 1;
    }
    _exit(code);
  }
  close(ready[1]);
  char byte;
  ASSERT_EQ(read(ready[0], &byte, 1), 1);
  close(ready[0]);

  auto io = kj::setupAsyncIo();
  int rounds = 0;
  int child_status = -1;
  while (waitpid(polite, &child_status, WNOHANG) == 0 || rounds < 2) {
    int fd = raw_connect(d.socket());
    ASSERT_GE(fd, 0);
    auto stream = io.lowLevelProvider->wrapSocketFd(fd, kj::LowLevelAsyncIoProvider::TAKE_OWNERSHIP);
    capnp::TwoPartyClient rpc(*stream);
    auto bus = rpc.bootstrap().castAs<shmbus::control::Bus>();
    int ok = 0, limited = 0, dropped = 0;
    // Sends `n` requests at once and waits for every answer.
    auto burst_of = [&](int n) {
      kj::Vector<kj::Promise<void>> calls;
      for (int i = 0; i < n; ++i) {
        calls.add(bus.statusRequest().send().then([&ok](auto&&) { ++ok; }, [&](kj::Exception&& e) {
          std::string why = e.getDescription().cStr();
          if (why.find("rate limit: ") != std::string::npos) {
            ++limited;
          } else {
            ++dropped;  // the daemon closed the connection
          }
        }));
      }
      kj::joinPromises(calls.releaseAsArray()).wait(io.waitScope);
    };
    SCOPED_TRACE("round " + std::to_string(rounds));
    // A little over the burst: the excess is refused with a reason, the connection stays.
    auto t0 = std::chrono::steady_clock::now();
    burst_of(70);
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_GE(ok, 50);
    EXPECT_LE(ok, 50 + static_cast<int>(100 * seconds) + 2);  // burst + rate, nothing more
    EXPECT_EQ(ok + limited, 70);
    EXPECT_EQ(dropped, 0);
    // A flood: cut off once it has been refused as often as its burst.
    burst_of(2000);
    EXPECT_GT(dropped, 0) << "the flooding connection was never closed";
    ++rounds;
    if (rounds > 200) break;
  }
  if (waitpid(polite, &child_status, WNOHANG) == 0) {
    kill(polite, SIGKILL);
    waitpid(polite, &child_status, 0);
  }
  ASSERT_TRUE(WIFEXITED(child_status));
  EXPECT_EQ(WEXITSTATUS(child_status), 0) << "1: a polite request failed; 2: one took over 500 ms";
  expect_still_serving(d);
}

}  // namespace
}  // namespace shmbusd::test
