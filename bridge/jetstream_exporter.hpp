// Durable logs -> JetStream ([[jetstream_export]] rules, docs/bridge.md "Durable topics over
// JetStream").
//
// One thread reads each matching log (found in the rule's directory once a second) and
// publishes its messages to the rule's stream, asynchronously with at most `window` awaiting
// their acknowledgement per log. Every message carries Nats-Msg-Id "<bus id>:<log>:<sequence>",
// so JetStream stores a message sent twice within its duplicate window once.
//
// Where a log resumes: a named reader of the log ("jetstream-<stream>", readers/ in the log's
// folder) is advanced only over messages JetStream acknowledged, in log order; it stores its
// position as it goes. On start the bridge also asks the stream for the newest message of the
// log's subject and skips what its Shmbus-Seq header says is stored. A kill -9 therefore loses
// nothing (the unacknowledged window is sent again) and duplicates nothing (what was stored is
// skipped by the stream look-up, and within the window by the message id).
//
// A refused or unacknowledged publish (ack timeout, disconnected) makes the log wait until its
// whole window is resolved, then send again from the first message not stored.
//
// A damaged segment (truncated, foreign: listed with its `damage` by list_durable_segments, as
// `shmbus log info` shows it) is skipped: its messages are counted in lost_damaged and the file
// is named once in the log; messages retention removed before they were sent, in lost_history.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "config.hpp"
#include "jetstream_engine.hpp"
#include "log_limiter.hpp"
#include "poll_loop.hpp"

namespace shmbus::bridge {

// Headers of messages exported to JetStream (besides Nats-Msg-Id and the bridge's Shmbus-Type
// and Shmbus-Origin).
inline constexpr const char* kHeaderLog = "Shmbus-Log";    // the durable log's name
inline constexpr const char* kHeaderLogSeq = "Shmbus-Seq"; // the message's sequence in its log
inline constexpr const char* kHeaderLogTime = "Shmbus-Time";  // its CLOCK_REALTIME ns in the log

class JetStreamExporter {
 public:
  JetStreamExporter(Engine& engine, const BridgeConfig& config, LogLimiter& log);
  ~JetStreamExporter();
  void start();
  // Stops the thread and waits (bounded by the ack timeout) for the acks in flight.
  void stop();
  // Per log: sent, stored, duplicates, resent, refused, lost_history, lost_damaged, acked_through.
  nlohmann::json status() const;

 private:
  struct Log;
  void run(const std::atomic<bool>& stop);
  void discover();
  bool pump(Log& l);
  void count_skipped(Log& l, std::uint64_t skipped, std::uint64_t resumed_at);
  void on_ack(const PersistentAck& ack);

  Engine& engine_;
  const BridgeConfig& config_;
  LogLimiter& log_;
  std::unique_ptr<PersistentStreams> js_;
  std::vector<bool> stream_ready_;            // per rule: ensure_stream succeeded
  mutable std::mutex logs_mutex_;             // the map, against on_ack and status
  std::map<std::string, std::unique_ptr<Log>> logs_;  // by subject; never erased
  LoopThread loop_;
};

}  // namespace shmbus::bridge
