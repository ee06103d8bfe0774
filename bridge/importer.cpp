#include "importer.hpp"

#include <capnp/schema-loader.h>
#include <capnp/schema.capnp.h>
#include <capnp/serialize.h>

#include <cstring>
#include <vector>

#include "shmbus/typed.hpp"
#include "subjects.hpp"

namespace shmbus::bridge {

struct Importer::Local {
  std::optional<Topic> topic;
  std::unique_ptr<RawPublisher> publisher;
  std::uint64_t type_id = 0;
  // While the bus refuses the topic (access rules, type clash): when to ask again.
  std::chrono::steady_clock::time_point retry_after{};
  std::string refusal;
  // Loss and duplicate detection on the exporter's sequence.
  std::string run;
  std::uint64_t last_export_seq = 0;
};

Importer::Importer(Client& client, Engine& engine, const BridgeConfig& config, CounterRegistry& counters,
                   OwnPublishers& own, LogLimiter& log)
    : client_(client), engine_(engine), config_(config), counters_(counters), own_(own), log_(log) {}

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

Importer::Local* Importer::local_topic(const ImportRule& rule, const std::string& name, std::uint64_t type_id,
                                       const IncomingMessage& m, TopicCounters& c) {
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
    std::optional<std::string_view> id = m.header(kHeaderSchema);
    if (!id) {
      refuse(c, Malformed::bad_headers, name, std::string("typed message without ") + kHeaderSchema);
      return nullptr;
    }
    std::optional<std::string> schema = fetch_schema(rule, std::string(*id));
    if (!schema || !schema_defines(*schema, type_id)) {
      refuse(c, Malformed::bad_schema, name, "no valid schema " + std::string(*id) + " defining type " + std::to_string(type_id) +
                                                 " from " + schema_subject(rule.prefix, *id));
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

void Importer::on_message(const ImportRule& rule, const IncomingMessage& m) {
  std::optional<std::string> name = topic_of(rule.prefix, m.subject());
  if (!name || !topic_matches(rule.topics, *name)) return;  // not ours to import (or a schema request)
  std::optional<std::string_view> origin = m.header(kHeaderOrigin);
  if (origin && *origin == config_.bus_id) return;  // our own export, back from the network
  std::lock_guard lock(mutex_);
  if (locals_.size() >= kMaxImportedTopics && !locals_.count(*name)) {
    // A flood of made-up names must not grow the bus or the bridge without bound.
    TopicCounters::add(counters_.of("(over the topic limit)").refused_local);
    log_.warn("limit", "import: more than " + std::to_string(kMaxImportedTopics) + " topics; ignoring '" + *name + "' (narrow the [[import]] globs)");
    return;
  }
  TopicCounters& c = counters_.of(*name);
  std::optional<std::string_view> type_h = m.header(kHeaderType), seq_h = m.header(kHeaderExportSeq), run_h = m.header(kHeaderRun);
  std::uint64_t type_id_value = 0, export_seq_value = 0;
  const bool readable = type_h && seq_h && run_h && origin && !m.headers_malformed() && parse_u64(*type_h).has_value() &&
                        parse_u64(*seq_h).value_or(0) != 0;
  if (!readable) {
    refuse(c, Malformed::bad_headers, *name, std::string("missing or unreadable ") + kHeaderOrigin + "/" + kHeaderType + "/" + kHeaderExportSeq + "/" + kHeaderRun);
    return;
  }
  type_id_value = parse_u64(*type_h).value_or(0);
  export_seq_value = parse_u64(*seq_h).value_or(0);
  const std::uint64_t* type_id = &type_id_value;
  const std::uint64_t* export_seq = &export_seq_value;
  Local* l = local_topic(rule, *name, *type_id, m, c);
  if (!l) return;
  if (*type_id != l->type_id) {
    refuse(c, Malformed::wrong_type, *name, "type id " + std::to_string(*type_id) + ", the local topic carries " + std::to_string(l->type_id));
    return;
  }
  // The exporter numbers what it sends 1, 2, 3... per run: a gap is loss on the way, a repeat
  // a duplicate.
  std::string run(*run_h);
  if (run == l->run && *export_seq <= l->last_export_seq) {
    TopicCounters::add(c.duplicates);
    return;
  }
  const std::uint64_t expected = run == l->run ? l->last_export_seq + 1 : 1;
  if (*export_seq > expected) TopicCounters::add(c.lost_in_transit, *export_seq - expected);
  l->run = run;
  l->last_export_seq = *export_seq;
  std::span<const std::byte> payload = m.payload();
  Status st;
  if (l->type_id == 0) {
    Result<RawLoan> loan = l->publisher->loan(payload.size());
    if (!loan) {
      if (loan.code() == Errc::message_too_large) refuse(c, Malformed::oversized, *name, std::to_string(payload.size()) + " bytes exceed the local pool's largest chunk");
      else TopicCounters::add(c.refused_local);
      return;
    }
    if (!payload.empty()) std::memcpy(loan->data().data(), payload.data(), payload.size());
    st = l->publisher->publish(std::move(loan.value()), payload.size());
  } else {
    // Words of the message, aligned, and its segment table from the header.
    if (payload.empty() || payload.size() % sizeof(capnp::word) != 0) {
      refuse(c, Malformed::garbage, *name, std::to_string(payload.size()) + " bytes are not a Cap'n Proto message (not whole words)");
      return;
    }
    const std::size_t total_words = payload.size() / sizeof(capnp::word);
    std::vector<std::size_t> sizes;
    if (std::optional<std::string_view> segs = m.header(kHeaderSegments)) {
      std::size_t sum = 0;
      std::string_view rest = *segs;
      while (!rest.empty() && sizes.size() <= detail::kMaxSegments) {
        std::size_t comma = rest.find(',');
        std::optional<std::uint64_t> n = parse_u64(rest.substr(0, comma));
        if (!n || *n == 0 || *n > total_words) { sizes.clear(); break; }
        sizes.push_back(*n);
        sum += *n;
        rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      }
      if (sizes.empty() || sizes.size() > detail::kMaxSegments || sum != total_words) {
        refuse(c, Malformed::bad_headers, *name, std::string(kHeaderSegments) + " '" + std::string(*segs) + "' does not describe " + std::to_string(total_words) + " words");
        return;
      }
    } else {
      sizes.push_back(total_words);
    }
    thread_local std::vector<capnp::word> words;
    words.resize(total_words);
    std::memcpy(words.data(), payload.data(), payload.size());
    std::vector<kj::ArrayPtr<const capnp::word>> segments;
    std::size_t at = 0;
    for (std::size_t n : sizes) {
      segments.emplace_back(words.data() + at, n);
      at += n;
    }
    capnp::ReaderOptions limits;
    limits.traversalLimitInWords = total_words * 4 + 64;  // amplification bound, as subscribers use
    limits.nestingLimit = 64;
    capnp::SegmentArrayMessageReader reader(kj::arrayPtr(segments.data(), segments.size()), limits);
    bool is_struct = false;
    try {
      is_struct = reader.getRoot<capnp::AnyPointer>().getPointerType() == capnp::PointerType::STRUCT;
    } catch (...) {
    }
    if (!is_struct || !detail::validate_message(reader)) {
      refuse(c, Malformed::garbage, *name, "the payload is not a valid Cap'n Proto message with a struct root");
      return;
    }
    detail::ChunkMessageBuilder builder(detail::core_of(*l->publisher), payload.size());
    if (!builder.status().ok()) {
      if (builder.status().code() == Errc::message_too_large) refuse(c, Malformed::oversized, *name, std::to_string(payload.size()) + " bytes exceed the local pool's largest chunk");
      else TopicCounters::add(c.refused_local);
      return;
    }
    try {
      builder.getRoot<capnp::AnyPointer>().setAs<capnp::AnyStruct>(reader.getRoot<capnp::AnyStruct>());
    } catch (const kj::Exception& e) {
      refuse(c, Malformed::oversized, *name, std::string("does not fit the local topic: ") + e.getDescription().cStr());
      return;
    }
    st = builder.publish();
  }
  if (!st.ok()) {
    TopicCounters::add(c.refused_local);
    log_.warn(*name + "/publish", "import of '" + *name + "': local publish failed: " + st.name());
    return;
  }
  TopicCounters::add(c.imported);
}

}  // namespace shmbus::bridge
