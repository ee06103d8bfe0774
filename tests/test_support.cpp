#include "test_support.hpp"

#include <atomic>
#include <stdexcept>
#include <utility>
#include <cerrno>
#include <csignal>
#include <fcntl.h>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace shmbus::testing {

namespace fs = std::filesystem;

std::string unique_name(const std::string& tag) {
  static std::atomic<unsigned> counter{0};
  return "t-" + tag + "-" + std::to_string(getpid()) + "-" + std::to_string(counter.fetch_add(1));
}

TempDir::TempDir(const std::string& tag) : path_(fs::path("/dev/shm") / unique_name(tag)) {
  fs::remove_all(path_);
  fs::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

RegionOptions TempDir::region_options() const {
  RegionOptions o;
  o.backing = RegionOptions::Backing::file;
  o.directory = path_;
  return o;
}

std::uint64_t fnv1a(std::span<const std::byte> bytes) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (std::byte b : bytes) {
    h ^= static_cast<std::uint8_t>(b);
    h *= 0x100000001b3ULL;
  }
  return h;
}

// ---------------------------------------------------------------- Pipe

Pipe::Pipe() {
  if (pipe2(fds_, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
}

Pipe::~Pipe() {
  close(fds_[0]);
  close(fds_[1]);
}

bool Pipe::write_bytes(const void* data, std::size_t size) noexcept {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::write(fds_[1], p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

bool Pipe::read_bytes(void* data, std::size_t size, std::chrono::milliseconds timeout) noexcept {
  char* p = static_cast<char*>(data);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (size > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() < 0) return false;
    pollfd pfd{fds_[0], POLLIN, 0};
    int rc = poll(&pfd, 1, static_cast<int>(left.count()));
    if (rc < 0 && errno == EINTR) continue;
    if (rc <= 0) return false;
    ssize_t n = ::read(fds_[0], p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

// ---------------------------------------------------------------- Child

Child Child::spawn(const std::function<int()>& body) {
  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    int code = kChildThrew;
    try {
      code = body();
    } catch (...) {
      code = kChildThrew;
    }
    _exit(code);  // never run the parent's atexit handlers or gtest's teardown
  }
  return Child(pid);
}

Child::Child(Child&& other) noexcept : pid_(std::exchange(other.pid_, -1)) {}

Child::~Child() {
  if (pid_ > 0) kill_and_reap();
}

namespace {
int decode(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}
}  // namespace

int Child::wait(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return -1;
  // A pidfd turns "child ended" into a pollable event: a bounded wait without polling loops.
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid_, 0));
  if (pidfd >= 0) {
    pollfd pfd{pidfd, POLLIN, 0};
    int rc;
    do {
      rc = poll(&pfd, 1, static_cast<int>(timeout.count()));
    } while (rc < 0 && errno == EINTR);
    close(pidfd);
    if (rc == 0) {
      kill_and_reap();
      return -2;  // timed out
    }
  }
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
  return decode(status);
}

void Child::kill_and_reap() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

std::string describe_exit(int status) {
  switch (status) {
    case -2: return "timed out (killed by the test)";
    case kChildOk: return "ok";
    case kChildThrew: return "exception in child";
    case kChildTimedOut: return "a wait in the child timed out";
    case kChildBadData: return "child saw bad data";
    case kChildPipeFailed: return "pipe to the parent failed";
    default:
      if (status > 128) return "killed by signal " + std::to_string(status - 128);
      return "exit status " + std::to_string(status);
  }
}

// ---------------------------------------------------------------- payloads

namespace {
void fill_body(std::span<std::byte> body, std::uint32_t publisher, std::uint64_t sequence) noexcept {
  // Cheap but content-dependent: every (publisher, sequence) gives different bytes.
  std::uint64_t x = sequence * 0x9E3779B97F4A7C15ULL + publisher + 1;
  for (std::size_t i = 0; i < body.size(); ++i) {
    x ^= x >> 29;
    x *= 0xBF58476D1CE4E5B9ULL;
    body[i] = static_cast<std::byte>(x >> 56);
  }
}
}  // namespace

void write_stamped(std::span<std::byte> out, std::uint32_t publisher, std::uint64_t sequence,
                   std::uint32_t body_size, std::uint64_t extra) noexcept {
  std::span<std::byte> body = out.subspan(sizeof(Stamp), body_size);
  fill_body(body, publisher, sequence);
  Stamp s{sequence, publisher, body_size, fnv1a(body), extra};
  std::memcpy(out.data(), &s, sizeof s);
}

std::optional<Stamp> check_stamped(std::span<const std::byte> in) noexcept {
  if (in.size() < sizeof(Stamp)) return std::nullopt;
  Stamp s;
  std::memcpy(&s, in.data(), sizeof s);
  if (in.size() != stamped_size(s.body_size)) return std::nullopt;
  if (fnv1a(in.subspan(sizeof(Stamp))) != s.checksum) return std::nullopt;
  return s;
}

Status publish_stamped(RawPublisher& pub, std::uint32_t publisher, std::uint64_t sequence,
                       std::uint32_t body_size, std::uint64_t extra) noexcept {
  Result<RawLoan> loan = pub.loan(stamped_size(body_size));
  if (!loan) return loan.code();
  write_stamped(loan->data(), publisher, sequence, body_size, extra);
  return pub.publish(std::move(loan.value()));
}

}  // namespace shmbus::testing
