// The process-wide SIGBUS guard. A region whose backing file is truncated under us raises
// SIGBUS on the next access to a lost page (docs/linux-facts.md §2). The guard turns that into an
// error for the caller instead of a crash:
//
//   * one handler per process, installed on first use; the previous handler is kept and every
//     fault outside a bus mapping is passed on to it (or, with none, the default action runs
//     and the process dies as it would have without us);
//   * a fault inside a registered mapping replaces the whole mapping, in place, with private
//     anonymous zero pages (mmap MAP_FIXED; a system call the handler may make), raises the
//     mapping's `lost` flag and returns, so the faulting load or store completes harmlessly;
//   * API calls check the flag on their way out and report Errc::region_lost.
//
// Cost on the hot path: one relaxed load of a process-local flag per call.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace shmbus::detail {

class SigbusGuard {
 public:
  // Installs the handler (once per process) and registers [base, base+size). `lost` is set to
  // 1 when the mapping is lost; it must outlive the registration.
  static void register_mapping(void* base, std::size_t size, std::atomic<std::uint32_t>* lost);
  static void unregister_mapping(void* base) noexcept;
  // Mappings registered at once, per process.
  static constexpr std::size_t kMaxMappings = 16384;
};

}  // namespace shmbus::detail
