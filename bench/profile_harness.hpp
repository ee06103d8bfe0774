// What shmbus_profile (profile_hotpath.cpp) and shmbus_profile_service (profile_service.cpp)
// share: the iteration count argument and the run of the noinline loop that callgrind's
// --toggle-collect names. The loop's checksum goes to stdout (so that the compiler keeps the
// loop); its wall time per iteration to stderr, for a quick look outside valgrind (one
// process: no cache line crosses between cores, so it is not a latency).
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace shmbus_profile {

inline long iterations(int argc, char** argv, long fallback = 100000) {
  return argc > 1 ? std::atol(argv[1]) : fallback;
}

// Runs `loop(n)` (returning its checksum) once, timed.
template <typename Loop>
int run(const char* what, long n, Loop&& loop) {
  const auto start = std::chrono::steady_clock::now();
  const std::uint64_t sum = loop(n);
  const std::chrono::duration<double, std::nano> took = std::chrono::steady_clock::now() - start;
  std::printf("%lu\n", static_cast<unsigned long>(sum));
  std::fprintf(stderr, "%s: %ld iterations, %.1f ns each\n", what, n, n > 0 ? took.count() / static_cast<double>(n) : 0.0);
  return 0;
}

}  // namespace shmbus_profile
