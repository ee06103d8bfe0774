// One log line per key per second at most: a flood of bad input from the network must not
// become a flood of log lines. What was held back is counted in the next line for that key.
#pragma once

#include <spdlog/spdlog.h>

#include <chrono>
#include <map>
#include <mutex>
#include <string>

namespace shmbus::bridge {

class LogLimiter {
 public:
  void warn(const std::string& key, const std::string& line) {
    const auto now = std::chrono::steady_clock::now();
    std::unique_lock lock(mutex_);
    Entry& e = entries_[key];
    if (now < e.next) {
      ++e.suppressed;
      return;
    }
    const unsigned long long suppressed = e.suppressed;
    e.suppressed = 0;
    e.next = now + std::chrono::seconds(1);
    lock.unlock();
    if (suppressed) spdlog::warn("{} (and {} more like it in the last second)", line, suppressed);
    else spdlog::warn("{}", line);
  }

 private:
  struct Entry {
    std::chrono::steady_clock::time_point next{};
    unsigned long long suppressed = 0;
  };
  std::mutex mutex_;
  std::map<std::string, Entry> entries_;
};

}  // namespace shmbus::bridge
