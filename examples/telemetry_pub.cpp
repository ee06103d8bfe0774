// Typed publisher: asks the bus daemon for the topic "telemetry" and publishes Telemetry
// messages, each built in place in shared memory and stamped with a sequence and a send time.
//
//   shmbusd &                      # the bus daemon, once per machine (or a systemd service)
//   telemetry_pub [--bus default | --socket PATH] [--count 1000] [--rate 1000] [--wait 10]
//
// Start telemetry_sub (in any order); the publisher waits up to --wait seconds for it.
#include <capnp/message.h>

#include <cmath>
#include <cstdio>
#include <thread>

#include "example_util.hpp"
#include "shmbus/client.hpp"
#include "shmbus/shmbus.hpp"
#include "telemetry.capnp.h"
#include "telemetry_topic.hpp"

using shmbus::examples::Telemetry;

int main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IOLBF, 0);  // line by line, even into a pipe or a log
  const std::uint64_t count = examples::flag_u64(argc, argv, "--count", 1000);
  const std::uint64_t rate_hz = examples::flag_u64(argc, argv, "--rate", 1000);
  const std::uint64_t wait_s = examples::flag_u64(argc, argv, "--wait", 10);

  try {
    // The daemon creates the topic's shared region (or hands over the existing one), checks
    // that we may publish, and cleans up after us if we die. It is never on the data path.
    shmbus::Client client(examples::client_options(argc, argv, "telemetry_pub"));
    shmbus::Topic topic = client.open_topic(examples::telemetry_topic(), shmbus::Role::publisher);
    shmbus::Publisher<Telemetry> pub(topic);
    client.register_publisher(pub.raw());
    std::printf("publisher: topic '%s', waiting for a subscriber\n", topic.name().c_str());
    if (!examples::wait_for_subscribers(topic, 1, std::chrono::seconds(wait_s))) {
      std::printf("publisher: no subscriber after %llu s, giving up\n", static_cast<unsigned long long>(wait_s));
      return 1;
    }

    const auto period = std::chrono::nanoseconds(1'000'000'000 / std::max<std::uint64_t>(rate_hz, 1));
    auto next = std::chrono::steady_clock::now();
    std::uint64_t failed = 0;
    for (std::uint64_t i = 0; i < count; ++i) {
      auto loan = pub.loan();  // a chunk of the pool: the message is built where it is read
      if (!loan) {
        ++failed;
        if (loan.status().code() != shmbus::Errc::region_lost) {
          std::fprintf(stderr, "publisher: %s\n", pub.raw().explain(loan.status().code(), 256).c_str());
        } else if (pub.raw().resumable()) {
          // Revoked, and the daemon has no fresh region for us yet (it is away): a later loan
          // asks again (the publisher follows the topic by itself, through the Client).
          std::fprintf(stderr, "publisher: region lost, waiting for the daemon\n");
        } else {
          std::fprintf(stderr, "publisher: region lost for good\n");  // without a Client
          failed += count - i - 1;
          break;
        }
        next += period;  // keep the pace: a failing loan must not turn the loop into a spin
        std::this_thread::sleep_until(next);
        continue;
      }
      Telemetry::Builder msg = loan.init();
      msg.setSequence(i);
      msg.setSensor("imu0");
      msg.setTemperatureC(21.5 + std::sin(static_cast<double>(i) / 50.0));
      auto pos = msg.initPosition();
      pos.setX(static_cast<double>(i) * 0.01);
      pos.setY(1.0);
      pos.setZ(-0.5);
      msg.setSendTimeNs(examples::monotonic_ns());  // last, just before publishing
      if (shmbus::Status st = pub.publish(loan); !st) {
        std::fprintf(stderr, "publisher: publish #%llu: %s\n", static_cast<unsigned long long>(i), st.name());
        ++failed;
      }
      next += period;
      std::this_thread::sleep_until(next);
    }
    std::printf("publisher: published %llu messages (%llu failed)\n",
                static_cast<unsigned long long>(count - failed), static_cast<unsigned long long>(failed));
    return failed == 0 ? 0 : 1;
  } catch (const std::exception& e) {  // shmbus::Error from set-up, filesystem errors
    std::fprintf(stderr, "publisher: %s\n", e.what());
    return 1;
  }
}
