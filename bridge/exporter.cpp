#include "exporter.hpp"

#include <random>
#include <thread>

#include "shmbus/typed.hpp"
#include "poll_loop.hpp"
#include "subjects.hpp"
#include "wire.hpp"

namespace shmbus::bridge {

struct Exporter::Exported {
  std::string name, subject;
  std::unique_ptr<RawSubscriber> sub;
  TopicCounters* counters = nullptr;
  std::shared_ptr<std::atomic<std::int64_t>> own_slot;
  std::uint64_t type_id = 0;
  std::uint64_t export_seq = 0;
  std::optional<FrameWriter> frame;  // built once; per message only the sequences change
  bool batch = true;                 // every matching [[export]] rule allows batches
  BatchWriter batch_writer;          // what pump() took, not yet sent
  std::uint64_t batch_first_sequence = 0;
};

namespace {
std::uint64_t random_run_id() {
  std::random_device rd;
  return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
}
}  // namespace

Exporter::Exporter(Client& client, Engine& engine, const BridgeConfig& config, CounterRegistry& counters,
                   OwnPublishers& own, LogLimiter& log)
    : client_(client), engine_(engine), config_(config), counters_(counters), own_(own), log_(log), run_(random_run_id()) {}

Exporter::~Exporter() { stop(); }

void Exporter::start() {
  engine_.serve(schema_subject(config_.subject_prefix, "*"), [this](const IncomingMessage& m) -> std::optional<std::string> {
    std::string_view subject = m.subject();
    std::string id(subject.substr(subject.rfind('.') + 1));
    std::lock_guard lock(schemas_mutex_);
    auto it = schemas_.find(id);
    if (it == schemas_.end()) return std::nullopt;
    return it->second;
  });
  if (!config_.exports.empty()) loop_.start([this](const std::atomic<bool>& stop) { run(stop); });
}

void Exporter::stop() {
  loop_.stop();
}

void Exporter::discover() {
  std::vector<TopicListing> topics;
  try {
    topics = client_.list_topics();
  } catch (const Error& e) {
    log_.warn("discover", std::string("export: cannot list the bus's topics: ") + e.what());
    return;
  }
  for (const TopicListing& t : topics) {
    const std::string& name = t.config.name;
    bool wanted = false;
    for (const ExportRule& r : config_.exports) wanted = wanted || topic_matches(r.topics, name);
    if (!wanted || unexportable_.count(name)) continue;
    bool have = false;
    for (const auto& e : exported_) have = have || e->name == name;
    if (have) continue;
    std::optional<std::string> subject = subject_of(config_.subject_prefix, name);
    if (!subject) {
      unexportable_.insert(name);
      spdlog::warn("export: topic '{}' cannot cross: a NATS subject needs names without '.', spaces, '*', '>' or empty components", name);
      continue;
    }
    try {
      Topic topic = client_.open_existing_topic(name, Role::subscriber);
      auto e = std::make_unique<Exported>();
      e->sub = std::make_unique<RawSubscriber>(topic, SubscriberOptions{.wait_mode = WaitMode::adaptive, .with_history = false});
      client_.register_subscriber(*e->sub);
      e->name = name;
      e->subject = *subject;
      e->counters = &counters_.of(name);
      e->own_slot = own_.cell(name);
      e->type_id = topic.config().type_id;
      std::uint64_t schema_id = 0;
      if (e->type_id != 0 && !topic.config().schema.empty()) {
        const std::string id = schema_id_of(topic.config().schema);
        schema_id = std::stoull(id, nullptr, 16);
        std::lock_guard lock(schemas_mutex_);
        schemas_[id] = topic.config().schema;
      }
      e->frame.emplace(e->type_id, schema_id, run_, config_.bus_id);
      for (const ExportRule& r : config_.exports) e->batch = e->batch && (!topic_matches(r.topics, name) || r.batch);
      spdlog::info("exporting '{}' to {}", name, *subject);
      exported_.push_back(std::move(e));
    } catch (const Error& err) {
      log_.warn(name + "/export", "export of '" + name + "': " + err.what());
    }
  }
}

bool Exporter::pump(Exported& e) {
  // Everything waiting (up to 256) goes out as batches bounded by the server's max_payload; a
  // lone message as its plain frame, at once.
  const std::size_t max_payload = engine_.max_payload();
  const std::size_t limit = max_payload ? std::min(max_payload, kMaxBatchBytes) : kMaxBatchBytes;
  bool any = false;
  for (int i = 0; i < 256; ++i) {
    Result<RawSample> s = e.sub->take();
    if (!s) break;
    any = true;
    TopicCounters& c = *e.counters;
    if (s->lost_before()) TopicCounters::add(c.dropped_local, s->lost_before());
    // Acquire: pairs with the importer's release store of its slot before its first publish.
    const std::int64_t own = e.own_slot->load(std::memory_order_acquire);
    if (own != OwnPublishers::kNone) {
      auto where = e.sub->topic().locate_payload(s->data().data());
      if (where && where->pool == static_cast<std::uint32_t>(own)) {
        TopicCounters::add(c.skipped_imported);
        continue;
      }
    }
    // segments[0] is the frame header, then the message's bytes: one segment, or its
    // Cap'n Proto segments in place.
    std::span<const std::byte> segments[1 + detail::kMaxSegments];
    std::uint32_t words[detail::kMaxSegments];
    std::size_t count = 1;
    if (e.type_id == 0) {
      segments[1] = s->data();
    } else {
      detail::SegmentTable table;
      if (!detail::read_segments(*s, table)) {
        log_.warn(e.name + "/local", "export of '" + e.name + "': skipped message " + std::to_string(s->sequence()) + " with a malformed segment chain");
        TopicCounters::add(c.malformed[static_cast<int>(Malformed::garbage)]);
        continue;
      }
      count = table.count;
      for (unsigned k = 0; k < table.count; ++k) {
        words[k] = static_cast<std::uint32_t>(table.segments[k].size());
        segments[1 + k] = {reinterpret_cast<const std::byte*>(table.segments[k].begin()), table.segments[k].size() * sizeof(capnp::word)};
      }
    }
    // A table only for several segments: the importer reads one segment without it.
    segments[0] = e.frame->header(s->sequence(), e.export_seq + 1, std::span<const std::uint32_t>(words, count > 1 ? count : 0));
    const std::span<const std::span<const std::byte>> parts(segments, 1 + count);
    if (!e.batch) {
      ++e.export_seq;
      sent(e, s->sequence(), 1, s->data().size(), engine_.publish(e.subject, {}, parts));
      continue;
    }
    std::size_t frame_bytes = 0;
    for (auto p : parts) frame_bytes += p.size();
    if (e.batch_writer.count() > 0 && (e.batch_writer.bytes_with(frame_bytes) > limit || e.batch_writer.count() == kMaxBatchCount)) {
      flush(e);
      segments[0] = e.frame->header(s->sequence(), e.export_seq + 1, std::span<const std::uint32_t>(words, count > 1 ? count : 0));
    }
    if (e.batch_writer.count() == 0) e.batch_first_sequence = s->sequence();
    e.batch_writer.add(parts);
    ++e.export_seq;
  }
  flush(e);
  return any;
}

void Exporter::flush(Exported& e) {
  const std::uint32_t n = e.batch_writer.count();
  if (n == 0) return;
  std::span<const std::byte> bytes = e.batch_writer.finish();
  sent(e, e.batch_first_sequence, n, bytes.size(), engine_.publish(e.subject, {}, {&bytes, 1}));
  e.batch_writer.clear();
}

void Exporter::sent(Exported& e, std::uint64_t first_sequence, std::uint32_t n, std::size_t bytes, PublishOutcome outcome) {
  TopicCounters& c = *e.counters;
  // Only what the connection took keeps its export sequences (the last n): the importer counts
  // a gap as lost in transit, and what was refused here is counted here, per message.
  if (outcome != PublishOutcome::sent && outcome != PublishOutcome::buffered) e.export_seq -= n;
  const std::string which = n == 1 ? "message " + std::to_string(first_sequence)
                                   : std::to_string(n) + " messages from " + std::to_string(first_sequence);
  switch (outcome) {
    case PublishOutcome::sent: TopicCounters::add(c.exported, n); break;
    case PublishOutcome::buffered:
      TopicCounters::add(c.exported, n);
      TopicCounters::add(c.buffered_disconnected, n);
      break;
    case PublishOutcome::too_large:
      TopicCounters::add(c.refused_nats, n);
      log_.warn(e.name + "/too_large", "export of '" + e.name + "': " + which + " (" + std::to_string(bytes) +
                                           " bytes framed) exceeds the NATS server's max_payload " + std::to_string(engine_.max_payload()) +
                                           ": not sent");
      break;
    case PublishOutcome::disconnected:
      TopicCounters::add(c.lost_disconnected, n);
      log_.warn(e.name + "/disconnected", "export of '" + e.name + "': NATS is disconnected and the reconnect buffer is full: " + which + " lost");
      break;
    case PublishOutcome::failed:
      TopicCounters::add(c.refused_nats, n);
      log_.warn(e.name + "/failed", "export of '" + e.name + "': NATS refused " + which);
      break;
  }
}

void Exporter::run(const std::atomic<bool>& stop) {
  poll_until_stopped(
      stop, std::chrono::microseconds(50), std::chrono::microseconds(2000), [this] { discover(); },
      [this] {
        bool any = false;
        for (auto& e : exported_) any = pump(*e) || any;
        return any;
      },
      [this] {
        // One topic: sleep on its futex (timeouts are fine). Several: the loop backs off, as a
        // futex per topic cannot be waited on at once.
        if (exported_.size() != 1) return false;
        (void)exported_[0]->sub->wait(std::chrono::milliseconds(20));
        return true;
      });
}

}  // namespace shmbus::bridge
