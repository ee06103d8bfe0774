// Marks the stretch in which a process holds a counted chunk reference that is in none of
// its slot's rows yet (or any more), so that a recoverer auditing the counts after a crash
// knows to leave the topic alone while such a stretch is open in a live process.
//
// Cost: two plain stores to the owner's own slot line.
#pragma once

#include <atomic>
#include <cstdint>

namespace shmbus::detail {

class UnrecordedWindow {
 public:
  explicit UnrecordedWindow(std::atomic<std::uint64_t>& op_seq) noexcept : op_seq_(op_seq) {
    // Relaxed: the reference-count RMW that follows is a release (or acq_rel) operation, so
    // an auditor that observes its effect (acquire) also observes this odd value.
    op_seq_.store(op_seq_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  ~UnrecordedWindow() {
    // Release: the row store made inside the window is visible to an auditor that reads
    // the even value (acquire).
    op_seq_.store(op_seq_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  }
  UnrecordedWindow(const UnrecordedWindow&) = delete;
  UnrecordedWindow& operator=(const UnrecordedWindow&) = delete;

 private:
  std::atomic<std::uint64_t>& op_seq_;
};

// UnrecordedWindow for a thread other than the slot owner's taking thread (a sample released
// on another thread). Several may overlap, so instead of a parity the word counts open windows
// (low 32 bits) and openings (high 32 bits); an auditor wants the low half 0 and the word
// unchanged across its look. Two locked instructions: this is not the hot path.
class ForeignUnrecordedWindow {
 public:
  explicit ForeignUnrecordedWindow(std::atomic<std::uint64_t>& windows) noexcept : windows_(windows) {
    // Relaxed: as UnrecordedWindow's opening store (the reference RMW that follows releases).
    windows_.fetch_add((std::uint64_t{1} << 32) + 1, std::memory_order_relaxed);
  }
  ~ForeignUnrecordedWindow() {
    // Release: as UnrecordedWindow's closing store.
    windows_.fetch_sub(1, std::memory_order_release);
  }
  ForeignUnrecordedWindow(const ForeignUnrecordedWindow&) = delete;
  ForeignUnrecordedWindow& operator=(const ForeignUnrecordedWindow&) = delete;

 private:
  std::atomic<std::uint64_t>& windows_;
};

}  // namespace shmbus::detail
