// What the durable crash tests share (tests/durable_crash_test.cpp for the ordinary appender,
// tests/durable/durable_exclusive_test.cpp for the exclusive one): a word shared with forked
// children, a reader that checks every message it drains, and the appending loop a child runs
// until it is killed.
#pragma once

#include <gtest/gtest.h>

#include <sys/mman.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>

#include "durable/segment.hpp"
#include "shmbus/durable.hpp"
#include "test_support.hpp"

namespace shmbus::testing {

inline constexpr std::uint64_t kNoSequence = ~0ull;

// Words in memory shared with forked children.
struct SharedWords {
  SharedWords() {
    void* p = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("mmap of the shared words failed");
    words = static_cast<std::atomic<std::uint64_t>*>(p);
  }
  ~SharedWords() { munmap(words, 4096); }
  SharedWords(const SharedWords&) = delete;
  SharedWords& operator=(const SharedWords&) = delete;
  std::atomic<std::uint64_t>* words;
};

// Reads all there is now, checking every message: strictly increasing log sequences
// (tombstones may leave gaps) and intact payloads whose stamp carries the sequence the writer
// was given. `last` is the last sequence read (or kNoSequence).
struct CheckedReader {
  DurableReader reader;
  std::uint64_t next_expected = 0;
  std::uint64_t messages = 0;
  std::uint64_t last = kNoSequence;
  void drain() {
    for (;;) {
      Result<DurableSample> s = reader.next();
      if (!s) {
        ASSERT_EQ(s.code(), Errc::no_data) << reader.last_error();
        return;
      }
      ASSERT_GE(s->sequence, next_expected);
      std::optional<Stamp> stamp = check_stamped(s->data);
      ASSERT_TRUE(stamp.has_value()) << "half or corrupt message at sequence " << s->sequence;
      ASSERT_EQ(stamp->sequence, s->sequence);
      next_expected = s->sequence + 1;
      last = s->sequence;
      ++messages;
    }
  }
};

// A child's body: appends stamped messages of varying sizes as publisher 2 until it is
// killed, storing each returned sequence in `last_returned`, and says on `streaming` once it
// has appended `before_ready` (so that the parent's kill lands mid-stream). Returns only on
// failure, with a kChild* code.
inline int append_until_killed(DurableAppender& log, std::atomic<std::uint64_t>& last_returned, Pipe& streaming,
                               std::uint32_t before_ready) {
  for (std::uint32_t i = 0;; ++i) {
    std::uint32_t body = 16 + (i * 37) % 900;
    Result<DurableLoan> loan = log.loan(stamped_size(body));
    if (!loan) return kChildFirstFree + static_cast<int>(loan.code());
    write_stamped(loan->data(), 2, loan->sequence(), body);
    if (!log.publish(*loan)) return kChildFirstFree;
    // Release: the parent reads it (acquire) after the kill and expects this message.
    last_returned.store(loan->sequence(), std::memory_order_release);
    if (i + 1 == before_ready && !streaming.notify()) return kChildPipeFailed;
  }
}

// Hand-builds in `segment_file` what a holder killed between its next_sequence and
// write_offset stores leaves: the append lock held by a process that is gone (our pid with
// another start time: a reused pid), next_sequence already advanced.
inline void tear_a_claim_as_a_dead_holder(const std::filesystem::path& segment_file) {
  auto seg = detail::DurableSegment::open(segment_file);
  seg->header().append_lock.store((static_cast<std::uint64_t>(getpid()) << 32) | 0xdeadu);
  seg->header().next_sequence.fetch_add(1);
}

// After tear_a_claim_as_a_dead_holder() on a log of ten messages: `log`'s next loan takes the
// lock over at once, repairs the torn claim (sequence 10 again), and a reader of `topic` finds
// all eleven messages intact.
inline void expect_the_torn_claim_repaired(DurableAppender& log, const std::filesystem::path& dir,
                                           const std::string& topic) {
  using namespace std::chrono_literals;
  auto t0 = std::chrono::steady_clock::now();
  Result<DurableLoan> loan = log.loan(stamped_size(8));
  ASSERT_TRUE(loan) << loan.name() << " " << log.last_error();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 100ms);
  EXPECT_EQ(loan->sequence(), 10u);
  write_stamped(loan->data(), 1, loan->sequence(), 8);
  ASSERT_TRUE(log.publish(*loan));
  CheckedReader r{DurableReader::oldest(dir, topic)};
  ASSERT_NO_FATAL_FAILURE(r.drain());
  EXPECT_EQ(r.messages, 11u);
}

}  // namespace shmbus::testing
