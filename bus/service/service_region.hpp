// detail::ServiceRegion: one process's mapping of a service region (service_layout.hpp):
// creating, opening and validating it, and taking, freeing and judging its rows.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "service/service_layout.hpp"
#include "shmbus/config.hpp"
#include "shmbus/error.hpp"

namespace shmbus {
struct ServiceConfig;
class Service;
}

namespace shmbus::detail {

class ServiceRegion {
 public:
  // Creates the region (a sealed memfd, or file `path` when not empty). Throws Error.
  static std::shared_ptr<ServiceRegion> create(const ServiceConfig& config, const std::filesystem::path& path,
                                               unsigned file_mode);
  // Maps and validates an existing region file (Error naming the file and the field).
  static std::shared_ptr<ServiceRegion> open_file(const std::filesystem::path& path);
  // Maps the region behind `fd` (duplicated): a sealed memfd, or a file.
  static std::shared_ptr<ServiceRegion> open_fd(int fd);
  // Validates the header of a mapping of `size` bytes; throws Error naming `what` and the field.
  static void validate(const ServiceHeader& h, std::uint64_t size, const std::string& what);
  static std::uint64_t size_for(std::uint32_t servers, std::uint32_t clients, std::uint32_t calls) noexcept;
  ~ServiceRegion();

  const ServiceHeader& header() const noexcept { return *header_; }
  const std::string& name() const noexcept { return name_; }
  int fd() const noexcept { return fd_; }
  // The header's counts as validated when mapped (not re-read: see map()).
  std::uint32_t max_servers() const noexcept { return max_servers_; }
  std::uint32_t max_clients() const noexcept { return max_clients_; }
  std::uint32_t calls_per_client() const noexcept { return calls_per_client_; }
  ServerRow& server(std::uint32_t row) const noexcept { return servers_[row]; }
  // Bumped after every change of a server row's state (service_layout.hpp rule 4).
  const std::atomic<std::uint32_t>& server_rows_changed() const noexcept { return header_->server_rows_changed; }
  ClientRow& client(std::uint32_t row) const noexcept { return clients_[row]; }
  CallWord& call(std::uint32_t client, std::uint32_t call) const noexcept {
    return calls_[static_cast<std::size_t>(client) * calls_per_client_ + call];
  }
  // True once the region's file was truncated under us (SIGBUS guard).
  bool lost() const noexcept { return lost_.load(std::memory_order_relaxed) != 0; }

  // Takes a free row for this process (rule 1), freeing rows of dead owners when none is
  // free. Throws Error(too_many_publishers / too_many_subscribers) when every row is live.
  std::uint32_t take_server_row();
  std::uint32_t take_client_row();
  void free_server_row(std::uint32_t row) noexcept;
  // Runs after this process took a server or client row, whose publisher exists by then.
  // Client::open_service sets it: it hands the daemon this process's payload pools of the
  // service's topics (registerPool), so that servers and clients of other uids read them as
  // topic subscribers do. If it throws, the row is freed and the exception passes on.
  void set_after_row_taken(std::function<void()> hook) { after_row_taken_ = std::move(hook); }
  // Ends every call of the client row (their servers see call_cancelled), then frees it.
  void free_client_row(std::uint32_t row) noexcept;
  // Frees the rows of dead owners. Returns how many.
  std::size_t reclaim_dead_rows() noexcept;
  // True when server row `row` is active, its generation's low 16 bits are `generation16`
  // and its owner is not known to be dead.
  bool server_alive(std::uint32_t row, std::uint32_t generation16, bool ask_proc = true) const noexcept;
  // True when some live server could take a call addressed to `target` (kAnyServerTarget or
  // row + 1). With `ask_proc` false it only reads the rows (no system call: send()'s check);
  // with true it also asks /proc whether their owners live (the waiting client's check).
  bool any_server_for(std::uint32_t target, bool ask_proc) const noexcept;

 private:
  ServiceRegion() = default;
  void map(std::uint64_t size, bool created);
  template <typename Row>
  static bool owner_dead(const Row& row) noexcept;
  template <typename Row>
  std::uint32_t take_row(Row* rows, std::uint32_t count, const char* what, Errc full);

  int fd_ = -1;
  std::byte* base_ = nullptr;
  std::uint64_t size_ = 0;
  std::string name_;
  std::filesystem::path path_;
  void note_server_rows_changed() noexcept;  // rule 4
  ServiceHeader* header_ = nullptr;
  ServerRow* servers_ = nullptr;
  ClientRow* clients_ = nullptr;
  CallWord* calls_ = nullptr;
  std::uint32_t max_servers_ = 0, max_clients_ = 0, calls_per_client_ = 0;
  std::atomic<std::uint32_t> lost_{0};
  bool guarded_ = false;
  std::function<void()> after_row_taken_;
};

// The library's way to a Service's region (a friend of Service).
struct ServiceAccess {
  static ServiceRegion& region(const Service& service) noexcept;
};

}  // namespace shmbus::detail
