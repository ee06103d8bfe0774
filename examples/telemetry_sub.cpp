// Typed subscriber: asks the bus daemon for the topic "telemetry", reads each Telemetry
// message in place and measures its latency from the send time stamped by the publisher.
//
//   telemetry_sub [--bus default | --socket PATH] [--count 0] [--idle 3] [--print-every 100]
//                 [--busy-poll]
//
// Stops after --count messages (0: no limit) or when nothing arrives for --idle seconds. When
// the topic's region is revoked it follows the topic to the fresh region (through its Client),
// waiting as long as the daemon is away.
#include <cstdio>

#include "example_util.hpp"
#include "shmbus/client.hpp"
#include "shmbus/shmbus.hpp"
#include "telemetry.capnp.h"
#include "telemetry_topic.hpp"

using shmbus::examples::Telemetry;

int main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IOLBF, 0);  // line by line, even into a pipe or a log
  const std::uint64_t count = examples::flag_u64(argc, argv, "--count", 0);
  const std::uint64_t idle_s = examples::flag_u64(argc, argv, "--idle", 3);
  const std::uint64_t print_every = examples::flag_u64(argc, argv, "--print-every", 100);

  shmbus::SubscriberOptions options;
  // adaptive (default): spin 50 us, then sleep on a futex; busy_poll: spin, burn a core.
  options.wait_mode = examples::has_flag(argc, argv, "--busy-poll") ? shmbus::WaitMode::busy_poll
                                                                   : shmbus::WaitMode::adaptive;
  try {
    shmbus::Client client(examples::client_options(argc, argv, "telemetry_sub"));
    shmbus::Topic topic = client.open_topic(examples::telemetry_topic(), shmbus::Role::subscriber);
    shmbus::Subscriber<Telemetry> sub(topic, options);
    client.register_subscriber(sub.raw());  // the daemon gives back what we hold if we die
    std::printf("subscriber: joined '%s'\n", topic.name().c_str());

    examples::LatencyStats stats;
    std::uint64_t received = 0;
    while (count == 0 || received < count) {
      auto sample = sub.take_wait(std::chrono::seconds(idle_s));
      if (sample.code() == shmbus::Errc::timeout) break;  // the publisher went quiet
      if (sample.code() == shmbus::Errc::region_lost) {
        // The topic's region was revoked (someone wrote to or truncated its file) and no fresh
        // one could be had within the timeout: the daemon is down, say. Registered through the
        // Client, the subscriber follows the topic by itself once there is one, and take_wait()
        // sleeps meanwhile. Without a Client the loss is final: stop, never loop on it.
        if (!sub.raw().resumable()) break;
        std::fprintf(stderr, "subscriber: region lost, waiting for the daemon to serve '%s' again\n",
                     topic.name().c_str());
        continue;
      }
      if (!sample) {  // e.g. malformed_message: that message is skipped, the next one is fine
        std::fprintf(stderr, "subscriber: %s\n", sample.name());
        continue;
      }
      const std::uint64_t now = examples::monotonic_ns();
      Telemetry::Reader msg = sample->root();  // reads shared memory in place
      const std::uint64_t latency = now - msg.getSendTimeNs();
      stats.add(latency);
      if (sample->lost_before() != 0) {
        // Overwritten while we lagged a whole queue behind, left in a revoked region, or
        // (without shmbusd) their publisher exited before we read its pool: docs/usage.md,
        // "lost_before".
        std::printf("subscriber: lost %llu messages before this one\n",
                    static_cast<unsigned long long>(sample->lost_before()));
      }
      if (print_every != 0 && received % print_every == 0) {
        std::printf("subscriber: #%llu sensor=%s temp=%.2f C pos.x=%.2f latency=%.1f us\n",
                    static_cast<unsigned long long>(msg.getSequence()), msg.getSensor().cStr(),
                    msg.getTemperatureC(), msg.getPosition().getX(), static_cast<double>(latency) / 1000.0);
      }
      ++received;
    }
    stats.print("subscriber");
    if (sub.lost() != 0 || sub.raw().resumptions() != 0) {
      std::printf("subscriber: %llu lost in all, %llu of them to %llu revocation(s)\n",
                  static_cast<unsigned long long>(sub.lost()), static_cast<unsigned long long>(sub.raw().lost_revoked()),
                  static_cast<unsigned long long>(sub.raw().resumptions()));
    }
    return received > 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "subscriber: %s\n", e.what());
    return 1;
  }
}
