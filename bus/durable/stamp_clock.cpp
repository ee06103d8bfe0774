#include "durable/stamp_clock.hpp"

#include <fstream>
#include <string>

namespace shmbus::detail {

namespace {
constexpr std::uint64_t kRebaseNs = 1'000'000;
// A (tsc, realtime) pair whose two TSC reads are further apart than this was preempted
// between them: not a base.
constexpr std::uint64_t kPairMaxNs = 5'000;
// NTP slews CLOCK_REALTIME by at most 500 ppm: a rate further than 1000 ppm from the last one is
// a bad measurement (or a clock step), taken only when three in a row say so.
constexpr std::uint64_t kRateToleranceDiv = 1000;
}  // namespace

bool invariant_tsc() noexcept {
  static const bool usable = [] {
#if defined(__x86_64__)
    try {
      std::ifstream in("/proc/cpuinfo");
      for (std::string line; std::getline(in, line);) {
        if (line.rfind("flags", 0) != 0) continue;
        line += " ";
        return line.find(" constant_tsc ") != std::string::npos && line.find(" nonstop_tsc ") != std::string::npos;
      }
    } catch (...) {
    }
#endif
    return false;
  }();
  return usable;
}

std::uint64_t StampClock::rebase() noexcept {
#if defined(__x86_64__)
  if (!tsc_checked_) {
    tsc_checked_ = true;
    tsc_usable_ = invariant_tsc();
  }
  if (tsc_usable_) {
    // The tightest of three (tsc, realtime) pairs: the TSC read halfway through clock_gettime.
    std::uint64_t tsc = 0, ns = 0, gap = ~0ull;
    for (int i = 0; i < 3; ++i) {
      const std::uint64_t t0 = __rdtsc();
      const std::uint64_t n = realtime_ns();
      const std::uint64_t t1 = __rdtsc();
      if (t1 >= t0 && t1 - t0 < gap) gap = t1 - t0, tsc = t0 + (t1 - t0) / 2, ns = n;
    }
    const bool tight = rate_q32_ == 0 || ((static_cast<unsigned __int128>(gap) * rate_q32_) >> 32) < kPairMaxNs;
    if (!tight) return ns;  // preempted three times: try again at the next stamp
    if (base_ns_ != 0 && ns > base_ns_ + kRebaseNs / 2 && tsc > base_tsc_) {
      const auto rate = static_cast<std::uint64_t>((static_cast<unsigned __int128>(ns - base_ns_) << 32) / (tsc - base_tsc_));
      const std::uint64_t off = rate > rate_q32_ ? rate - rate_q32_ : rate_q32_ - rate;
      if (rate_q32_ == 0 || off <= rate_q32_ / kRateToleranceDiv || ++disagreements_ >= 3) {
        rate_q32_ = rate;
        disagreements_ = 0;
        rebase_ticks_ = static_cast<std::uint64_t>((static_cast<unsigned __int128>(kRebaseNs) << 32) / rate_q32_);
      }
      base_tsc_ = tsc;
      base_ns_ = ns;
    } else if (base_ns_ == 0 || ns < base_ns_ || tsc < base_tsc_) {
      base_tsc_ = tsc;  // the first pair (or the clock stepped back): measure from here
      base_ns_ = ns;
    }
    return ns;
  }
#endif
  return realtime_ns();
}

}  // namespace shmbus::detail
