// Large messages: publishes 8 MiB synthetic camera frames (2048 x 1024 RGBA) on the file-backed
// topic "camera". Each frame is written once, straight into the shared chunk that subscribers
// will read; publish() hands over a reference, so its cost does not depend on the frame size.
//
//   frame_pub [--dir /dev/shm/shmbus-examples] [--count 60] [--fps 30] [--wait 10]
#include <capnp/message.h>

#include <cstdio>
#include <filesystem>
#include <thread>

#include "example_util.hpp"
#include "shmbus/shmbus.hpp"
#include "telemetry.capnp.h"

using shmbus::examples::CameraFrame;

constexpr std::uint32_t kWidth = 2048, kHeight = 1024, kBytesPerPixel = 4;
constexpr std::size_t kFrameBytes = std::size_t{kWidth} * kHeight * kBytesPerPixel;  // 8 MiB

int main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IOLBF, 0);  // line by line, even into a pipe or a log
  const std::filesystem::path dir = examples::bus_directory(argc, argv);
  const std::uint64_t count = examples::flag_u64(argc, argv, "--count", 60);
  const std::uint64_t fps = examples::flag_u64(argc, argv, "--fps", 30);
  const std::uint64_t wait_s = examples::flag_u64(argc, argv, "--wait", 10);

  shmbus::TopicConfig config;
  config.name = "camera";
  // One size class of frame-sized chunks (plus room for the message's other fields). The pool
  // is all the memory the topic will ever use: 8 x ~8 MiB, whatever subscribers do.
  config.size_classes = {{kFrameBytes + 4096, 8}};
  config.queue_depth = 4;  // chunks >= queue_depth + loans + samples held at once
  config.policy = shmbus::SlowSubscriberPolicy::drop_oldest;
  config.type_id = capnp::typeId<CameraFrame>();

  try {
    std::filesystem::create_directories(dir);
    std::filesystem::remove(dir / "camera.shmbus");
    shmbus::Topic topic = shmbus::Topic::create(
        config, shmbus::RegionOptions{.backing = shmbus::RegionOptions::Backing::file, .directory = dir});
    shmbus::Publisher<CameraFrame> pub(topic);
    std::printf("frame_pub: topic '%s' at %s (%zu MiB region), waiting for a subscriber\n",
                topic.name().c_str(), topic.path().c_str(), topic.mapping_size() >> 20);
    if (!examples::wait_for_subscribers(topic, 1, std::chrono::seconds(wait_s))) {
      std::printf("frame_pub: no subscriber after %llu s, giving up\n", static_cast<unsigned long long>(wait_s));
      std::filesystem::remove(topic.path());
      return 1;
    }

    const auto period = std::chrono::nanoseconds(1'000'000'000 / std::max<std::uint64_t>(fps, 1));
    auto next = std::chrono::steady_clock::now();
    int rc = 0;
    for (std::uint64_t seq = 0; seq < count; ++seq) {
      auto loan = pub.loan(kFrameBytes + 4096);  // first segment big enough for the whole frame
      if (!loan) {
        std::fprintf(stderr, "frame_pub: %s\n", pub.raw().explain(loan.status().code(), kFrameBytes).c_str());
        rc = 1;
        break;
      }
      CameraFrame::Builder frame = loan.init();
      frame.setSequence(seq);
      frame.setWidth(kWidth);
      frame.setHeight(kHeight);
      frame.setBytesPerPixel(kBytesPerPixel);
      capnp::Data::Builder pixels = frame.initPixels(kFrameBytes);  // in the shared chunk
      for (std::size_t i = 0; i < pixels.size(); ++i) {  // the "camera": a moving gradient
        pixels[i] = static_cast<std::uint8_t>(i + seq);
      }
      frame.setChecksum(examples::checksum({pixels.begin(), pixels.size()}));

      frame.setSendTimeNs(examples::monotonic_ns());
      if (shmbus::Status st = pub.publish(loan); !st) {  // hands over a reference, not 8 MiB
        std::fprintf(stderr, "frame_pub: publish #%llu: %s\n", static_cast<unsigned long long>(seq), st.name());
        rc = 1;
      } else if (seq % 10 == 0) {
        std::printf("frame_pub: frame %llu published\n", static_cast<unsigned long long>(seq));
      }
      next += period;
      std::this_thread::sleep_until(next);
    }
    std::filesystem::remove(topic.path());
    return rc;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "frame_pub: %s\n", e.what());
    return 1;
  }
}
