#include "durable_watch.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "durable/layout.hpp"
#include "durable/leftovers.hpp"
#include "durable/segment.hpp"

namespace shmbusd {

namespace {

// What is wrong with the segment file `file`: empty when whole (or gone, or not ours to judge:
// a foreign file is the readers' error to report).
std::string truncation_of(const std::filesystem::path& file) {
  namespace durable = shmbus::detail::durable;
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return {};
  struct stat st {};
  char magic[sizeof durable::kSegmentMagic] = {};
  std::uint64_t recorded = 0;
  const bool stat_ok = fstat(fd, &st) == 0;
  const ssize_t got_magic = pread(fd, magic, sizeof magic, 0);
  const ssize_t got_size = pread(fd, &recorded, sizeof recorded, offsetof(durable::SegmentHeader, segment_size));
  ::close(fd);
  if (!stat_ok) return {};
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (got_magic != static_cast<ssize_t>(sizeof magic) || got_size != static_cast<ssize_t>(sizeof recorded)) {
    return "truncated to " + std::to_string(size) + " bytes, shorter than a segment header";
  }
  if (std::memcmp(magic, durable::kSegmentMagic, sizeof magic) != 0) return {};
  if (size < recorded) {
    return "truncated to " + std::to_string(size) + " of its " + std::to_string(recorded) + " bytes";
  }
  return {};
}

}  // namespace

bool DurableWatch::check(const DurableTopicSettings& log) {
  const std::filesystem::path log_path = log.directory / log.name;
  bool damaged = false;
  std::vector<std::uint64_t> firsts;
  try {
    firsts = shmbus::detail::durable_segment_firsts(log_path);
  } catch (const std::exception&) {
    return false;  // no directory (yet): nothing to check
  }
  for (std::uint64_t first : firsts) {
    const std::filesystem::path file = shmbus::detail::durable_segment_path(log_path, first);
    std::string what = truncation_of(file);
    if (what.empty()) continue;
    damaged = true;
    if (truncated_.emplace(file, what).second) {
      spdlog::error(
          "durable topic '{}': segment {} was {} by another process; readers and appenders inside it get "
          "region_lost and go on in the segment after it, its messages are gone, and retention removes the file "
          "in its turn",
          log.name, file.string(), what);
    }
  }
  // Forget files that were removed (the operator, or retention before the damage).
  std::erase_if(truncated_, [&](const auto& t) {
    std::error_code ec;
    return t.first.parent_path() == log_path && !std::filesystem::exists(t.first, ec);
  });
  return damaged;
}

void DurableWatch::tick(const std::vector<DurableTopicSettings>& logs) {
  for (const DurableTopicSettings& log : logs) {
    if (std::size_t n = shmbus::detail::remove_durable_leftovers(log.directory / log.name); n != 0) {
      spdlog::info("durable topic '{}': removed {} temporary file(s) of creators that died mid-create", log.name, n);
    }
    check(log);
  }
  // Damaged segments are listed with what is wrong, and removed in their turn like the others.
  apply_durable_retention_all(logs);
}

}  // namespace shmbusd
