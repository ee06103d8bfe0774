// Cache-line prefetches for the hot path.
#pragma once

namespace shmbus::detail {

// Asks for the line holding `p` in a state this core may write (exclusive), so that a store
// to it later does not wait for the line to leave another core's cache. Not
// __builtin_prefetch(p, 1): without -mprfchw (not in GCC's baseline x86-64 target) GCC emits
// a read prefetch for it, which brings the line shared, and the store then still waits for
// the other core to give it up (bench/NOTES.md: ~0.15 us per message in one placement).
// PREFETCHW is in every x86-64 CPU this library targets (AMD since K8, Intel since
// Broadwell); older Intel CPUs execute its encoding as a no-op.
inline void prefetch_for_write(const void* p) noexcept {
#if defined(__x86_64__)
  asm volatile("prefetchw %0" : : "m"(*static_cast<const char*>(p)));
#else
  __builtin_prefetch(p, 1);
#endif
}

}  // namespace shmbus::detail
