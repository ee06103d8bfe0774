// shmbus::Topic, the handle: creating and opening regions, accessors, revocation, and the
// daemon's pool checks (bus/topic_admin.hpp). Its introspection is in
// topic_introspection.cpp, its clean-up after dead processes in topic_recovery.cpp.
#include "shmbus/topic.hpp"

#include <climits>
#include <string_view>
#include <fcntl.h>
#include <thread>
#include <unistd.h>

#include "file_lease_probe.hpp"
#include "futex.hpp"
#include "open_region.hpp"
#include "region.hpp"
#include "topic_admin.hpp"
#include "topic_map.hpp"

namespace shmbus {

using namespace detail;

Topic Topic::create(const TopicConfig& config, const RegionOptions& options) {
  return Topic(TopicMap::create(config, options));
}

bool Topic::file_is_served(const std::filesystem::path& path) { return file_has_lease(path); }

Topic Topic::open_fd(int fd, const std::filesystem::path& file) {
  int own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (own < 0) throw_errno("dup of region fd " + std::to_string(fd));
  return Topic(TopicMap::open(own, file));
}

namespace detail {

// Opens a region file by path without ever blocking on a file lease. The bus daemon holds a
// write lease on the files it serves (daemon/lease_watch.cpp); a blocking open would wait for
// it, and for a holder that died (its lease stays on the file description its clients still
// share) up to /proc/sys/fs/lease-break-time, 45 s by default. O_NONBLOCK makes the open fail
// with EWOULDBLOCK instead, after the holder has been told; a live daemon releases in
// milliseconds, so we retry every 10 ms for up to `wait`.
int open_region_path(const std::filesystem::path& path, int access, std::chrono::milliseconds wait) {
  auto deadline = std::chrono::steady_clock::now() + wait;
  for (;;) {
    int fd = ::open(path.c_str(), access | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0) {
      // O_NONBLOCK was for the lease only; leave the description as a plain blocking one.
      fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
      return fd;
    }
    if (errno != EWOULDBLOCK) throw_errno("opening region file " + path.string());
    if (std::chrono::steady_clock::now() >= deadline) {
      throw Error(Errc::lease_held,
                  "opening region file " + path.string() + ": a process holds a file lease on it and does not release it "
                  "(waited " + std::to_string(wait.count()) + " ms); a bus daemon that was killed leaves its lease "
                  "until /proc/sys/fs/lease-break-time runs out");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace detail

Topic Topic::open_file(const std::filesystem::path& path, std::chrono::milliseconds lease_wait) {
  int fd = open_region_path(path, O_RDWR, lease_wait);
  return Topic(TopicMap::open(fd, path));
}

Topic Topic::inspect_file(const std::filesystem::path& path, std::chrono::milliseconds lease_wait) {
  int fd = open_region_path(path, O_RDONLY, lease_wait);
  return Topic(TopicMap::open(fd, path, /*writable=*/false));
}

const std::string& Topic::name() const noexcept { return map_->config().name; }
const TopicConfig& Topic::config() const noexcept { return map_->config(); }
int Topic::fd() const noexcept { return map_->fd(); }
const std::filesystem::path& Topic::path() const noexcept { return map_->path(); }
const void* Topic::mapping_base() const noexcept { return map_->base(); }

bool Topic::external_pools() const noexcept { return map_->external_pools(); }

std::optional<Topic::PayloadLocation> Topic::locate_payload(const void* p) const {
  std::shared_ptr<PoolMapping> m = map_->mapping_containing(p);
  if (!m) return std::nullopt;
  return PayloadLocation{m->pool, m->generation,
                         static_cast<std::uint64_t>(static_cast<const std::byte*>(p) - m->base), m->base, m->size,
                         m->fd, m->writable};
}
std::size_t Topic::mapping_size() const noexcept { return map_->size(); }

bool Topic::revoked() const noexcept {
  // Acquire: pairs with the release store in revoke().
  if (map_->header().health.load(std::memory_order_acquire) == kRegionRevoked) return true;
  // Once the file has been truncated, the header reads as zeros here (the SIGBUS guard maps
  // zero pages over what was cut off). The daemon renamed the file to "<file>.revoked-<time>"
  // before it let the truncating process through, so the name of our descriptor still tells.
  char link[PATH_MAX];
  std::string proc = "/proc/self/fd/" + std::to_string(map_->fd());
  ssize_t n = readlink(proc.c_str(), link, sizeof link - 1);
  if (n <= 0) return false;
  return std::string_view(link, static_cast<std::size_t>(n)).find(".shmbus.revoked-") != std::string_view::npos;
}

namespace detail {

std::optional<PoolHandle> own_pool(const Topic& topic, std::uint32_t pool) {
  TopicMap& map = TopicAccess::map(topic);
  std::shared_ptr<PoolMapping> m = map.current_pool(pool);
  if (!m || !m->writable || !map.external_pools()) return std::nullopt;
  return PoolHandle{m->fd, m->generation};
}

void check_pool_fd(const Topic& topic, std::uint32_t pool, std::uint32_t generation, int fd, pid_t creator) {
  TopicAccess::map(topic).check_pool_fd(pool, generation, fd, creator);
}

bool pool_in_use(const Topic& topic, std::uint32_t pool, std::uint32_t generation) {
  return TopicAccess::map(topic).pool_in_use(pool, generation);
}

void revoke(const Topic& topic) noexcept {
  TopicMap& map = TopicAccess::map(topic);
  // Release: pairs with the relaxed load in TopicMap::unusable() only as far as it goes (a
  // hint, checked on every call); release keeps this store after the daemon's earlier writes
  // to the header and slots (reclaims), so a client that sees "revoked" sees those too.
  map.header().health.store(kRegionRevoked, std::memory_order_release);
  // Sleepers re-check unusable() when woken; without a wake they would notice only when their
  // sleep slice ends (up to a second on file-backed topics). Seq_cst bumps, as every waker's,
  // so that a sleeper that registered before our store is woken or sees the new word.
  TopicControl& ctl = map.control();
  for (std::atomic<std::uint32_t>* word : {&ctl.data_futex, &ctl.lap_futex, &ctl.space_futex}) {
    word->fetch_add(1, std::memory_order_seq_cst);
    futex_wake_all(word);
  }
}

}  // namespace detail
}  // namespace shmbus
