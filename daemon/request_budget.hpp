// How many control requests one connection may make: a token bucket. A well-behaved client
// makes a handful of requests per topic it opens (openTopic, registerSlot, ...), so the
// defaults leave room for a process opening thousands of topics at start-up while one that
// floods the single-threaded daemon is refused, and then cut off, before it slows everyone
// else.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>

namespace shmbusd {

struct RequestLimits {
  std::uint32_t per_second = 2000;  // sustained rate; 0 = unlimited
  std::uint32_t burst = 4000;       // requests allowed at once before the rate applies
};

class RequestBudget {
 public:
  using Clock = std::chrono::steady_clock;

  explicit RequestBudget(const RequestLimits& limits = {}, Clock::time_point now = Clock::now())
      : limits_(limits), tokens_(static_cast<double>(limits.burst)), last_(now) {}

  // Spends one request; false when the connection is over its budget.
  bool admit(Clock::time_point now = Clock::now()) {
    if (limits_.per_second == 0) return true;
    double elapsed = std::chrono::duration<double>(now - last_).count();
    last_ = now;
    tokens_ = std::min(static_cast<double>(limits_.burst), tokens_ + elapsed * limits_.per_second);
    if (tokens_ >= 1.0) {
      tokens_ -= 1.0;
      return true;
    }
    ++refused_;
    return false;
  }

  std::uint64_t refused() const { return refused_; }
  // A connection refused as many requests as its burst allows is not going to stop: close it.
  bool should_close() const { return limits_.per_second != 0 && refused_ >= limits_.burst; }
  const RequestLimits& limits() const { return limits_; }

 private:
  RequestLimits limits_;
  double tokens_;
  Clock::time_point last_;
  std::uint64_t refused_ = 0;
};

}  // namespace shmbusd
