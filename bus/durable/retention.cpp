// Listing a durable log's segments and removing the ones retention no longer keeps.
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "durable/segment.hpp"
#include "shmbus/durable.hpp"

namespace shmbus {

using namespace detail::durable;

namespace {

DurableSegmentInfo damaged_segment(const std::filesystem::path& file, std::uint64_t first, std::string damage) {
  DurableSegmentInfo info;
  info.path = file;
  info.first_sequence = first;
  info.next_sequence = first;
  std::error_code ec;
  std::uintmax_t size = std::filesystem::file_size(file, ec);
  info.size_bytes = ec ? 0 : size;
  info.damage = std::move(damage);
  return info;
}

}  // namespace

std::vector<DurableSegmentInfo> list_durable_segments(const std::filesystem::path& directory, const std::string& topic) {
  detail::validate_durable_name("durable topic", topic);
  std::filesystem::path log_path = directory / topic;
  std::vector<DurableSegmentInfo> out;
  for (std::uint64_t first : detail::durable_segment_firsts(log_path)) {
    const std::filesystem::path file = detail::durable_segment_path(log_path, first);
    std::shared_ptr<detail::DurableSegment> seg;
    try {
      seg = detail::DurableSegment::open(file);
    } catch (const Error& e) {
      if (e.code() == Errc::no_such_topic) continue;  // removed since the listing
      if (!detail::durable_segment_damaged(e.code())) throw;
      out.push_back(damaged_segment(file, first, e.what()));
      continue;
    }
    const SegmentHeader& h = seg->header();
    if (h.first_sequence != first) {
      out.push_back(damaged_segment(file, first, "durable segment " + file.string() + ": its header says first sequence " +
                                                     std::to_string(h.first_sequence)));
      continue;
    }
    DurableSegmentInfo info;
    info.path = seg->path();
    info.first_sequence = first;
    // Acquire: pair with the claimant's release stores (durable layout rule 1).
    info.next_sequence = h.next_sequence.load(std::memory_order_acquire);
    info.used_bytes = h.write_offset.load(std::memory_order_acquire);
    info.first_time_ns = h.first_time_ns;
    info.last_time_ns = h.last_time_ns.load(std::memory_order_relaxed);
    info.size_bytes = seg->size();
    info.type_id = h.type_id;
    info.sealed = h.sealed.load(std::memory_order_acquire) != 0;  // pairs with the roller's release
    // The SIGBUS guard may have caught a truncation while we read: then the fields are zeros.
    if (seg->lost()) {
      out.push_back(damaged_segment(file, first, "durable segment " + file.string() + ": truncated while being listed"));
      continue;
    }
    out.push_back(std::move(info));
  }
  // A damaged segment's bounds come from its nearest readable neighbours.
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (out[i].damage.empty()) continue;
    if (i + 1 < out.size()) out[i].next_sequence = out[i + 1].first_sequence;
    for (std::size_t j = i + 1; j < out.size(); ++j) {
      if (out[j].damage.empty()) {
        out[i].last_time_ns = out[j].first_time_ns;
        break;
      }
    }
    for (std::size_t j = i; j-- > 0;) {
      if (out[j].damage.empty()) {
        out[i].first_time_ns = out[j].last_time_ns;
        break;
      }
    }
  }
  return out;
}

std::string durable_schema(const std::filesystem::path& directory, const std::string& topic) {
  detail::validate_durable_name("durable topic", topic);
  std::ifstream in(directory / topic / "schema", std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

RetentionReport apply_durable_retention(const std::filesystem::path& directory, const std::string& topic,
                                        const RetentionPolicy& policy, std::uint64_t now_ns) {
  if (now_ns == 0) now_ns = detail::realtime_ns();
  std::vector<DurableSegmentInfo> segments = list_durable_segments(directory, topic);
  std::uint64_t total = 0;
  for (const auto& s : segments) total += s.size_bytes;
  std::uint64_t count = segments.size();
  RetentionReport report;
  // Oldest first, never the newest, and stop at the first one kept: what remains is always
  // one run of consecutive sequences, which readers' lost_history counting relies on.
  for (std::size_t i = 0; i + 1 < segments.size(); ++i) {
    const DurableSegmentInfo& s = segments[i];
    const auto age_limit = static_cast<std::uint64_t>(policy.max_age.count());
    bool too_many = policy.max_segments != 0 && count > policy.max_segments;
    bool too_big = policy.max_bytes != 0 && total > policy.max_bytes;
    // A damaged segment's last_time_ns is the next one's first time (no record in it is later),
    // 0 when that is unknown too: then it waits for its turn by size or count.
    bool too_old = age_limit != 0 && s.last_time_ns != 0 && s.last_time_ns + age_limit < now_ns;
    if (!too_many && !too_big && !too_old) break;
    if (::unlink(s.path.c_str()) != 0 && errno != ENOENT) {
      throw Error(Errc::system_error, "durable retention: cannot remove " + s.path.string() + ": " + std::strerror(errno));
    }
    ++report.segments_removed;
    report.bytes_removed += s.size_bytes;
    report.messages_removed += segments[i + 1].first_sequence - s.first_sequence;
    total -= s.size_bytes;
    --count;
  }
  return report;
}

}  // namespace shmbus
