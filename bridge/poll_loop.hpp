// The worker threads of the bridge (Exporter, JetStreamExporter, ServiceExporter,
// ServiceImporter): a thread that loops until stopped, looking for new topics or logs once a
// second, forwarding what is waiting, and when nothing moved either sleeping on something of
// the caller's (one topic: its futex) or backing off.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>

namespace shmbus::bridge {

// Until `stop`: `discover()` once a second; `pump()` returns whether anything moved; when
// nothing did, `wait_own()` may sleep itself (returns true) or the loop sleeps `step` longer
// each idle round, at most `most`.
template <typename Discover, typename Pump, typename WaitOwn>
void poll_until_stopped(const std::atomic<bool>& stop, std::chrono::microseconds step, std::chrono::microseconds most,
                        Discover discover, Pump pump, WaitOwn wait_own) {
  auto next_discovery = std::chrono::steady_clock::now();
  auto idle = std::chrono::microseconds(0);
  // Relaxed: a flag polled each round; nothing is published through it.
  while (!stop.load(std::memory_order_relaxed)) {
    if (std::chrono::steady_clock::now() >= next_discovery) {
      discover();
      next_discovery = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    }
    if (pump()) {
      idle = std::chrono::microseconds(0);
    } else if (!wait_own()) {
      idle = std::min(most, idle + step);
      std::this_thread::sleep_for(idle);
    }
  }
}

// A thread running `body(stop flag)` from start() until stop() (or destruction).
class LoopThread {
 public:
  LoopThread() = default;
  LoopThread(const LoopThread&) = delete;
  LoopThread& operator=(const LoopThread&) = delete;
  ~LoopThread() { stop(); }
  template <typename Body>
  void start(Body body) {
    thread_ = std::thread([this, body = std::move(body)]() mutable { body(stop_); });
  }
  void stop() {
    stop_.store(true, std::memory_order_relaxed);  // a flag polled by the loop; nothing to publish with it
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace shmbus::bridge
