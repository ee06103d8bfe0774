// Raw cross-process futex calls on words in shared mappings. std::atomic::wait/notify do not
// work across processes with libstdc++ 12 (docs/linux-facts.md §6), so the bus uses futex(2) with
// the non-private operations.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>

namespace shmbus::detail {

// Sleeps while *word == expected, at most `timeout` (negative = forever). Returns false on
// timeout. Spurious returns are possible; callers re-check their condition.
bool futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected,
                std::chrono::nanoseconds timeout) noexcept;
void futex_wake_all(std::atomic<std::uint32_t>* word) noexcept;

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

inline std::uint64_t monotonic_ns() noexcept {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(
          std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

// Bounds of the data plane's waits (docs/usage.md, "Bounded waits"). A topic's block timeout
// is a setting any participant could have rewritten in the region before we opened it, so a
// wait never takes more than kMaxWaitNs from it, however long the setting says.
inline constexpr std::uint64_t kMaxWaitNs = 60'000'000'000ULL;
inline std::uint64_t bounded_wait_ns(std::chrono::nanoseconds setting) noexcept {
  return setting.count() <= 0 ? 0 : std::min<std::uint64_t>(static_cast<std::uint64_t>(setting.count()), kMaxWaitNs);
}
// A publisher waiting for the previous lap of its ring slot waits at least this long for a
// live claimant (a descheduled one on a busy machine), whatever the block timeout.
inline constexpr std::uint64_t kMinLapWaitNs = 1'000'000'000ULL;

}  // namespace shmbus::detail
