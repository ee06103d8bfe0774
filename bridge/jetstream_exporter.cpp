#include "jetstream_exporter.hpp"

#include <deque>
#include <optional>
#include <spdlog/spdlog.h>

#include "shmbus/durable.hpp"
#include "poll_loop.hpp"
#include "subjects.hpp"

namespace shmbus::bridge {

struct JetStreamExporter::Log {
  const JetStreamExportRule* rule = nullptr;
  std::string name, subject, msg_id_prefix;
  std::optional<DurableReader> sender;  // reads ahead of the acknowledgements
  std::optional<DurableReader> cursor;  // named: moved only over stored messages
  Headers headers;
  std::chrono::steady_clock::time_point retry_at{};
  std::uint64_t lost_seen = 0;  // sender.lost() already counted
  std::uint64_t skips_counted_to = 0;  // a skip below this was counted (a resent window skips again)

  enum class State : std::uint8_t { pending, stored, failed };
  struct InFlight {
    std::uint64_t sequence;
    State state;
  };
  std::mutex mutex;               // in_flight, between the export thread and the ack handler
  std::deque<InFlight> in_flight; // in log order

  using Counter = std::atomic<std::uint64_t>;  // relaxed tallies for the status file
  Counter sent{0}, stored{0}, duplicates{0}, resent{0}, refused{0}, lost_history{0}, lost_damaged{0}, acked_through{0};
  static void add(Counter& c, std::uint64_t n = 1) { c.fetch_add(n, std::memory_order_relaxed); }
};

namespace {
enum HeaderIndex { kType, kOrigin, kLogName, kSeq, kTime };
constexpr auto kRetryAfterFailure = std::chrono::milliseconds(200);

// Reads `r` on past sequence `seq`, also over what it skips (a damaged segment, retention);
// stops early at the end of the log or at an error that does not move it on.
void read_past(DurableReader& r, std::uint64_t seq) {
  while (r.position() <= seq) {
    const std::uint64_t at = r.position();
    if (!r.next() && r.position() == at) return;
  }
}

// The newest readable segment's type id (a damaged one's header is not to be trusted).
std::uint64_t type_id_of(const std::vector<DurableSegmentInfo>& segments) {
  for (auto it = segments.rbegin(); it != segments.rend(); ++it) {
    if (it->damage.empty()) return it->type_id;
  }
  return 0;
}
}  // namespace

JetStreamExporter::JetStreamExporter(Engine& engine, const BridgeConfig& config, LogLimiter& log)
    : engine_(engine), config_(config), log_(log), stream_ready_(config.jetstream_exports.size(), false) {}

JetStreamExporter::~JetStreamExporter() { stop(); }

void JetStreamExporter::start() {
  if (config_.jetstream_exports.empty()) return;
  int ack_timeout = 0;
  for (const JetStreamExportRule& r : config_.jetstream_exports) ack_timeout = std::max(ack_timeout, r.ack_timeout_ms);
  PersistentStreamsOptions o;
  o.on_ack = [this](const PersistentAck& ack) { on_ack(ack); };
  o.ack_timeout = std::chrono::milliseconds(ack_timeout);
  js_ = engine_.open_persistent_streams(o);
  if (!js_) throw std::runtime_error("[[jetstream_export]]: this engine has no persistent streams");
  loop_.start([this](const std::atomic<bool>& stop) { run(stop); });
}

void JetStreamExporter::stop() {
  loop_.stop();
  js_.reset();  // waits for the acks in flight (each bounded by its timeout)
}

void JetStreamExporter::on_ack(const PersistentAck& ack) {
  std::optional<std::string_view> seq_text = ack.published.header(kHeaderLogSeq);
  std::optional<std::uint64_t> seq;
  if (seq_text) seq = parse_u64(*seq_text);
  Log* l = nullptr;
  {
    std::lock_guard lock(logs_mutex_);
    auto it = logs_.find(std::string(ack.published.subject()));
    if (it != logs_.end()) l = it->second.get();
  }
  if (l == nullptr || !seq) return;
  std::lock_guard lock(l->mutex);
  for (Log::InFlight& f : l->in_flight) {
    if (f.sequence != *seq || f.state != Log::State::pending) continue;
    f.state = ack.stored ? Log::State::stored : Log::State::failed;
    if (ack.duplicate) Log::add(l->duplicates);
    if (!ack.stored) {
      log_.warn(l->subject + "/ack", "JetStream export of '" + l->name + "': message " + std::to_string(*seq) +
                                         " not stored (" + ack.error + "): sending again from the first unacknowledged one");
    }
    return;
  }
}

void JetStreamExporter::discover() {
  for (std::size_t i = 0; i < config_.jetstream_exports.size(); ++i) {
    const JetStreamExportRule& rule = config_.jetstream_exports[i];
    if (!stream_ready_[i]) {
      try {
        js_->ensure_stream({.name = rule.stream, .subjects = {rule.subject_prefix + ".>"},
                            .duplicate_window = std::chrono::seconds(rule.duplicate_window_s)});
        stream_ready_[i] = true;
        spdlog::info("JetStream stream '{}' ready for {}.>", rule.stream, rule.subject_prefix);
      } catch (const std::exception& e) {
        log_.warn("stream/" + rule.stream, e.what());
        continue;
      }
    }
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(rule.directory, ec)) {
      const std::string name = entry.path().filename().string();
      if (!entry.is_directory() || !topic_matches(rule.topics, name)) continue;
      const std::string subject = rule.subject_prefix + "." + name;
      {
        std::lock_guard lock(logs_mutex_);
        if (logs_.count(subject)) continue;
      }
      if (!valid_subject_prefix(subject)) {
        log_.warn(subject + "/name", "JetStream export: log '" + name + "' cannot cross: its name makes an empty subject token");
        continue;
      }
      try {
        std::vector<DurableSegmentInfo> segments = list_durable_segments(rule.directory, name);
        if (segments.empty()) continue;  // not a log (yet)
        auto l = std::make_unique<Log>();
        l->rule = &rule;
        l->name = name;
        l->subject = subject;
        l->msg_id_prefix = config_.bus_id + ":" + name + ":";
        l->cursor.emplace(DurableReader::named(rule.directory, name, "jetstream-" + rule.stream));
        // What the stream already holds of this log is not sent again, even when the named
        // position is behind it (killed between the ack and the position's store).
        std::optional<std::string> last = js_->last_header(rule.stream, subject, kHeaderLogSeq);
        std::optional<std::uint64_t> last_stored;
        if (last) last_stored = parse_u64(*last);
        if (last_stored) read_past(*l->cursor, *last_stored);
        l->sender.emplace(DurableReader::at_sequence(rule.directory, name, l->cursor->position()));
        l->acked_through.store(l->cursor->position(), std::memory_order_relaxed);
        l->headers = {{kHeaderType, std::to_string(type_id_of(segments))}, {kHeaderOrigin, config_.bus_id},
                      {kHeaderLog, name}, {kHeaderLogSeq, ""}, {kHeaderLogTime, ""}};
        spdlog::info("exporting durable log '{}' to JetStream stream '{}' subject {} from sequence {}", name, rule.stream,
                     subject, l->cursor->position());
        std::lock_guard lock(logs_mutex_);
        logs_.emplace(subject, std::move(l));
      } catch (const std::exception& e) {
        log_.warn(subject + "/open", "JetStream export of '" + name + "': " + e.what());
      }
    }
  }
}

bool JetStreamExporter::pump(Log& l) {
  bool any = false;
  // 1. Move the named position over the stored prefix of the window; find a failure.
  std::vector<std::uint64_t> stored;
  bool failed = false, pending = false;
  std::optional<std::uint64_t> first_unstored;
  {
    std::lock_guard lock(l.mutex);
    while (!l.in_flight.empty() && l.in_flight.front().state == Log::State::stored) {
      stored.push_back(l.in_flight.front().sequence);
      l.in_flight.pop_front();
    }
    for (const Log::InFlight& f : l.in_flight) {
      failed = failed || f.state == Log::State::failed;
      pending = pending || f.state == Log::State::pending;
    }
    if (!l.in_flight.empty()) first_unstored = l.in_flight.front().sequence;
    // 2. A failure, once nothing is pending any more: send again from the first unstored.
    if (failed && !pending) {
      Log::add(l.resent, l.in_flight.size());
      l.in_flight.clear();
    }
  }
  if (!stored.empty()) {
    read_past(*l.cursor, stored.back());
    any = true;
    Log::add(l.stored, stored.size());
    l.acked_through.store(stored.back() + 1, std::memory_order_relaxed);
  }
  if (failed) {
    if (pending) return any;
    l.sender.emplace(DurableReader::at_sequence(l.rule->directory, l.name, *first_unstored));
    l.lost_seen = 0;
    l.retry_at = std::chrono::steady_clock::now() + kRetryAfterFailure;
    return true;
  }
  if (std::chrono::steady_clock::now() < l.retry_at) return any;
  // 3. Fill the window.
  for (;;) {
    {
      std::lock_guard lock(l.mutex);
      if (l.in_flight.size() >= l.rule->window) break;
    }
    const std::uint64_t at = l.sender->position();
    Result<DurableSample> s = l.sender->next();
    if (l.sender->lost() != l.lost_seen) {
      count_skipped(l, l.sender->lost() - l.lost_seen, s ? s->sequence : l.sender->position());
      l.lost_seen = l.sender->lost();
    }
    if (!s) {
      if (l.sender->position() != at) continue;  // went on past a damaged segment or removed messages
      if (s.code() != Errc::no_data) {
        log_.warn(l.subject + "/read", "JetStream export of '" + l.name + "': cannot read the log: " + l.sender->last_error());
        l.retry_at = std::chrono::steady_clock::now() + std::chrono::seconds(1);
      }
      break;
    }
    any = true;
    const std::uint64_t seq = s->sequence;
    l.headers[kSeq].second = std::to_string(seq);
    l.headers[kTime].second = std::to_string(s->time_ns);
    {
      // Listed before it is sent: its ack may come back before publish() returns.
      std::lock_guard lock(l.mutex);
      l.in_flight.push_back({seq, Log::State::pending});
    }
    const PublishOutcome outcome = js_->publish(l.subject, l.headers, s->data, l.msg_id_prefix + std::to_string(seq));
    if (outcome == PublishOutcome::sent) {
      Log::add(l.sent);
      continue;
    }
    std::lock_guard lock(l.mutex);
    if (outcome == PublishOutcome::too_large) {
      // It can never be stored: counted, logged, and passed over like a stored one.
      l.in_flight.back().state = Log::State::stored;
      Log::add(l.refused);
      log_.warn(l.subject + "/too_large", "JetStream export of '" + l.name + "': message " + std::to_string(seq) + " (" +
                                              std::to_string(s->data.size()) + " bytes) exceeds the server's max_payload: not sent");
      continue;
    }
    // Not handed over (disconnected): this one and what follows are read again later.
    l.in_flight.pop_back();
    l.sender.emplace(DurableReader::at_sequence(l.rule->directory, l.name, seq));
    l.lost_seen = 0;
    l.retry_at = std::chrono::steady_clock::now() + kRetryAfterFailure;
    log_.warn(l.subject + "/send", "JetStream export of '" + l.name + "': NATS did not take message " + std::to_string(seq) +
                                       ": retrying");
    break;
  }
  return any;
}

void JetStreamExporter::count_skipped(Log& l, std::uint64_t skipped, std::uint64_t resumed_at) {
  const std::uint64_t from = std::max(resumed_at - std::min(skipped, resumed_at), l.skips_counted_to);
  if (from >= resumed_at) return;
  l.skips_counted_to = resumed_at;
  std::vector<DurableSegmentInfo> segments;
  try {
    segments = list_durable_segments(l.rule->directory, l.name);
  } catch (const std::exception& e) {
    log_.warn(l.subject + "/list", "JetStream export of '" + l.name + "': cannot list its segments: " + e.what());
  }
  std::uint64_t damaged = 0;
  for (const DurableSegmentInfo& seg : segments) {
    const std::uint64_t lo = std::max(from, seg.first_sequence), hi = std::min(resumed_at, seg.next_sequence);
    if (seg.damage.empty() || lo >= hi) continue;
    damaged += hi - lo;
    log_.warn(l.subject + "/damaged/" + seg.path.filename().string(),
              "JetStream export of '" + l.name + "': skipping a damaged segment, " + std::to_string(hi - lo) +
                  " messages not sent (sequences " + std::to_string(lo) + ".." + std::to_string(hi - 1) + "): " + seg.damage);
  }
  Log::add(l.lost_damaged, damaged);
  if (const std::uint64_t removed = resumed_at - from - damaged; removed != 0) {
    Log::add(l.lost_history, removed);
    log_.warn(l.subject + "/lost", "JetStream export of '" + l.name + "': retention removed " + std::to_string(removed) +
                                       " messages before they were sent");
  }
}

void JetStreamExporter::run(const std::atomic<bool>& stop) {
  // Idle: a backoff up to 2 ms (acks and appends of several logs at once).
  poll_until_stopped(
      stop, std::chrono::microseconds(100), std::chrono::microseconds(2000), [this] { discover(); },
      [this] {
        std::vector<Log*> logs;
        {
          std::lock_guard lock(logs_mutex_);
          for (auto& [subject, l] : logs_) logs.push_back(l.get());
        }
        bool any = false;
        for (Log* l : logs) any = pump(*l) || any;
        return any;
      },
      [] { return false; });
}

nlohmann::json JetStreamExporter::status() const {
  nlohmann::json out = nlohmann::json::object();
  std::lock_guard lock(logs_mutex_);
  for (const auto& [subject, l] : logs_) {
    auto v = [](const Log::Counter& c) { return c.load(std::memory_order_relaxed); };
    out[l->name] = {{"stream", l->rule->stream}, {"subject", subject}, {"sent", v(l->sent)}, {"stored", v(l->stored)},
                    {"duplicates", v(l->duplicates)}, {"resent", v(l->resent)}, {"refused", v(l->refused)},
                    {"lost_history", v(l->lost_history)}, {"lost_damaged", v(l->lost_damaged)}, {"acked_through", v(l->acked_through)}};
  }
  return out;
}

}  // namespace shmbus::bridge
