#include "exporter.hpp"

#include <random>
#include <thread>

#include "shmbus/typed.hpp"
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
  if (!config_.exports.empty()) thread_ = std::thread([this] { run(); });
}

void Exporter::stop() {
  stop_.store(true, std::memory_order_relaxed);  // a flag polled by the loop; nothing to publish with it
  if (thread_.joinable()) thread_.join();
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
      spdlog::info("exporting '{}' to {}", name, *subject);
      exported_.push_back(std::move(e));
    } catch (const Error& err) {
      log_.warn(name + "/export", "export of '" + name + "': " + err.what());
    }
  }
}

bool Exporter::pump(Exported& e) {
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
    segments[0] = e.frame->header(s->sequence(), ++e.export_seq, std::span<const std::uint32_t>(words, count > 1 ? count : 0));
    const PublishOutcome outcome = engine_.publish(e.subject, {}, {segments, 1 + count});
    // Only what the connection took keeps its export sequence: the importer counts a gap as
    // lost in transit, and what was refused here is counted here.
    if (outcome != PublishOutcome::sent && outcome != PublishOutcome::buffered) --e.export_seq;
    switch (outcome) {
      case PublishOutcome::sent: TopicCounters::add(c.exported); break;
      case PublishOutcome::buffered:
        TopicCounters::add(c.exported);
        TopicCounters::add(c.buffered_disconnected);
        break;
      case PublishOutcome::too_large:
        TopicCounters::add(c.refused_nats);
        log_.warn(e.name + "/too_large", "export of '" + e.name + "': message " + std::to_string(s->sequence()) + " (" +
                                             std::to_string(s->data().size()) + "+ bytes) exceeds the NATS server's max_payload " +
                                             std::to_string(engine_.max_payload()) + ": not sent");
        break;
      case PublishOutcome::disconnected:
        TopicCounters::add(c.lost_disconnected);
        log_.warn(e.name + "/disconnected", "export of '" + e.name + "': NATS is disconnected and the reconnect buffer is full: message lost");
        break;
      case PublishOutcome::failed:
        TopicCounters::add(c.refused_nats);
        log_.warn(e.name + "/failed", "export of '" + e.name + "': NATS refused message " + std::to_string(s->sequence()));
        break;
    }
  }
  return any;
}

void Exporter::run() {
  auto next_discovery = std::chrono::steady_clock::now();
  auto idle = std::chrono::microseconds(0);
  while (!stop_.load(std::memory_order_relaxed)) {
    if (std::chrono::steady_clock::now() >= next_discovery) {
      discover();
      next_discovery = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    }
    bool any = false;
    for (auto& e : exported_) any = pump(*e) || any;
    if (any) {
      idle = std::chrono::microseconds(0);
    } else if (exported_.size() == 1) {
      (void)exported_[0]->sub->wait(std::chrono::milliseconds(20));  // sleeps on the topic's futex; timeouts are fine
    } else {
      // Several topics: poll with a backoff up to 2 ms (a futex per topic cannot be waited on at once).
      idle = std::min(std::chrono::microseconds(2000), idle + std::chrono::microseconds(50));
      std::this_thread::sleep_for(idle);
    }
  }
}

}  // namespace shmbus::bridge
