// Hostile control input: random bytes, truncated frames, a client that never speaks, and a
// bit-flip loop over valid serialized requests. Each must cost only that connection.
#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>
#include <poll.h>

#include <random>

#include "control.capnp.h"
#include "daemon_harness.hpp"
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

}  // namespace
}  // namespace shmbusd::test
