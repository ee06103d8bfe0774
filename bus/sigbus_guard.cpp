#include "sigbus_guard.hpp"

#include <csignal>
#include <cstring>
#include <mutex>
#include <sys/mman.h>

#include "shmbus/error.hpp"

namespace shmbus::detail {
namespace {

// A lock-free table the signal handler can scan. Registration (rare) takes a mutex against
// other registrations only; the handler never locks. An entry is published by storing `base`
// last with release, and retired by clearing `base` first.
struct Entry {
  std::atomic<std::uintptr_t> base{0};
  std::atomic<std::size_t> size{0};
  std::atomic<std::atomic<std::uint32_t>*> lost{nullptr};
};
static_assert(std::atomic<std::uintptr_t>::is_always_lock_free);
static_assert(std::atomic<std::atomic<std::uint32_t>*>::is_always_lock_free);

Entry g_entries[SigbusGuard::kMaxMappings];
std::atomic<std::size_t> g_high_water{0};  // entries at or above are unused
std::mutex g_register_mutex;
struct sigaction g_previous {};
std::once_flag g_installed;

void pass_on(int sig, siginfo_t* info, void* context) {
  const struct sigaction& prev = g_previous;
  if ((prev.sa_flags & SA_SIGINFO) != 0 && prev.sa_sigaction != nullptr) {
    prev.sa_sigaction(sig, info, context);
    return;
  }
  if (prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN && prev.sa_handler != nullptr) {
    prev.sa_handler(sig);
    return;
  }
  // No handler of the application's: die as we would have without the guard. Returning
  // re-executes the faulting access, which faults again under the default action.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(SIGBUS, &dfl, nullptr);
  if (info->si_code <= 0) raise(SIGBUS);  // sent by kill(): no access to re-execute
}

void on_sigbus(int sig, siginfo_t* info, void* context) {
  auto addr = reinterpret_cast<std::uintptr_t>(info->si_addr);
  // Acquire: pairs with the release store of `base` in register_mapping.
  std::size_t n = g_high_water.load(std::memory_order_acquire);
  if (info->si_code > 0) {  // a real fault (BUS_ADRERR...), not kill(SIGBUS)
    for (std::size_t i = 0; i < n; ++i) {
      std::uintptr_t base = g_entries[i].base.load(std::memory_order_acquire);
      std::size_t size = g_entries[i].size.load(std::memory_order_relaxed);
      if (base == 0 || addr < base || addr - base >= size) continue;
      int saved_errno = errno;
      // Swap the lost file pages for zero pages at the same address: every access by any
      // thread now succeeds, and the API reports the loss through the flag.
      mmap(reinterpret_cast<void*>(base), size, PROT_READ | PROT_WRITE,
           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
      errno = saved_errno;
      if (auto* lost = g_entries[i].lost.load(std::memory_order_relaxed)) {
        lost->store(1, std::memory_order_release);  // release: pairs with the API's acquire check
      }
      return;
    }
  }
  pass_on(sig, info, context);
}

void install() {
  struct sigaction sa {};
  sa.sa_sigaction = on_sigbus;
  // SA_NODEFER: a second fault (in another mapping, or passed on) must not find SIGBUS
  // blocked, which would kill the process (docs/linux-facts.md §2).
  sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGBUS, &sa, &g_previous) != 0) {
    throw Error(Errc::system_error, std::string("installing the SIGBUS guard: ") + std::strerror(errno));
  }
}

}  // namespace

void SigbusGuard::register_mapping(void* base, std::size_t size, std::atomic<std::uint32_t>* lost) {
  std::call_once(g_installed, install);
  std::lock_guard<std::mutex> lock(g_register_mutex);
  std::size_t n = g_high_water.load(std::memory_order_relaxed);
  for (std::size_t i = 0; i <= n && i < kMaxMappings; ++i) {
    Entry& e = g_entries[i];
    if (e.base.load(std::memory_order_relaxed) != 0) continue;
    e.size.store(size, std::memory_order_relaxed);
    e.lost.store(lost, std::memory_order_relaxed);
    // Release: a handler that sees this base (acquire) sees size and lost.
    e.base.store(reinterpret_cast<std::uintptr_t>(base), std::memory_order_release);
    if (i == n) g_high_water.store(n + 1, std::memory_order_release);
    return;
  }
  throw Error(Errc::system_error, "SIGBUS guard: more than " + std::to_string(kMaxMappings) +
                                      " shmbus regions mapped in this process");
}

void SigbusGuard::unregister_mapping(void* base) noexcept {
  std::lock_guard<std::mutex> lock(g_register_mutex);
  std::size_t n = g_high_water.load(std::memory_order_relaxed);
  for (std::size_t i = 0; i < n; ++i) {
    if (g_entries[i].base.load(std::memory_order_relaxed) == reinterpret_cast<std::uintptr_t>(base)) {
      g_entries[i].base.store(0, std::memory_order_release);
      return;
    }
  }
}

}  // namespace shmbus::detail
