// File leases on file-backed regions (see lease_watch.hpp).
#include "lease_watch.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <stdexcept>
#include <thread>
#include <vector>

#include "lease_breaker.hpp"
#include "topic_admin.hpp"

namespace shmbusd {

namespace {

// How many more times (1 ms apart) a lease break looks in /proc for its breaker: the longest
// the daemon's loop waits on one break, 20 ms, against the breaker's 45 s lease-break time.
constexpr int kBreakerLookups = 20;

const char* lease_name(int type) {
  return type == F_WRLCK ? "F_WRLCK" : type == F_RDLCK ? "F_RDLCK" : type == F_UNLCK ? "F_UNLCK" : "?";
}

// `<file>.revoked-<unix seconds>[-n]`: out of the way of the fresh region, and no longer
// ".shmbus", so no later daemon re-adopts it. The operator decides what to do with it.
std::filesystem::path aside_name(const std::filesystem::path& file) {
  std::string base = file.string() + ".revoked-" + std::to_string(time(nullptr));
  std::filesystem::path p = base;
  for (int n = 1; std::filesystem::exists(p); ++n) p = base + "-" + std::to_string(n);
  return p;
}

}  // namespace

LeaseWatch::LeaseWatch(Daemon::State& daemon, kj::AsyncIoContext& io) : d_(daemon), io_(io), tasks_(*this) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, signal_number());
  // Blocked in this thread only: the kernel directs the signal here (F_OWNER_TID) and it
  // waits, queued with its siginfo, until the signalfd reads it.
  pthread_sigmask(SIG_BLOCK, &set, &old_mask_);
  sfd_ = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (sfd_ < 0) throw std::runtime_error(std::string("signalfd for file leases: ") + strerror(errno));
  observer_ = kj::heap<kj::UnixEventPort::FdObserver>(io_.unixEventPort, sfd_, kj::UnixEventPort::FdObserver::OBSERVE_READ);
  tasks_.add(watch());
}

LeaseWatch::~LeaseWatch() {
  std::size_t released = 0;
  for (auto& [name, e] : d_.topics) {
    if (!e.leased) continue;
    if (fcntl(e.topic.fd(), F_SETLEASE, F_UNLCK) == 0) ++released;
    e.leased = false;
  }
  if (released) spdlog::info("released the file lease on {} region file(s)", released);
  // Signals queued before the release would kill the thread once unblocked: drain them.
  signalfd_siginfo si;
  while (read(sfd_, &si, sizeof si) == sizeof si) {
  }
  observer_ = nullptr;
  close(sfd_);
  pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
}

void LeaseWatch::taskFailed(kj::Exception&& e) { spdlog::error("file leases: internal: {}", e.getDescription().cStr()); }

void LeaseWatch::arm(const std::string& name, TopicEntry& e) {
  if (e.leased || e.topic.path().empty() || e.topic.revoked()) return;
  const int fd = e.topic.fd();
  // F_SETSIG and the owner are properties of the open file description (shared with the
  // clients, who never use them): a real-time signal with si_fd, to this thread.
  f_owner_ex owner{F_OWNER_TID, gettid()};
  if (fcntl(fd, F_SETSIG, signal_number()) != 0 || fcntl(fd, F_SETOWN_EX, &owner) != 0 ||
      fcntl(fd, F_SETLEASE, F_WRLCK) != 0) {
    int err = errno;
    if (!e.lease_wait_logged) {
      e.lease_wait_logged = true;
      if (err == EAGAIN) {
        spdlog::info("topic '{}': cannot take the write lease on {} yet: another open file description of it exists "
                     "(a read-only opener that still has it open or mapped, or clients of a previous daemon sharing "
                     "their own); retrying every sweep, the clients' SIGBUS guard covers meanwhile",
                     name, e.topic.path().string());
      } else {
        spdlog::warn("topic '{}': cannot take a write lease on {}: {}; changes to the file by other processes will "
                     "not be noticed, only the clients' SIGBUS guard protects them",
                     name, e.topic.path().string(), strerror(err));
      }
    }
    return;
  }
  e.leased = true;
  if (e.lease_wait_logged) spdlog::info("topic '{}': write lease on {} taken", name, e.topic.path().string());
  e.lease_wait_logged = false;
}

kj::Promise<void> LeaseWatch::watch() {
  return observer_->whenBecomesReadable().then([this]() {
    signalfd_siginfo si;
    while (read(sfd_, &si, sizeof si) == sizeof si) {
      spdlog::debug("file lease break signal for fd {}", si.ssi_fd);
    }
    // Look at every leased file, not only si_fd's: signals can coalesce or be lost when the
    // real-time queue is full (the kernel then sends SIGIO, which we do not take). The
    // sweep looks again every 500 ms for the same reason.
    std::vector<std::pair<std::string, int>> broken;
    for (auto& [name, e] : d_.topics) {
      if (!e.leased) continue;
      int now = fcntl(e.topic.fd(), F_GETLEASE);
      if (now != F_WRLCK) broken.emplace_back(name, now);
    }
    for (auto& [name, target] : broken) on_break(name, target);
    return watch();
  });
}

void LeaseWatch::on_break(const std::string& name, int target) {
  auto it = d_.topics.find(name);
  if (it == d_.topics.end()) return;
  TopicEntry& e = it->second;
  struct stat st {};
  fstat(e.topic.fd(), &st);
  std::vector<LeaseBreaker> breakers = find_lease_breakers(st.st_dev, st.st_ino);
  // The signal can reach us before the breaker has gone to sleep in its open(2), when /proc
  // still shows it running (seen under ASan: a truncating reader taken for a reader). It waits
  // for us until we let go, so look again for a few milliseconds before calling it a reader.
  const auto any_confirmed = [](const std::vector<LeaseBreaker>& found) {
    for (const LeaseBreaker& b : found) {
      if (b.confirmed) return true;
    }
    return false;
  };
  for (int i = 0; target != F_UNLCK && i < kBreakerLookups && !any_confirmed(breakers); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    breakers = find_lease_breakers(st.st_dev, st.st_ino);
  }
  std::string who = describe_lease_breakers(breakers);
  bool truncating_reader = false;
  for (const LeaseBreaker& b : breakers) truncating_reader |= b.confirmed && b.truncates;
  if (target == F_UNLCK) {
    // A writer's open or truncate(2) (or the break time ran out: same thing, it goes ahead).
    revoke(name, "is being opened for writing or truncated by another process", who);
    return;
  }
  if (truncating_reader) {
    // O_RDONLY|O_TRUNC: the kernel breaks towards F_RDLCK (it looks at the access mode only),
    // but the file is truncated the moment we let go.
    revoke(name, "is being opened with O_TRUNC (truncated) by another process", who);
    return;
  }
  // A reader: nothing it does can hurt the clients. Let it through; the sweep re-arms once it
  // has closed and unmapped the file.
  fcntl(e.topic.fd(), F_SETLEASE, F_UNLCK);
  e.leased = false;
  spdlog::info("topic '{}': {} is being opened read-only (lease break to {}) by {}; released the write lease for it "
               "(a lease on a read-write file cannot be downgraded), it is re-armed once the reader is gone",
               name, e.topic.path().string(), lease_name(target), who);
  // A truncating reader we could not see in /proc truncates right after we let go: look.
  check_size_after(name, 10 * kj::MILLISECONDS);
  check_size_after(name, 50 * kj::MILLISECONDS);
  check_size_after(name, 200 * kj::MILLISECONDS);
}

void LeaseWatch::check_size_after(const std::string& name, kj::Duration delay) {
  auto it = d_.topics.find(name);
  if (it == d_.topics.end()) return;
  struct stat st {};
  fstat(it->second.topic.fd(), &st);
  const dev_t dev = st.st_dev;
  const ino_t ino = st.st_ino;
  tasks_.add(io_.provider->getTimer().afterDelay(delay).then([this, name, dev, ino]() {
    auto it = d_.topics.find(name);
    if (it == d_.topics.end()) return;
    struct stat now {};
    // The same region, not a fresh one created under the name since.
    if (fstat(it->second.topic.fd(), &now) != 0 || now.st_dev != dev || now.st_ino != ino) return;
    revoke_if_shrunk(name, "was truncated by a read-only opener (O_RDONLY|O_TRUNC) that the lease let through");
  }));
}

bool LeaseWatch::revoke_if_shrunk(const std::string& name, const std::string& how) {
  auto it = d_.topics.find(name);
  if (it == d_.topics.end() || it->second.topic.path().empty()) return false;
  struct stat st {};
  if (fstat(it->second.topic.fd(), &st) != 0) return false;
  const std::size_t want = it->second.topic.mapping_size();
  if (static_cast<std::uint64_t>(st.st_size) >= want) return false;
  revoke(name, how + " (" + std::to_string(st.st_size) + " of " + std::to_string(want) + " bytes left)",
         "unknown: the kernel reports no truncation through an existing descriptor");
  return true;
}

void LeaseWatch::sweep() {
  std::vector<std::string> names;
  for (auto& [name, e] : d_.topics) {
    if (!e.topic.path().empty()) names.push_back(name);
  }
  for (const std::string& name : names) {
    auto it = d_.topics.find(name);
    if (it == d_.topics.end()) continue;
    TopicEntry& e = it->second;
    if (e.leased) {
      int now = fcntl(e.topic.fd(), F_GETLEASE);
      if (now != F_WRLCK) {
        on_break(name, now);
        continue;
      }
    }
    // ftruncate through a client's own descriptor breaks no lease; the size tells.
    if (revoke_if_shrunk(name, "shrank under its mapping (ftruncate through a descriptor a client holds, or "
                               "a change the lease could not see)")) {
      continue;
    }
    arm(name, e);
  }
}

void LeaseWatch::revoke(const std::string& name, const std::string& what_happened, const std::string& who) {
  auto it = d_.topics.find(name);
  if (it == d_.topics.end()) return;
  TopicEntry& e = it->second;
  const std::filesystem::path file = e.topic.path();
  // First the clients: from this store on every call on the region fails with region_lost.
  shmbus::detail::revoke(e.topic);
  // Out of the way, so a fresh region can be created under the same name. rename(2) changes
  // neither the inode nor anybody's mapping or descriptor, and breaks no lease; the opener
  // already resolved the path and gets the old inode.
  std::filesystem::path aside = file.empty() ? file : aside_name(file);
  std::string moved;
  if (file.empty()) {
    moved = "an anonymous region (nothing to rename)";
  } else if (::rename(file.c_str(), aside.c_str()) == 0) {
    moved = "renamed to " + aside.string();
  } else {
    moved = "could not rename it aside (" + std::string(strerror(errno)) + ")";
    aside = file;
  }
  // Only now let the opener through.
  if (e.leased) fcntl(e.topic.fd(), F_SETLEASE, F_UNLCK);
  e.leased = false;
  spdlog::error("topic '{}': region {} {}; by {}. Revoked: its clients now get region_lost; the file was {}; "
                "the next openTopic of '{}' creates a fresh region",
                name, file.empty() ? std::string("(anonymous)") : "file " + file.string(), what_happened, who, moved,
                name);
  // Registrations name the topic; a fresh region under that name must not match them.
  std::size_t dropped = 0;
  for (auto& [id, client] : d_.clients) {
    dropped += std::erase_if(client->regs, [&](const SlotRegistration& r) { return r.topic == name; });
  }
  if (dropped) spdlog::info("topic '{}': forgot {} registration(s) on the revoked region", name, dropped);
  RevokedTopic r{name, e.topic.config(), aside, e.topic.mapping_size(), e.creator_uid};
  d_.revoked.push_back(std::move(r));
  if (d_.revoked.size() > Daemon::State::kMaxRevokedListed) d_.revoked.erase(d_.revoked.begin());
  // Drops the daemon's mapping and descriptor: the file may be truncated under it any moment.
  d_.topics.erase(it);
}

}  // namespace shmbusd
