// Write leases on the daemon's file-backed regions: notice, within milliseconds, when another
// process opens a region file for writing or truncates it, and revoke the region.
//
// Why a write lease: a read lease cannot be had on a file that anyone maps PROT_WRITE
// MAP_SHARED (docs/linux-facts.md §1), and every client does. But the daemon opens each region
// once (O_RDWR) and hands that very open file description to every client (SCM_RIGHTS), so
// the inode has exactly one writable file description and the kernel grants F_WRLCK on it
// even while clients map it. Any open(2) of the path by anybody else, and truncate(2), then
// breaks the lease and signals us.
//
// On a break, F_GETLEASE gives the target: F_UNLCK for an opener for writing or a truncate ->
// revoke (health word in the header, so every client call fails with region_lost; log who;
// rename the file aside; forget the topic so a later openTopic creates a fresh region).
// F_RDLCK for a read-only opener (a backup, `shmbus region inspect`) -> let it read: release
// the lease (one on an O_RDWR file cannot be downgraded) and re-arm it from the sweep once
// the reader is gone. O_RDONLY|O_TRUNC also shows as F_RDLCK: caught from the opener's flags
// in /proc (lease_breaker.hpp) or, failing that, from the file size shortly after.
//
// What a lease cannot see is covered only by the SIGBUS guard in every client: ftruncate
// through a client's own (shared) descriptor, and anything done while no daemon holds the
// lease (after a crash). The sweep also revokes a region whose file shrank.
//
// Lives on the thread that runs Daemon::run(): the signal is directed at that thread
// (F_SETOWN_EX F_OWNER_TID) and read from a signalfd there, so it works the same whether
// shmbusd is its own process or a thread of a test or an embedding program (a process-wide
// kj captureSignal would need the signal blocked in every thread before any was started).
#pragma once

#include <kj/async-io.h>
#include <kj/async-unix.h>

#include <signal.h>

#include <string>

#include "state.hpp"

namespace shmbusd {

class LeaseWatch final : kj::TaskSet::ErrorHandler {
 public:
  // The real-time signal the kernel sends on a lease break (F_SETSIG), so that si_fd names
  // the file. SIGRTMIN + 3: glibc keeps the first two for itself, kj uses none.
  static int signal_number() noexcept { return SIGRTMIN + 3; }

  // Call on the thread that runs the loop: blocks the signal there, opens the signalfd and
  // starts listening. Leases are taken by arm() and sweep().
  LeaseWatch(Daemon::State& daemon, kj::AsyncIoContext& io);
  // Releases every lease (F_UNLCK: a lease lives on the file description the clients keep,
  // so one left behind would stall the next opener of the path for lease-break-time).
  ~LeaseWatch();
  LeaseWatch(const LeaseWatch&) = delete;
  LeaseWatch& operator=(const LeaseWatch&) = delete;

  // Takes the write lease on a file-backed topic that has none; logs once (info) while it
  // cannot, and says so when it finally can.
  void arm(const std::string& name, TopicEntry& entry);
  // From the daemon's sweep: acts on breaks whose signal got lost, revokes regions whose file
  // shrank, and re-arms leases that are down.
  void sweep();
  // Stops serving `name` (file-backed or anonymous): marks the region revoked, renames a file
  // aside, forgets the topic and its registrations, logs `what_happened` and `who`; the next
  // openTopic creates a fresh region. Also for damage the sweep found (detail::find_damage()).
  void revoke(const std::string& name, const std::string& what_happened, const std::string& who);

 private:
  void taskFailed(kj::Exception&& e) override;
  kj::Promise<void> watch();
  // The lease of `name` is being broken towards `target` (F_GETLEASE).
  void on_break(const std::string& name, int target);
  // Revokes `name` if its file is shorter than its mapping; true if it did.
  bool revoke_if_shrunk(const std::string& name, const std::string& how);
  void check_size_after(const std::string& name, kj::Duration delay);

  Daemon::State& d_;
  kj::AsyncIoContext& io_;
  int sfd_ = -1;
  sigset_t old_mask_{};
  kj::Own<kj::UnixEventPort::FdObserver> observer_;
  kj::TaskSet tasks_;  // last: its promises use observer_
};

}  // namespace shmbusd
