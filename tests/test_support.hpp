// Helpers for the multi-process tests: forked children with bounded waits, pipes used as
// barriers and report channels, unique names, temporary bus directories, and a self-checking
// payload format (sequence, publisher, FNV-1a checksum of the body).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <sys/types.h>
#include <thread>
#include <type_traits>

#include "shmbus/shmbus.hpp"

namespace shmbus::testing {

// Sanitizer builds run 5-20x slower: long tests divide their counts by this.
#ifdef SHMBUS_TEST_SCALE_DOWN
inline constexpr long kScaleDown = 20;
#else
inline constexpr long kScaleDown = 1;
#endif
inline long scaled(long n) { return n / kScaleDown > 0 ? n / kScaleDown : 1; }

// Exit codes shared by the children of every test; each test adds its own above kFirstFree.
enum ChildExit : int {
  kChildOk = 0,
  kChildThrew = 90,        // an exception escaped the child's body
  kChildTimedOut = 91,     // a bounded wait in the child ran out
  kChildBadData = 92,      // a checksum, sequence or content check failed
  kChildPipeFailed = 93,   // the parent went away or a pipe broke
  kChildFirstFree = 100,
};

// A name unique to this process and call: tests run in parallel under ctest -j.
std::string unique_name(const std::string& tag);

// A fresh directory under /dev/shm, removed with everything in it on destruction.
class TempDir {
 public:
  explicit TempDir(const std::string& tag);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const noexcept { return path_; }
  RegionOptions region_options() const;

 private:
  std::filesystem::path path_;
};

std::uint64_t fnv1a(std::span<const std::byte> bytes) noexcept;

// A pipe carrying fixed-size values, with bounded reads: a barrier ("ready", "go") or a
// report channel from a child. Both ends stay open in both processes after fork; each side
// uses its own end.
class Pipe {
 public:
  Pipe();
  ~Pipe();
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;

  bool write_bytes(const void* data, std::size_t size) noexcept;
  // False on timeout, EOF or error.
  bool read_bytes(void* data, std::size_t size, std::chrono::milliseconds timeout) noexcept;

  template <typename T>
  bool send(const T& value) noexcept {
    static_assert(std::is_trivially_copyable_v<T>);
    return write_bytes(&value, sizeof value);
  }
  template <typename T>
  std::optional<T> receive(std::chrono::milliseconds timeout = std::chrono::seconds(30)) noexcept {
    static_assert(std::is_trivially_copyable_v<T>);
    T value;
    if (!read_bytes(&value, sizeof value, timeout)) return std::nullopt;
    return value;
  }
  // One byte as a signal.
  bool notify() noexcept { return send<char>(1); }
  bool await(std::chrono::milliseconds timeout = std::chrono::seconds(30)) noexcept {
    return receive<char>(timeout).has_value();
  }

 private:
  int fds_[2] = {-1, -1};
};

// A forked child running `body`; the child exits with body's return value (kChildThrew if it
// throws) and never returns into the test framework. The destructor kills and reaps a child
// still running, so a failed assertion in the parent leaves no stray process behind.
class Child {
 public:
  static Child spawn(const std::function<int()>& body);
  Child(Child&& other) noexcept;
  Child& operator=(Child&&) = delete;
  ~Child();

  pid_t pid() const noexcept { return pid_; }
  // Waits up to `timeout` for the child to end; kills it on timeout. Returns the exit status,
  // or 128 + signal number when a signal ended it.
  int wait(std::chrono::milliseconds timeout = std::chrono::seconds(60));
  // SIGKILLs and reaps the child.
  void kill_and_reap();

 private:
  explicit Child(pid_t pid) : pid_(pid) {}
  pid_t pid_ = -1;
};

// A human-readable exit status for assertion messages.
std::string describe_exit(int status);

// ---- self-checking payloads ----
//
// Layout: Stamp, then `body_size` bytes derived from (publisher, sequence). The checksum is
// FNV-1a of the body, so a torn, stale or misdirected message fails the check.
struct Stamp {
  std::uint64_t sequence;   // the publisher's own counter
  std::uint32_t publisher;  // publisher id chosen by the test
  std::uint32_t body_size;
  std::uint64_t checksum;
  std::uint64_t extra;      // free for the test (an offset, a marker)
};
static_assert(sizeof(Stamp) == 32);

inline std::size_t stamped_size(std::uint32_t body_size) { return sizeof(Stamp) + body_size; }
// Writes a stamped message into `out` (at least stamped_size(body_size) bytes).
void write_stamped(std::span<std::byte> out, std::uint32_t publisher, std::uint64_t sequence,
                   std::uint32_t body_size, std::uint64_t extra = 0) noexcept;
// The stamp of a well-formed message, or nullopt when the size or checksum is wrong.
std::optional<Stamp> check_stamped(std::span<const std::byte> in) noexcept;

// Loans, writes a stamped message and publishes it. Returns the publish status (or the loan's
// error).
Status publish_stamped(RawPublisher& pub, std::uint32_t publisher, std::uint64_t sequence,
                       std::uint32_t body_size, std::uint64_t extra = 0) noexcept;

// A thread that destroys, in order, what it is handed (samples, loans): for tests of releases
// on another thread than the one that took or loaned. finish() (or the destructor) lets it
// destroy what is left, then joins it.
template <typename T>
class DestroyingThread {
 public:
  DestroyingThread() : thread_([this] { run(); }) {}
  ~DestroyingThread() { finish(); }
  DestroyingThread(const DestroyingThread&) = delete;
  DestroyingThread& operator=(const DestroyingThread&) = delete;

  void hand(T item) {
    std::lock_guard lock(mutex_);
    items_.push_back(std::move(item));
    ready_.notify_one();
  }
  void finish() {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
      ready_.notify_one();
    }
    if (thread_.joinable()) thread_.join();
  }

 private:
  void run() {
    std::unique_lock lock(mutex_);
    for (;;) {
      ready_.wait(lock, [&] { return done_ || !items_.empty(); });
      if (items_.empty()) return;
      T item = std::move(items_.front());
      items_.pop_front();
      lock.unlock();
      item = T();  // destroyed here, on this thread
      lock.lock();
    }
  }

  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<T> items_;
  bool done_ = false;
  std::thread thread_;  // last: starts once the members above exist
};

}  // namespace shmbus::testing
