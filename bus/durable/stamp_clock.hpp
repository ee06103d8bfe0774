// The appender's clock for record stamps (durable layout rule 5): CLOCK_REALTIME read through
// the TSC. clock_gettime through the vDSO costs ~18 ns here (an ordered TSC read, the
// seqcount, the conversion); an unordered rdtsc ~8 ns. So a stamp is base_ns + (tsc -
// base_tsc) * ns-per-tick, re-based on clock_gettime once the base is 1 ms old: the rate is
// measured over the last such millisecond (no frequency table to trust; a pair of reads split
// by a preemption is not taken, nor a rate far from the last one unless three say so), so a
// stamp stays within tens of nanoseconds of clock_gettime, and follows NTP's slewing and steps
// within a millisecond (a step back is clamped by rule 5's max). Used only where /proc/cpuinfo has
// constant_tsc and nonstop_tsc (one rate in every P- and C-state, synchronised between CPUs);
// elsewhere, and until the first millisecond is measured, a stamp is clock_gettime itself.
// One per appender: plain fields, its thread only.
#pragma once

#include <cstdint>

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

#include "durable/segment.hpp"

namespace shmbus::detail {

// True when the TSC runs at one rate in every state on every CPU (read once per process).
bool invariant_tsc() noexcept;

class StampClock {
 public:
  std::uint64_t now() noexcept {
#if defined(__x86_64__)
    if (rate_q32_ != 0) [[likely]] {
      const std::uint64_t ticks = __rdtsc() - base_tsc_;
      if (ticks < rebase_ticks_) [[likely]] {
        return base_ns_ + static_cast<std::uint64_t>((static_cast<unsigned __int128>(ticks) * rate_q32_) >> 32);
      }
    }
#endif
    return rebase();
  }

 private:
  std::uint64_t rebase() noexcept;

  std::uint64_t base_tsc_ = 0;
  std::uint64_t base_ns_ = 0;
  std::uint64_t rate_q32_ = 0;      // nanoseconds per tick << 32; 0 = not measured (or no TSC)
  std::uint64_t rebase_ticks_ = 0;  // about 1 ms of ticks
  std::uint32_t disagreements_ = 0;  // rates measured in a row far from rate_q32_
  bool tsc_checked_ = false;
  bool tsc_usable_ = false;
};

}  // namespace shmbus::detail
