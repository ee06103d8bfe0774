// control.capnp DurableLog <-> shmbus::DurableLogInfo (wire.hpp).
#include "control/wire.hpp"

namespace shmbus::wire {

void to_wire(const DurableLogInfo& log, control::DurableLog::Builder out) {
  using control::FlushMode;
  out.setName(log.name);
  out.setDirectory(log.directory.string());
  out.setSegmentSize(log.segment_size);
  switch (log.flush.mode) {
    case FlushPolicy::Mode::none: out.setFlushMode(FlushMode::NONE); break;
    case FlushPolicy::Mode::every_n: out.setFlushMode(FlushMode::EVERY_N); break;
    case FlushPolicy::Mode::interval: out.setFlushMode(FlushMode::INTERVAL); break;
    case FlushPolicy::Mode::each_publish: out.setFlushMode(FlushMode::EACH_PUBLISH); break;
  }
  out.setFlushEveryN(log.flush.every_n);
  out.setFlushIntervalMs(static_cast<std::uint64_t>(log.flush.interval.count()));
  out.setMaxAgeS(static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(log.retention.max_age).count()));
  out.setMaxBytes(log.retention.max_bytes);
  out.setMaxSegments(log.retention.max_segments);
  out.setExclusiveAppender(log.exclusive_appender);
}

DurableLogInfo from_wire(control::DurableLog::Reader in) {
  using control::FlushMode;
  DurableLogInfo log;
  log.name = in.getName();
  log.directory = std::string(in.getDirectory());
  log.segment_size = in.getSegmentSize();
  switch (in.getFlushMode()) {
    case FlushMode::EVERY_N: log.flush.mode = FlushPolicy::Mode::every_n; break;
    case FlushMode::INTERVAL: log.flush.mode = FlushPolicy::Mode::interval; break;
    case FlushMode::EACH_PUBLISH: log.flush.mode = FlushPolicy::Mode::each_publish; break;
    default: log.flush.mode = FlushPolicy::Mode::none; break;  // NONE, or a mode newer than this client
  }
  log.flush.every_n = in.getFlushEveryN();
  log.flush.interval = std::chrono::milliseconds(in.getFlushIntervalMs());
  log.retention.max_age = std::chrono::seconds(in.getMaxAgeS());
  log.retention.max_bytes = in.getMaxBytes();
  log.retention.max_segments = in.getMaxSegments();
  log.exclusive_appender = in.getExclusiveAppender();
  return log;
}

}  // namespace shmbus::wire
