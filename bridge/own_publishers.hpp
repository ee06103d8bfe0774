// Which publisher slot of each local topic is the bridge's own importer: the exporter skips
// messages from that slot's payload pool (pool p belongs to publisher slot p), so nothing the
// bridge imported is exported back.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace shmbus::bridge {

class OwnPublishers {
 public:
  static constexpr std::int64_t kNone = -1;
  // The cell of `topic`, created on first use. The importer stores its slot with release
  // before its first publish; the exporter loads it with acquire (pairs with that store)
  // before deciding about a sample, so a message is never taken before its publisher's slot
  // is known.
  std::shared_ptr<std::atomic<std::int64_t>> cell(const std::string& topic) {
    std::lock_guard lock(mutex_);
    auto& c = cells_[topic];
    if (!c) c = std::make_shared<std::atomic<std::int64_t>>(kNone);
    return c;
  }

 private:
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<std::atomic<std::int64_t>>> cells_;
};

}  // namespace shmbus::bridge
