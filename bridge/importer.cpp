#include "importer.hpp"

#include <capnp/schema-loader.h>
#include <capnp/schema.capnp.h>
#include <capnp/serialize.h>

#include <cstring>
#include <functional>
#include <vector>

#include "shmbus/typed.hpp"
#include "subjects.hpp"

namespace shmbus::bridge {

// What a subject means under one rule.
struct Importer::Route {
  std::optional<std::string> topic;  // nullopt: not ours (another rule's, or a schema request)
  TopicCounters* counters = nullptr;
};

struct Importer::Local {
  std::optional<Topic> topic;
  std::unique_ptr<RawPublisher> publisher;
  std::uint64_t type_id = 0;
  // While the bus refuses the topic (access rules, type clash): when to ask again.
  std::chrono::steady_clock::time_point retry_after{};
  std::string refusal;
  // Loss and duplicate detection on the exporter's sequence.
  bool has_run = false;
  std::uint64_t run = 0;
  std::uint64_t last_export_seq = 0;
};

Importer::Importer(Client& client, Engine& engine, const BridgeConfig& config, CounterRegistry& counters,
                   OwnPublishers& own, LogLimiter& log)
    : client_(client), engine_(engine), config_(config), counters_(counters), own_(own), log_(log), routes_(config.imports.size()) {}

Importer::~Importer() = default;

void Importer::start() {
  for (const ImportRule& rule : config_.imports) {
    engine_.subscribe(rule.prefix + ".>", [this, &rule](const IncomingMessage& m) { on_message(rule, m); });
  }
}

void Importer::refuse(TopicCounters& c, Malformed why, const std::string& topic, const std::string& detail) {
  TopicCounters::add(c.malformed[static_cast<int>(why)]);
  log_.warn(topic + "/" + malformed_name(why), "import of '" + topic + "': refused a message (" + malformed_name(why) + "): " + detail);
}

std::optional<std::string> Importer::fetch_schema(const ImportRule& rule, const std::string& id) {
  if (auto it = schemas_.find(id); it != schemas_.end()) return it->second;
  std::optional<std::string> bytes = engine_.request(schema_subject(rule.prefix, id), "", 2000);
  if (!bytes || schema_id_of(*bytes) != id) return std::nullopt;
  schemas_[id] = *bytes;
  return bytes;
}

namespace {

// True when `schema` (a serialized CodeGeneratorRequest) loads and defines struct `type_id`.
bool schema_defines(const std::string& schema, std::uint64_t type_id) {
  if (schema.empty() || schema.size() % sizeof(capnp::word) != 0) return false;
  try {
    std::vector<capnp::word> words(schema.size() / sizeof(capnp::word));
    std::memcpy(words.data(), schema.data(), schema.size());
    capnp::FlatArrayMessageReader reader(kj::arrayPtr(words.data(), words.size()));
    capnp::SchemaLoader loader;
    for (auto node : reader.getRoot<capnp::schema::CodeGeneratorRequest>().getNodes()) loader.load(node);
    loader.get(type_id).asStruct();
    return true;
  } catch (...) {
    return false;
  }
}

std::string what_of(const std::exception& e) { return e.what(); }

}  // namespace

Importer::Local* Importer::local_topic(const ImportRule& rule, const std::string& name, const Frame& frame, TopicCounters& c) {
  const std::uint64_t type_id = frame.type_id;
  auto& slot = locals_[name];
  if (!slot) slot = std::make_unique<Local>();
  Local& l = *slot;
  if (l.publisher) return &l;
  if (std::chrono::steady_clock::now() < l.retry_after) {
    TopicCounters::add(c.refused_local);
    return nullptr;
  }
  TopicConfig tc;
  tc.name = name;
  tc.size_classes = rule.size_classes;
  tc.queue_depth = rule.queue_depth;
  tc.type_id = type_id;
  if (type_id != 0) {
    if (frame.schema_id == 0) {
      refuse(c, Malformed::bad_headers, name, "typed message without a schema id");
      return nullptr;
    }
    const std::string id = hex64(frame.schema_id);
    std::optional<std::string> schema = fetch_schema(rule, id);
    if (!schema || !schema_defines(*schema, type_id)) {
      refuse(c, Malformed::bad_schema, name, "no valid schema " + id + " defining type " + std::to_string(type_id) +
                                                 " from " + schema_subject(rule.prefix, id));
      l.retry_after = std::chrono::steady_clock::now() + std::chrono::seconds(1);
      return nullptr;
    }
    tc.schema = *schema;
  }
  try {
    Topic topic = client_.open_topic(tc, Role::publisher);
    auto pub = std::make_unique<RawPublisher>(topic);
    client_.register_publisher(*pub);
    l.type_id = topic.config().type_id;
    // Release: the exporter's acquire load of this cell sees the slot before any sample of it.
    own_.cell(name)->store(pub->slot(), std::memory_order_release);
    l.topic = topic;
    l.publisher = std::move(pub);
    spdlog::info("importing '{}' from {} ({})", name, rule.prefix, type_id ? "typed" : "raw bytes");
    return &l;
  } catch (const Error& e) {
    l.refusal = what_of(e);
    l.retry_after = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    if (e.code() == Errc::type_mismatch) {
      refuse(c, Malformed::wrong_type, name, l.refusal);
    } else {
      TopicCounters::add(c.refused_local);
      log_.warn(name + "/refused", "import of '" + name + "': the local bus refused it: " + l.refusal);
    }
    return nullptr;
  }
}

namespace {

std::optional<std::uint64_t> parse_hex64(std::string_view s) {
  if (s.empty() || s.size() > 16) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : s) {
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (d < 0) return std::nullopt;
    v = v << 4 | static_cast<std::uint64_t>(d);
  }
  return v;
}

// The first version's form: six text headers (subjects.hpp). nullopt, with `why`, when a
// header is missing or unreadable.
std::optional<Frame> frame_from_headers(const IncomingMessage& m, std::string& why) {
  std::optional<std::string_view> origin = m.header(kHeaderOrigin), type = m.header(kHeaderType),
                                  seq = m.header(kHeaderExportSeq), run = m.header(kHeaderRun);
  Frame f;
  // Plain values, not optionals: GCC 12 warns (wrongly) about optionals copied into the Frame.
  const bool numbers = type && seq && parse_u64(*type) && parse_u64(*seq).value_or(0) != 0;
  if (!origin || !run || !numbers || m.headers_malformed()) {
    why = std::string("missing or unreadable ") + kHeaderOrigin + "/" + kHeaderType + "/" + kHeaderExportSeq + "/" + kHeaderRun;
    return std::nullopt;
  }
  f.origin = *origin;
  f.type_id = parse_u64(*type).value_or(0);
  f.export_seq = parse_u64(*seq).value_or(0);
  f.run = std::hash<std::string_view>{}(*run);  // only compared with the previous message's
  if (std::optional<std::string_view> schema = m.header(kHeaderSchema)) {
    std::optional<std::uint64_t> id = parse_hex64(*schema);
    if (!id) {
      why = std::string(kHeaderSchema) + " '" + std::string(*schema) + "' is not 16 hex digits";
      return std::nullopt;
    }
    f.schema_id = *id;
  }
  if (std::optional<std::string_view> segs = m.header(kHeaderSegments)) {
    std::string_view rest = *segs;
    while (!rest.empty()) {
      std::size_t comma = rest.find(',');
      std::optional<std::uint64_t> n = parse_u64(rest.substr(0, comma));
      if (!n || *n > UINT32_MAX || f.segment_count == detail::kMaxSegments) {
        why = std::string(kHeaderSegments) + " '" + std::string(*segs) + "' is not a list of up to 32 word counts";
        return std::nullopt;
      }
      f.segment_words[f.segment_count++] = static_cast<std::uint32_t>(*n);
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    }
  }
  f.payload = m.payload();
  return f;
}

}  // namespace

Importer::Route& Importer::route_of(const ImportRule& rule, std::string_view subject) {
  auto& routes = routes_[static_cast<std::size_t>(&rule - config_.imports.data())];
  if (auto it = routes.find(subject); it != routes.end()) return *it->second;
  auto r = std::make_unique<Route>();
  r->topic = topic_of(rule.prefix, subject);
  if (r->topic && !topic_matches(rule.topics, *r->topic)) r->topic.reset();
  if (routes.size() >= kMaxRoutes) {
    // Made-up subjects from the network: past the bound each message works it out again.
    thread_local Route uncached;
    uncached = std::move(*r);
    return uncached;
  }
  return *routes.emplace(std::string(subject), std::move(r)).first->second;
}

void Importer::on_message(const ImportRule& rule, const IncomingMessage& m) {
  // The frame is checked before anything else (bad headers are counted once the topic is
  // known); the first version's headers when the message has them; a batch entry by entry.
  std::string why;
  std::optional<Frame> frame;
  const bool old_form = m.header(kHeaderOrigin) || m.headers_malformed();
  const bool batch = !old_form && is_batch(m.payload());
  if (old_form) {
    frame = frame_from_headers(m, why);
  } else if (!batch) {
    frame = decode_frame(m.payload(), why);
  }
  if (frame && frame->origin == config_.bus_id) return;  // our own export, back from the network
  std::lock_guard lock(mutex_);
  Route& route = route_of(rule, m.subject());
  if (!route.topic) return;  // not ours to import (or a schema request)
  const std::string* name = &*route.topic;
  if (locals_.size() >= kMaxImportedTopics && !locals_.count(*name)) {
    // A flood of made-up names must not grow the bus or the bridge without bound.
    TopicCounters::add(counters_.of("(over the topic limit)").refused_local);
    log_.warn("limit", "import: more than " + std::to_string(kMaxImportedTopics) + " topics; ignoring '" + *name + "' (narrow the [[import]] globs)");
    return;
  }
  if (!route.counters) route.counters = &counters_.of(*name);
  TopicCounters& c = *route.counters;
  if (!batch) {
    if (!frame) {
      refuse(c, Malformed::bad_headers, *name, why);
      return;
    }
    deliver(rule, *name, c, *frame);
    return;
  }
  // A batch: its structure is checked whole first (a lie anywhere refuses all of it, and the
  // exporter sequences it carried show up as lost in transit); then each entry is a frame of
  // its own, refused or delivered alone.
  std::optional<BatchReader> reader = BatchReader::open(m.payload(), why);
  if (!reader) {
    refuse(c, Malformed::bad_batch, *name, why);
    return;
  }
  for (std::span<const std::byte> entry; reader->next(entry);) {
    frame = decode_frame(entry, why);
    if (!frame) {
      refuse(c, Malformed::bad_headers, *name, "batch entry: " + why);
      continue;
    }
    if (frame->origin == config_.bus_id) continue;
    deliver(rule, *name, c, *frame);
  }
}

void Importer::deliver(const ImportRule& rule, const std::string& name, TopicCounters& c, const Frame& frame) {
  Local* l = local_topic(rule, name, frame, c);
  if (!l) return;
  if (frame.type_id != l->type_id) {
    refuse(c, Malformed::wrong_type, name, "type id " + std::to_string(frame.type_id) + ", the local topic carries " + std::to_string(l->type_id));
    return;
  }
  if (l->type_id == 0 && frame.segment_count != 0) {
    refuse(c, Malformed::bad_headers, name, "a segment table on a raw-bytes topic");
    return;
  }
  // The exporter numbers what it sends 1, 2, 3... per run: a gap is loss on the way, a repeat
  // a duplicate. The first message of a run this importer sees sets the baseline: what the
  // exporter sent before we listened (or before this importer restarted) was never in transit
  // to us, and counting it would charge a restarted importer with the whole history.
  const bool same_run = l->has_run && frame.run == l->run;
  if (same_run && frame.export_seq <= l->last_export_seq) {
    TopicCounters::add(c.duplicates);
    return;
  }
  const std::uint64_t expected = same_run ? l->last_export_seq + 1 : frame.export_seq;
  if (frame.export_seq > expected) TopicCounters::add(c.lost_in_transit, frame.export_seq - expected);
  l->has_run = true;
  l->run = frame.run;
  l->last_export_seq = frame.export_seq;
  std::span<const std::byte> payload = frame.payload;
  Status st;
  if (l->type_id == 0) {
    Result<RawLoan> loan = l->publisher->loan(payload.size());
    if (!loan) {
      if (loan.code() == Errc::message_too_large) refuse(c, Malformed::oversized, name, std::to_string(payload.size()) + " bytes exceed the local pool's largest chunk");
      else TopicCounters::add(c.refused_local);
      return;
    }
    if (!payload.empty()) std::memcpy(loan->data().data(), payload.data(), payload.size());
    st = l->publisher->publish(std::move(loan.value()), payload.size());
  } else {
    // Words of the message, aligned, and its segment table from the header.
    if (payload.empty() || payload.size() % sizeof(capnp::word) != 0) {
      refuse(c, Malformed::garbage, name, std::to_string(payload.size()) + " bytes are not a Cap'n Proto message (not whole words)");
      return;
    }
    const std::size_t total_words = payload.size() / sizeof(capnp::word);
    std::size_t sizes[detail::kMaxSegments];
    std::size_t count = 1;
    sizes[0] = total_words;
    if (frame.segment_count > 0) {
      std::size_t sum = 0;
      bool positive = true;
      for (unsigned k = 0; k < frame.segment_count; ++k) {
        sizes[k] = frame.segment_words[k];
        sum += sizes[k];
        positive = positive && sizes[k] > 0;
      }
      count = frame.segment_count;
      if (!positive || sum != total_words) {
        refuse(c, Malformed::bad_headers, name, "the segment table (" + std::to_string(count) + " segments, " + std::to_string(sum) +
                                                     " words) does not describe " + std::to_string(total_words) + " words");
        return;
      }
    }
    // Read in place when the client's buffer keeps the words aligned; else aligned once.
    const capnp::word* words = reinterpret_cast<const capnp::word*>(payload.data());
    if (reinterpret_cast<std::uintptr_t>(words) % alignof(capnp::word) != 0) {
      thread_local std::vector<capnp::word> aligned;
      aligned.resize(total_words);
      std::memcpy(aligned.data(), payload.data(), payload.size());
      words = aligned.data();
    }
    kj::ArrayPtr<const capnp::word> segments[detail::kMaxSegments];
    std::size_t at = 0;
    for (std::size_t k = 0; k < count; ++k) {
      segments[k] = kj::arrayPtr(words + at, sizes[k]);
      at += sizes[k];
    }
    capnp::ReaderOptions limits;
    limits.traversalLimitInWords = total_words * 4 + 64;  // amplification bound, as subscribers use
    limits.nestingLimit = 64;
    capnp::SegmentArrayMessageReader reader(kj::arrayPtr(segments, count), limits);
    bool is_struct = false;
    try {
      is_struct = reader.getRoot<capnp::AnyPointer>().getPointerType() == capnp::PointerType::STRUCT;
    } catch (...) {
    }
    if (!is_struct || !detail::validate_message(reader)) {
      refuse(c, Malformed::garbage, name, "the payload is not a valid Cap'n Proto message with a struct root");
      return;
    }
    detail::ChunkMessageBuilder builder(detail::core_of(*l->publisher), payload.size());
    if (!builder.status().ok()) {
      if (builder.status().code() == Errc::message_too_large) refuse(c, Malformed::oversized, name, std::to_string(payload.size()) + " bytes exceed the local pool's largest chunk");
      else TopicCounters::add(c.refused_local);
      return;
    }
    try {
      builder.getRoot<capnp::AnyPointer>().setAs<capnp::AnyStruct>(reader.getRoot<capnp::AnyStruct>());
    } catch (const kj::Exception& e) {
      refuse(c, Malformed::oversized, name, std::string("does not fit the local topic: ") + e.getDescription().cStr());
      return;
    }
    st = builder.publish();
  }
  if (!st.ok()) {
    TopicCounters::add(c.refused_local);
    log_.warn(name + "/publish", "import of '" + name + "': local publish failed: " + st.name());
    return;
  }
  TopicCounters::add(c.imported);
}

}  // namespace shmbus::bridge
