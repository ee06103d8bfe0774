// Raw cross-process futex calls on words in shared mappings. std::atomic::wait/notify do not
// work across processes with libstdc++ 12 (docs/linux-facts.md §6), so the bus uses futex(2) with
// the non-private operations.
#pragma once

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

}  // namespace shmbus::detail
