// Large messages: receives the 8 MiB frames of frame_pub and reads each one in place: the
// pixels are checked where the publisher wrote them, inside this process's mapping of the
// topic, without a copy. Prints per-frame latency and a summary.
//
//   frame_sub [--dir /dev/shm/shmbus-examples] [--count 0] [--idle 3]
#include <cstdio>

#include "example_util.hpp"
#include "shmbus/shmbus.hpp"
#include "telemetry.capnp.h"

using shmbus::examples::CameraFrame;

int main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IOLBF, 0);  // line by line, even into a pipe or a log
  const std::filesystem::path dir = examples::bus_directory(argc, argv);
  const std::uint64_t count = examples::flag_u64(argc, argv, "--count", 0);
  const std::uint64_t idle_s = examples::flag_u64(argc, argv, "--idle", 3);

  try {
    shmbus::Topic topic = examples::open_topic_file(dir / "camera.shmbus", std::chrono::seconds(10));
    shmbus::Subscriber<CameraFrame> sub(topic);
    std::printf("frame_sub: joined '%s', mapping %p + %zu MiB\n", topic.name().c_str(), topic.mapping_base(),
                topic.mapping_size() >> 20);

    examples::LatencyStats stats;
    std::uint64_t received = 0, bad = 0;
    while (count == 0 || received < count) {
      auto sample = sub.take_wait(std::chrono::seconds(idle_s));
      if (sample.code() == shmbus::Errc::timeout) break;
      if (sample.code() == shmbus::Errc::region_lost) {
        // The region file was truncated or revoked. Opened without a daemon, nothing brings
        // it back: the loss is final, and looping on it would only spin. Stop.
        std::fprintf(stderr, "frame_sub: %s\n", sample.name());
        ++bad;
        break;
      }
      if (!sample) {
        std::fprintf(stderr, "frame_sub: %s\n", sample.name());
        ++bad;
        continue;
      }
      const std::uint64_t latency = examples::monotonic_ns() - sample->root().getSendTimeNs();
      stats.add(latency);

      CameraFrame::Reader frame = sample->root();
      capnp::Data::Reader pixels = frame.getPixels();  // a view of shared memory, not a copy
      const bool in_place = examples::in_mapping(topic, pixels.begin());
      const bool size_ok = pixels.size() == std::size_t{frame.getWidth()} * frame.getHeight() * frame.getBytesPerPixel();
      const bool sum_ok = examples::checksum({pixels.begin(), pixels.size()}) == frame.getChecksum();
      if (!in_place || !size_ok || !sum_ok) ++bad;
      std::printf("frame_sub: frame %llu, %ux%ux%u, pixels at %p (%s), checksum %s, latency %.1f us%s\n",
                  static_cast<unsigned long long>(frame.getSequence()), frame.getWidth(), frame.getHeight(),
                  frame.getBytesPerPixel(), static_cast<const void*>(pixels.begin()),
                  in_place ? "in the mapping" : "NOT IN THE MAPPING", sum_ok && size_ok ? "ok" : "WRONG",
                  static_cast<double>(latency) / 1000.0, sample->lost_before() ? " (dropped some before it)" : "");
      ++received;
    }  // each sample is released at the end of its iteration: its chunk goes back to the pool
    stats.print("frame_sub");
    return received > 0 && bad == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "frame_sub: %s\n", e.what());
    return 1;
  }
}
