// A raw C++ subscriber of examples/c_publisher.c's topic "c-readings": reads each c_reading
// (examples/c_reading.h) in place and checks it is what the C publisher wrote.
//
//   raw_sub [--bus default | --socket PATH] [--count 0] [--idle 3]
//
// Stops after --count messages (0: no limit) or when nothing arrives for --idle seconds; exits
// non-zero when a message was damaged or none came.
#include <cstdio>
#include <cstring>

#include "c_reading.h"
#include "example_util.hpp"
#include "shmbus/client.hpp"
#include "shmbus/shmbus.hpp"
#include "telemetry_topic.hpp"

int main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IOLBF, 0);
  const std::uint64_t count = examples::flag_u64(argc, argv, "--count", 0);
  const std::uint64_t idle_s = examples::flag_u64(argc, argv, "--idle", 3);
  try {
    shmbus::Client client(examples::client_options(argc, argv, "raw_sub"));
    shmbus::TopicConfig config;  // as c_publisher.c asks for it
    config.name = C_READING_TOPIC;
    config.size_classes = {{sizeof(c_reading), 256}};
    config.queue_depth = 64;
    shmbus::Topic topic = client.open_topic(config, shmbus::Role::subscriber);
    shmbus::RawSubscriber sub = client.subscriber(topic);
    std::printf("raw_sub: joined '%s'\n", topic.name().c_str());

    examples::LatencyStats stats;
    std::uint64_t received = 0, damaged = 0;
    while (count == 0 || received < count) {
      auto sample = sub.take_wait(std::chrono::seconds(idle_s));
      if (sample.code() == shmbus::Errc::timeout) break;
      if (!sample) {
        std::fprintf(stderr, "raw_sub: %s\n", sample.name());
        if (sample.code() == shmbus::Errc::region_lost && !sub.resumable()) break;
        continue;
      }
      const std::uint64_t now = examples::monotonic_ns();
      auto bytes = sample->data();
      c_reading r;
      if (bytes.size() != sizeof r) {
        ++damaged;
        continue;
      }
      std::memcpy(&r, bytes.data(), sizeof r);  // alignment-safe; in-place reads work as well
      if (r.check != c_reading_check(&r) || r.sensor[sizeof r.sensor - 1] != '\0') {
        ++damaged;
        continue;
      }
      stats.add(now - r.send_time_ns);
      if (received % 100 == 0)
        std::printf("raw_sub: #%llu sensor=%s temp=%.1f C\n", static_cast<unsigned long long>(r.sequence), r.sensor,
                    r.temperature_c);
      ++received;
    }
    stats.print("raw_sub");
    if (damaged != 0) std::printf("raw_sub: %llu damaged messages\n", static_cast<unsigned long long>(damaged));
    return received > 0 && damaged == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "raw_sub: %s\n", e.what());
    return 1;
  }
}
