// Noticing an outside truncation of a declared durable log's segment files, and applying the
// logs' retention: the daemon's 500 ms sweep calls tick().
//
// Why not a file lease, as on file-backed regions (lease_watch.hpp): a write lease is refused
// while any other file description of the file exists, and a read lease while anyone maps it
// writable (docs/linux-facts.md §1). Appenders and readers open and map segment files
// themselves, by path and writable (that is what keeps the daemon off the data path, and lets
// appends go on while it is down), so the daemon can hold neither lease on a segment in use.
// Instead the sweep compares each segment file's size with the size its header records, read
// with pread (never through a mapping, so a truncation cannot SIGBUS the daemon). The
// processes inside a truncated segment learn it themselves, from the SIGBUS guard
// (Errc::region_lost) and go on in the segment after it; the daemon says which file, once, and
// its retention removes the damaged file in its turn (list_durable_segments lists it, damaged).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "durable_topics.hpp"

namespace shmbusd {

class DurableWatch {
 public:
  // One pass over every declared log: truncation check, then retention. Never throws;
  // everything found is logged.
  void tick(const std::vector<DurableTopicSettings>& logs);
  // Segment files found shorter than their header says, with what was found (for listings).
  const std::map<std::filesystem::path, std::string>& truncated() const noexcept { return truncated_; }

 private:
  // True if some segment of `log` is truncated (logged the first time it is seen).
  bool check(const DurableTopicSettings& log);

  std::map<std::filesystem::path, std::string> truncated_;
};

}  // namespace shmbusd
