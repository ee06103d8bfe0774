#include "service/service_region.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include "open_region.hpp"
#include "process_identity.hpp"
#include "region.hpp"
#include "shmbus/error.hpp"
#include "shmbus/service.hpp"
#include "sigbus_guard.hpp"

namespace shmbus::detail {
namespace {

[[noreturn]] void corrupt(const std::string& what, const std::string& why) {
  throw Error(Errc::region_corrupt, what + ": service region " + why);
}

}  // namespace

std::uint64_t ServiceRegion::size_for(std::uint32_t servers, std::uint32_t clients, std::uint32_t calls) noexcept {
  std::uint64_t size = sizeof(ServiceHeader) + std::uint64_t{servers} * sizeof(ServerRow) +
                       std::uint64_t{clients} * sizeof(ClientRow) + std::uint64_t{clients} * calls * sizeof(CallWord);
  return (size + 4095) / 4096 * 4096;
}

void ServiceRegion::validate(const ServiceHeader& h, std::uint64_t size, const std::string& what) {
  if (h.magic != kServiceMagic) throw Error(Errc::not_a_region, what + ": not a shmbus service region (magic)");
  if (h.layout_version != kServiceLayoutVersion) {
    throw Error(Errc::unknown_layout_version, what + ": service layout version " + std::to_string(h.layout_version) +
                                                  ", this library knows " + std::to_string(kServiceLayoutVersion));
  }
  if (h.header_size != sizeof(ServiceHeader)) corrupt(what, "header_size " + std::to_string(h.header_size));
  if (h.max_servers == 0 || h.max_servers > kMaxServers) corrupt(what, "max_servers " + std::to_string(h.max_servers));
  if (h.max_clients == 0 || h.max_clients > kMaxServiceClients) {
    corrupt(what, "max_clients " + std::to_string(h.max_clients));
  }
  if (h.calls_per_client == 0 || h.calls_per_client > kMaxCallsPerClient) {
    corrupt(what, "calls_per_client " + std::to_string(h.calls_per_client));
  }
  if (h.region_size != size_for(h.max_servers, h.max_clients, h.calls_per_client) || h.region_size > size) {
    corrupt(what, "region_size " + std::to_string(h.region_size) + " does not fit its tables or the file (" +
                      std::to_string(size) + " bytes)");
  }
  if ((h.flags & ~kServiceAnonymous) != 0) corrupt(what, "flags " + std::to_string(h.flags));
  if (std::memchr(h.name, 0, sizeof h.name) == nullptr || h.name[0] == 0) corrupt(what, "name not terminated");
}

std::shared_ptr<ServiceRegion> ServiceRegion::create(const ServiceConfig& c, const std::filesystem::path& path,
                                                     unsigned file_mode) {
  const std::string what = "service '" + c.name + "'";
  auto bad = [&](const std::string& why) { throw Error(Errc::invalid_config, what + ": " + why); };
  if (c.name.empty() || c.name.size() > kServiceNameMax) bad("name must be 1.." + std::to_string(kServiceNameMax) + " bytes");
  if (c.max_servers == 0 || c.max_servers > kMaxServers) bad("max_servers must be 1.." + std::to_string(kMaxServers));
  if (c.max_clients == 0 || c.max_clients > kMaxServiceClients) {
    bad("max_clients must be 1.." + std::to_string(kMaxServiceClients));
  }
  if (c.max_calls_per_client == 0 || c.max_calls_per_client > kMaxCallsPerClient) {
    bad("max_calls_per_client must be 1.." + std::to_string(kMaxCallsPerClient));
  }
  std::shared_ptr<ServiceRegion> r(new ServiceRegion());
  r->name_ = c.name;
  r->path_ = path;
  const std::uint64_t size = size_for(c.max_servers, c.max_clients, c.max_calls_per_client);
  r->fd_ = path.empty() ? create_sealed_memfd("service:" + c.name, size) : create_reserved_file(path, size, file_mode);
  try {
    r->map(size, true);
  } catch (...) {
    if (!path.empty()) unlink(path.c_str());
    throw;
  }
  // Fresh memory is zero: every row free, every call word ended-or-unused. The header goes
  // last; nobody maps the region before create() returns.
  ServiceHeader& h = *r->header_;
  h.layout_version = kServiceLayoutVersion;
  h.header_size = sizeof(ServiceHeader);
  h.region_size = size;
  h.max_servers = c.max_servers;
  h.max_clients = c.max_clients;
  h.calls_per_client = c.max_calls_per_client;
  h.flags = path.empty() ? kServiceAnonymous : 0;
  h.request_type_id = c.request_type_id;
  h.response_type_id = c.response_type_id;
  std::memcpy(h.name, c.name.data(), c.name.size());
  h.magic = kServiceMagic;
  r->map(size, false);  // sets the table pointers from the header just written
  return r;
}

std::shared_ptr<ServiceRegion> ServiceRegion::open_file(const std::filesystem::path& path) {
  std::shared_ptr<ServiceRegion> r(new ServiceRegion());
  r->path_ = path;
  r->fd_ = open_region_path(path, O_RDWR, std::chrono::milliseconds(2000));
  std::uint64_t size = file_size(r->fd_, path.string());
  if (size < sizeof(ServiceHeader)) {
    throw Error(Errc::region_too_short, path.string() + ": " + std::to_string(size) + " bytes, shorter than a service header");
  }
  r->map(size, false);
  return r;
}

std::shared_ptr<ServiceRegion> ServiceRegion::open_fd(int fd) {
  std::shared_ptr<ServiceRegion> r(new ServiceRegion());
  r->fd_ = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (r->fd_ < 0) throw_errno("duplicating a service region's descriptor");
  const std::string what = "service region (fd " + std::to_string(fd) + ")";
  std::uint64_t size = file_size(r->fd_, what);
  if (size < sizeof(ServiceHeader)) {
    throw Error(Errc::region_too_short, what + ": " + std::to_string(size) + " bytes, shorter than a service header");
  }
  r->map(size, false);
  // A memfd must be sealed against truncation; a file is the SIGBUS guard's to watch.
  if ((r->header_->flags & kServiceAnonymous) != 0) check_seals(r->fd_, what);
  return r;
}

void ServiceRegion::map(std::uint64_t size, bool created) {
  const std::string what = path_.empty() ? "service '" + name_ + "'" : path_.string();
  if (base_ == nullptr) {
    base_ = static_cast<std::byte*>(map_shared(fd_, size, what));
    size_ = size;
    SigbusGuard::register_mapping(base_, size_, &lost_);
    guarded_ = true;
    header_ = reinterpret_cast<ServiceHeader*>(base_);
  }
  if (created) return;
  validate(*header_, size_, what);
  name_ = header_->name;
  // Copies of the validated counts: every process that maps the region can rewrite its
  // header, and the tables' bounds must not move under us (nor under the daemon's sweep).
  max_servers_ = header_->max_servers;
  max_clients_ = header_->max_clients;
  calls_per_client_ = header_->calls_per_client;
  servers_ = reinterpret_cast<ServerRow*>(base_ + sizeof(ServiceHeader));
  clients_ = reinterpret_cast<ClientRow*>(servers_ + max_servers_);
  calls_ = reinterpret_cast<CallWord*>(clients_ + max_clients_);
}

ServiceRegion::~ServiceRegion() {
  if (guarded_) SigbusGuard::unregister_mapping(base_);
  if (base_ != nullptr) munmap(base_, size_);
  if (fd_ >= 0) close(fd_);
}

template <typename Row>
bool ServiceRegion::owner_dead(const Row& row) noexcept {
  // Relaxed: pid and owner were published by the row's kRowActive store, which the caller's
  // acquire load of state saw.
  return owner_liveness(row.pid.load(std::memory_order_relaxed), row.owner) == Liveness::dead;
}

template <typename Row>
std::uint32_t ServiceRegion::take_row(Row* rows, std::uint32_t count, const char* what, Errc full) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    for (std::uint32_t i = 0; i < count; ++i) {
      std::uint32_t expected = kRowFree;
      // Acquire: pairs with the release store of kRowFree by the row's previous owner, so its
      // last writes are done before ours.
      if (!rows[i].state.compare_exchange_strong(expected, kRowClaiming, std::memory_order_acquire)) continue;
      ProcessIdentity me = current_process();
      rows[i].pid.store(me.pid, std::memory_order_relaxed);
      record_owner(rows[i].owner);
      rows[i].generation.fetch_add(1, std::memory_order_relaxed);
      // Release: publishes pid, owner and generation with the row (rule 1).
      rows[i].state.store(kRowActive, std::memory_order_release);
      return i;
    }
    if (reclaim_dead_rows() == 0) break;
  }
  throw Error(full, "service '" + name_ + "': all " + std::to_string(count) + " " + what + " rows are taken by live processes");
}

void ServiceRegion::note_server_rows_changed() noexcept {
  // Release, after the row's state store: a client whose acquire load sees the new count
  // then reads the rows as they are now (rule 4). A locked add, only when servers come and go.
  header_->server_rows_changed.fetch_add(1, std::memory_order_release);
}

std::uint32_t ServiceRegion::take_server_row() {
  std::uint32_t row = take_row(servers_, max_servers_, "server", Errc::too_many_subscribers);
  note_server_rows_changed();
  if (after_row_taken_) {
    try {
      after_row_taken_();
    } catch (...) {
      free_server_row(row);
      throw;
    }
  }
  return row;
}

std::uint32_t ServiceRegion::take_client_row() {
  std::uint32_t row = take_row(clients_, max_clients_, "client", Errc::too_many_publishers);
  if (after_row_taken_) {
    try {
      after_row_taken_();
    } catch (...) {
      free_client_row(row);
      throw;
    }
  }
  return row;
}

void ServiceRegion::free_server_row(std::uint32_t row) noexcept {
  // Release: pairs with the acquire CAS of the row's next taker.
  servers_[row].state.store(kRowFree, std::memory_order_release);
  note_server_rows_changed();
}

void ServiceRegion::free_client_row(std::uint32_t row) noexcept {
  for (std::uint32_t c = 0; c < calls_per_client_; ++c) {
    CallWord& w = call(row, c);
    std::uint64_t word = w.load(std::memory_order_relaxed);
    // Release: pairs with the servers' acquire loads in cancelled(); nothing else to publish.
    if (claimant_of(word) != kClaimEnded) w.store(call_word(kClaimEnded, 0, generation_of(word)), std::memory_order_release);
  }
  clients_[row].state.store(kRowFree, std::memory_order_release);
}

std::size_t ServiceRegion::reclaim_dead_rows() noexcept {
  std::size_t freed = 0;
  for (std::uint32_t i = 0; i < max_servers_; ++i) {
    ServerRow& r = servers_[i];
    // Acquire: pairs with the release store of kRowActive, for pid and owner.
    if (r.state.load(std::memory_order_acquire) != kRowActive || !owner_dead(r)) continue;
    std::uint32_t expected = kRowActive;
    if (r.state.compare_exchange_strong(expected, kRowFree, std::memory_order_acq_rel)) {
      note_server_rows_changed();
      ++freed;
    }
  }
  for (std::uint32_t i = 0; i < max_clients_; ++i) {
    ClientRow& r = clients_[i];
    if (r.state.load(std::memory_order_acquire) != kRowActive || !owner_dead(r)) continue;
    std::uint32_t expected = kRowActive;
    // Claiming (not freeing) first, so no new client takes the row before its calls are ended.
    if (!r.state.compare_exchange_strong(expected, kRowClaiming, std::memory_order_acq_rel)) continue;
    free_client_row(i);
    ++freed;
  }
  return freed;
}

bool ServiceRegion::server_alive(std::uint32_t row, std::uint32_t generation16, bool ask_proc) const noexcept {
  if (row >= max_servers_) return false;
  const ServerRow& r = servers_[row];
  // Acquire: pairs with the release store of kRowActive, for generation, pid and owner.
  if (r.state.load(std::memory_order_acquire) != kRowActive) return false;
  if ((r.generation.load(std::memory_order_relaxed) & 0xFFFF) != generation16) return false;
  return !ask_proc || !owner_dead(r);
}

bool ServiceRegion::any_server_for(std::uint32_t target, bool ask_proc) const noexcept {
  if (target != kAnyServerTarget) {
    std::uint32_t row = target - 1;
    if (row >= max_servers_) return false;
    return server_alive(row, servers_[row].generation.load(std::memory_order_relaxed) & 0xFFFF, ask_proc);
  }
  for (std::uint32_t i = 0; i < max_servers_; ++i) {
    if (server_alive(i, servers_[i].generation.load(std::memory_order_relaxed) & 0xFFFF, ask_proc)) return true;
  }
  return false;
}

}  // namespace shmbus::detail
