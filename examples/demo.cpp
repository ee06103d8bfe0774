// The shmbus demo: one publisher process and one subscriber process exchange typed messages
// through shared memory, the subscriber prints what arrived and the latency it measured, and
// the demo exits by itself (0 when every message arrived intact).
//
//   shmbus_demo [--count 500] [--rate 1000]
//
// The topic lives in an anonymous region (a sealed memfd); the subscriber process gets it by
// inheriting the descriptor across fork(), as a client of the daemon would receive it over a
// Unix socket. For two unrelated programs sharing a file-backed topic, see telemetry_pub.cpp
// and telemetry_sub.cpp.
#include <capnp/message.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <thread>

#include "example_util.hpp"
#include "shmbus/shmbus.hpp"
#include "telemetry.capnp.h"

using shmbus::examples::Telemetry;
using namespace std::chrono_literals;

namespace {

// The first messages pay for first-touch page faults and cold caches: reported, not summarised.
constexpr std::uint64_t kWarmup = 10;

// The subscriber process: takes `count` messages, printing the first few, then a summary.
int run_subscriber(int region_fd, std::uint64_t count) {
  shmbus::Topic topic = shmbus::Topic::open_fd(region_fd);  // checks the region, then maps it
  shmbus::Subscriber<Telemetry> sub(topic);
  std::printf("[subscriber pid %d] subscribed to '%s'\n", getpid(), topic.name().c_str());

  examples::LatencyStats stats;
  std::uint64_t received = 0, in_order = 0, expected_seq = 0;
  while (received < count) {
    auto sample = sub.take_wait(2s);  // a publisher that stops never leaves us hanging
    if (sample.code() == shmbus::Errc::timeout) break;
    if (!sample) {
      std::printf("[subscriber] %s\n", sample.name());
      if (sample.code() == shmbus::Errc::region_lost) break;  // final without a daemon: never loop on it
      continue;
    }
    const std::uint64_t now = examples::monotonic_ns();
    Telemetry::Reader msg = sample->root();
    const std::uint64_t latency = now - msg.getSendTimeNs();
    if (received >= kWarmup) stats.add(latency);
    if (msg.getSequence() == expected_seq) ++in_order;
    expected_seq = msg.getSequence() + 1;
    if (received < 5 || received + 1 == count) {
      std::printf("[subscriber] got #%llu from %s: %.2f C at (%.2f, %.2f, %.2f), latency %.1f us\n",
                  static_cast<unsigned long long>(msg.getSequence()), msg.getSensor().cStr(), msg.getTemperatureC(),
                  msg.getPosition().getX(), msg.getPosition().getY(), msg.getPosition().getZ(),
                  static_cast<double>(latency) / 1000.0);
    } else if (received == 5) {
      std::printf("[subscriber] ...\n");
    }
    ++received;
  }
  stats.print("[subscriber] summary after warm-up");
  std::printf("[subscriber] %llu of %llu received, %llu in order, %llu lost\n",
              static_cast<unsigned long long>(received), static_cast<unsigned long long>(count),
              static_cast<unsigned long long>(in_order), static_cast<unsigned long long>(sub.lost()));
  return received == count && in_order == count ? 0 : 1;
}

// Waits for the child up to `timeout`, then kills it. Returns its exit status (or 1).
int reap(pid_t child, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (waitpid(child, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() >= deadline) {
      std::printf("[publisher] subscriber did not finish in time, killing it\n");
      kill(child, SIGKILL);
      waitpid(child, &status, 0);
      return 1;
    }
    std::this_thread::sleep_for(10ms);
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::uint64_t count = examples::flag_u64(argc, argv, "--count", 500);
  const std::uint64_t rate_hz = std::max<std::uint64_t>(examples::flag_u64(argc, argv, "--rate", 1000), 1);
  setvbuf(stdout, nullptr, _IOLBF, 0);  // keep the two processes' lines whole
  alarm(30);  // last-resort watchdog: never hang, whatever happens

  shmbus::TopicConfig config;
  config.name = "demo/telemetry";
  config.size_classes = {{256, 128}};
  config.queue_depth = 64;
  // Lossless: when the subscriber is 64 messages behind (a busy machine can stall it), the
  // publisher waits for it, up to block_timeout, instead of dropping the oldest message.
  config.policy = shmbus::SlowSubscriberPolicy::block;
  config.block_timeout = 2s;
  config.type_id = capnp::typeId<Telemetry>();

  try {
    shmbus::Topic topic = shmbus::Topic::create(config);  // anonymous: a sealed memfd
    std::printf("[publisher pid %d] created topic '%s' (%zu KiB of shared memory)\n", getpid(),
                topic.name().c_str(), topic.mapping_size() >> 10);

    const pid_t child = fork();
    if (child < 0) {
      std::perror("fork");
      return 1;
    }
    if (child == 0) {
      int rc = 1;
      try {
        rc = run_subscriber(topic.fd(), count);
      } catch (const std::exception& e) {
        std::printf("[subscriber] %s\n", e.what());
      }
      std::fflush(stdout);
      _exit(rc);
    }

    shmbus::Publisher<Telemetry> pub(topic);
    if (!examples::wait_for_subscribers(topic, 1, 5s)) {
      std::printf("[publisher] the subscriber never registered\n");
      kill(child, SIGKILL);
      reap(child, 1s);
      return 1;
    }
    std::printf("[publisher] subscriber is in, publishing %llu messages at %llu Hz\n",
                static_cast<unsigned long long>(count), static_cast<unsigned long long>(rate_hz));

    std::uint64_t failed = 0;
    auto next = std::chrono::steady_clock::now();
    for (std::uint64_t i = 0; i < count; ++i) {
      auto loan = pub.loan();
      if (!loan) {
        std::printf("[publisher] loan: %s\n", loan.status().name());
        ++failed;
        if (loan.status().code() == shmbus::Errc::region_lost) break;  // final without a daemon
        continue;
      }
      Telemetry::Builder msg = loan.init();
      msg.setSequence(i);
      msg.setSensor("imu0");
      msg.setTemperatureC(20.0 + static_cast<double>(i % 100) / 10.0);
      auto pos = msg.initPosition();
      pos.setX(static_cast<double>(i) * 0.01);
      pos.setY(2.0);
      pos.setZ(0.5);
      msg.setSendTimeNs(examples::monotonic_ns());
      if (shmbus::Status st = pub.publish(loan); !st) {
        std::printf("[publisher] publish: %s\n", st.name());
        ++failed;
      }
      next += std::chrono::nanoseconds(1'000'000'000 / rate_hz);
      std::this_thread::sleep_until(next);
    }
    std::printf("[publisher] published %llu messages\n", static_cast<unsigned long long>(count - failed));

    const int rc = reap(child, 5s);
    // Had the subscriber crashed, its slot and held chunks would still be registered; the
    // process that reaped it gives them back (a no-op after a clean exit).
    topic.reclaim_process(child);
    std::printf("demo: %s\n", rc == 0 && failed == 0 ? "OK" : "FAILED");
    return rc == 0 && failed == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::printf("demo: %s\n", e.what());
    return 1;
  }
}
