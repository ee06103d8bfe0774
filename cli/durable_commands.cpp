// shmbus record / replay / log info, and dump of a durable log: the tools of durable topics.
// The recording format is in recording.hpp; docs/cli.md, "Durable topics: record, replay,
// inspect", is the user's manual.
#include "durable_commands.hpp"

#include <capnp/any.h>
#include <capnp/serialize.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <deque>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "commands.hpp"
#include "message_codec.hpp"
#include "output.hpp"
#include "recording.hpp"
#include "shmbus/durable.hpp"
#include "shmbus/shmbus.hpp"
#include "topic_source.hpp"

namespace shmbus::cli {
namespace {

namespace fs = std::filesystem;

volatile std::sig_atomic_t g_interrupted = 0;
void on_interrupt(int) { g_interrupted = 1; }

// ---- record ---------------------------------------------------------------------------------

struct RecordArgs {
  std::vector<std::string> topics;
  std::string output;
  long count = -1;
  double duration_s = -1;
  std::uint64_t segment_size = 64ull << 20;
};

// The message as one contiguous record body: a raw sample's bytes, or a typed sample's
// segments in the standard Cap'n Proto framing.
void append_message(DurableAppender& log, const RawSample& sample, bool typed, std::uint16_t topic_index) {
  RecordEnvelope env;
  env.topic = topic_index;
  env.original_sequence = sample.sequence();
  env.publish_time_ns = sample.publish_time_ns();
  kj::Array<capnp::word> flat;
  std::span<const std::byte> body = sample.data();
  if (typed) {
    detail::SegmentTable table;
    if (!detail::read_segments(sample, table)) {
      throw Error(Errc::malformed_message, "message " + std::to_string(sample.sequence()) + " has a malformed segment chain");
    }
    flat = capnp::messageToFlatArray(table.array());
    body = std::as_bytes(std::span(flat.begin(), flat.size()));
    env.flags = RecordEnvelope::kTyped;
  }
  Result<DurableLoan> loan = log.loan(sizeof env + body.size());
  if (!loan) throw Error(loan.code(), "recording: " + (log.last_error().empty() ? std::string(loan.name()) : log.last_error()));
  std::memcpy(loan->data().data(), &env, sizeof env);
  std::memcpy(loan->data().data() + sizeof env, body.data(), body.size());
  Status st = log.publish(*loan);
  if (!st.ok()) throw Error(st.code(), "recording: publish failed: " + std::string(st.name()));
}

void record(const RecordArgs& args, const GlobalOptions& global) {
  if (fs::exists(fs::path(args.output) / kRecordingLogName)) {
    throw Error(Errc::invalid_config, args.output + " already holds a recording (choose a new directory)");
  }
  std::vector<OpenedTopic> opened;
  std::vector<RecordedTopic> manifest;
  for (const std::string& arg : args.topics) {
    opened.push_back(open_topic(arg, global, Role::subscriber));
    for (const RecordedTopic& m : manifest) {
      if (m.config.name == opened.back().topic.name()) throw Error(Errc::invalid_config, "topic '" + m.config.name + "' given twice");
    }
    manifest.push_back({opened.back().topic.config()});
  }
  if (manifest.size() > 65535) throw Error(Errc::invalid_config, "too many topics for one recording (at most 65535)");
  DurableConfig dc;
  dc.directory = args.output;
  dc.topic = kRecordingLogName;
  dc.segment_size = args.segment_size;
  dc.type_id = kRecordingTypeId;
  dc.schema = encode_manifest(manifest);
  DurableAppender log(dc);
  std::vector<RawSubscriber> subs;
  subs.reserve(opened.size());  // registered by address: never moved
  std::vector<bool> typed;
  for (OpenedTopic& o : opened) {
    // A reader like any other, joining now: the topic's policy (drop_oldest by default)
    // decides what happens when it falls behind, and lost_before() counts it.
    subs.emplace_back(o.topic, SubscriberOptions{.wait_mode = WaitMode::adaptive, .with_history = false});
    o.register_subscriber(subs.back());
    typed.push_back(MessageCodec(o.topic.config().schema, o.topic.config().type_id).typed());
  }
  std::signal(SIGINT, on_interrupt);
  std::signal(SIGTERM, on_interrupt);
  if (!global.json) std::cout << "recording " << subs.size() << " topic(s) to " << args.output << std::endl;
  using clock = std::chrono::steady_clock;
  const auto deadline = args.duration_s < 0 ? clock::time_point::max()
                                            : clock::now() + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(args.duration_s));
  std::uint64_t recorded = 0, missed = 0;
  std::vector<std::uint64_t> per_topic(subs.size(), 0);
  // Each topic's oldest untaken message waits in heads[i]; the one published first (by the
  // topics' publish stamps, when they stamp) goes into the log next: one global order even
  // when several topics have messages waiting.
  std::vector<std::optional<RawSample>> heads(subs.size());
  auto want_more = [&] { return args.count < 0 || recorded < static_cast<std::uint64_t>(args.count); };
  auto oldest_head = [&] {  // subs.size() when no topic has one
    std::size_t pick = subs.size();
    for (std::size_t i = 0; i < subs.size(); ++i) {
      if (heads[i] && (pick == subs.size() || heads[i]->publish_time_ns() < heads[pick]->publish_time_ns())) pick = i;
    }
    return pick;
  };
  auto record_head = [&](std::size_t i) {
    append_message(log, *heads[i], typed[i], static_cast<std::uint16_t>(i));
    heads[i].reset();
    ++recorded;
    ++per_topic[i];
  };
  while (!g_interrupted && want_more() && clock::now() < deadline) {
    for (std::size_t i = 0; i < subs.size(); ++i) {
      if (heads[i]) continue;
      Result<RawSample> s = subs[i].take();
      if (!s && s.code() != Errc::no_data) throw Error(s.code(), "topic '" + opened[i].topic.name() + "': " + s.name());
      if (s) {
        missed += s->lost_before();
        heads[i].emplace(std::move(s.value()));
      }
    }
    std::size_t pick = oldest_head();
    if (pick == subs.size()) std::this_thread::sleep_for(std::chrono::microseconds(50));
    else record_head(pick);
  }
  // Stopped by a signal or --duration: the messages already taken go in too, in order.
  for (std::size_t pick = oldest_head(); pick != subs.size() && want_more(); pick = oldest_head()) record_head(pick);
  if (global.json) {
    nlohmann::json topics = nlohmann::json::array();
    for (std::size_t i = 0; i < subs.size(); ++i) topics.push_back({{"topic", opened[i].topic.name()}, {"messages", per_topic[i]}});
    std::cout << nlohmann::json{{"directory", args.output}, {"messages", recorded}, {"missed", missed}, {"topics", topics}}.dump() << std::endl;
  } else {
    std::cout << "recorded " << recorded << " messages of " << subs.size() << " topic(s) to " << args.output << ", missed "
              << missed << (missed ? " (the recorder fell behind; the topic's policy dropped them)" : "") << std::endl;
  }
}

// ---- reading a log: shared by replay and dump ---------------------------------------------------

DurableReader open_reader(const LogLocation& loc, const std::string& from, const std::string& since) {
  if (!from.empty() && !since.empty()) throw std::invalid_argument("--from and --since exclude each other");
  if (!from.empty()) {
    std::size_t used = 0;
    std::uint64_t seq = 0;
    try {
      seq = std::stoull(from, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != from.size()) throw std::invalid_argument("--from: bad sequence number '" + from + "'");
    return DurableReader::at_sequence(loc.directory, loc.topic, seq);
  }
  if (!since.empty()) return DurableReader::at_time(loc.directory, loc.topic, parse_time(since));
  return DurableReader::oldest(loc.directory, loc.topic);
}

// Indexes of the manifest's topics named by --topic (all when none is named).
std::vector<bool> selected_topics(const std::vector<RecordedTopic>& manifest, const std::vector<std::string>& names) {
  std::vector<bool> keep(manifest.size(), names.empty());
  for (const std::string& n : names) {
    bool found = false;
    for (std::size_t i = 0; i < manifest.size(); ++i) {
      if (manifest[i].config.name == n) keep[i] = found = true;
    }
    if (!found) throw Error(Errc::no_such_topic, "the recording has no topic '" + n + "'");
  }
  return keep;
}

// The next sample, or nullopt at the end of the log; lost_history is counted and skipped.
std::optional<DurableSample> next_sample(DurableReader& reader, const std::string& where) {
  for (;;) {
    Result<DurableSample> s = reader.next();
    if (s) return *s;
    if (s.code() == Errc::no_data) return std::nullopt;
    if (s.code() == Errc::lost_history) continue;  // reader.lost() counts it
    throw Error(s.code(), where + ": " + (reader.last_error().empty() ? std::string(s.name()) : reader.last_error()));
  }
}

// The segments of a message in Cap'n Proto framing; throws kj::Exception when malformed.
std::vector<std::span<const std::byte>> framed_segments(std::span<const std::byte> message) {
  if (message.size() % sizeof(capnp::word) != 0) KJ_FAIL_REQUIRE("message size is not a multiple of 8 bytes");
  kj::ArrayPtr<const capnp::word> words(reinterpret_cast<const capnp::word*>(message.data()), message.size() / sizeof(capnp::word));
  capnp::FlatArrayMessageReader reader(words);
  std::vector<std::span<const std::byte>> out;
  for (unsigned i = 0;; ++i) {
    kj::ArrayPtr<const capnp::word> seg = reader.getSegment(i);
    if (seg == nullptr) break;
    out.emplace_back(reinterpret_cast<const std::byte*>(seg.begin()), seg.size() * sizeof(capnp::word));
  }
  return out;
}

// ---- replay ------------------------------------------------------------------------------------

struct ReplayArgs {
  std::string dir;
  std::vector<std::string> topics;
  double rate = 1.0;
  bool as_fast = false;
  std::string from, since;
  std::string region_dir;
};

struct ReplayTarget {
  std::unique_ptr<Client> client;
  std::optional<Topic> topic;
  std::optional<RawPublisher> publisher;
};

// The topic to publish a recorded topic on: created with the recorded configuration, type and
// schema, or opened when it exists (then its type must match).
void open_target(ReplayTarget& t, const TopicConfig& recorded, const ReplayArgs& args, const GlobalOptions& global) {
  if (!args.region_dir.empty()) {
    std::string file = recorded.name;
    std::replace(file.begin(), file.end(), '/', '%');
    fs::path path = fs::path(args.region_dir) / (file + ".shmbus");
    if (fs::exists(path)) {
      t.topic = Topic::open_file(path);
    } else {
      RegionOptions o;
      o.backing = RegionOptions::Backing::file;
      o.directory = args.region_dir;
      o.payload_in_region = true;  // messages outlive the replayer with no daemon
      t.topic = Topic::create(recorded, o);
    }
  } else {
    t.client = connect(global);
    t.topic = t.client->open_topic(recorded, Role::publisher,
                                   std::as_bytes(std::span(recorded.schema.data(), recorded.schema.size())));
  }
  if (t.topic->config().type_id != recorded.type_id) {
    throw Error(Errc::type_mismatch, "topic '" + recorded.name + "' exists with type id " + std::to_string(t.topic->config().type_id) +
                                         ", the recording has " + std::to_string(recorded.type_id));
  }
  t.publisher.emplace(*t.topic);
  if (t.client) t.client->register_publisher(*t.publisher);
}

void publish_recorded(ReplayTarget& t, const RecordView& v) {
  Status st;
  if (v.envelope.flags & RecordEnvelope::kTyped) {
    if (v.message.size() % sizeof(capnp::word) != 0) throw Error(Errc::malformed_message, "recorded message is not word-aligned");
    kj::ArrayPtr<const capnp::word> words(reinterpret_cast<const capnp::word*>(v.message.data()), v.message.size() / sizeof(capnp::word));
    capnp::FlatArrayMessageReader reader(words);
    detail::ChunkMessageBuilder builder(detail::core_of(*t.publisher), v.message.size());
    if (!builder.status().ok()) throw Error(builder.status().code(), t.publisher->explain(builder.status().code(), v.message.size()));
    builder.getRoot<capnp::AnyPointer>().set(reader.getRoot<capnp::AnyPointer>());
    st = builder.publish();
  } else {
    Result<RawLoan> loan = t.publisher->loan(v.message.size());
    if (!loan) throw Error(loan.code(), t.publisher->explain(loan.code(), v.message.size()));
    std::memcpy(loan->data().data(), v.message.data(), v.message.size());
    st = t.publisher->publish(std::move(loan.value()));
  }
  if (!st.ok()) throw Error(st.code(), "topic '" + t.topic->name() + "': publish failed: " + st.name());
}

void replay(const ReplayArgs& args, const GlobalOptions& global) {
  if (!(args.rate > 0)) throw std::invalid_argument("--rate must be a positive factor");
  LogLocation loc = locate_log(args.dir);
  if (!loc.recording) throw Error(Errc::invalid_config, args.dir + " is a durable topic's log, not a recording (made by shmbus record)");
  const std::vector<RecordedTopic>& manifest = *loc.recording;
  std::vector<bool> keep = selected_topics(manifest, args.topics);
  std::vector<ReplayTarget> targets(manifest.size());
  for (std::size_t i = 0; i < manifest.size(); ++i) {
    if (keep[i]) open_target(targets[i], manifest[i].config, args, global);
  }
  DurableReader reader = open_reader(loc, args.from, args.since);
  std::signal(SIGINT, on_interrupt);
  std::signal(SIGTERM, on_interrupt);
  using clock = std::chrono::steady_clock;
  // Each message goes out at its offset from the first one, scaled: an absolute schedule, so
  // sleeping late once does not shift every later message.
  clock::time_point start{};
  std::uint64_t first_ns = 0, first_publish_ns = 0, replayed = 0;
  while (!g_interrupted) {
    std::optional<DurableSample> s = next_sample(reader, args.dir);
    if (!s) break;
    RecordView v = split_record(s->data, s->sequence, manifest.size());
    if (!keep[v.envelope.topic]) continue;
    if (!args.as_fast) {
      // The original spacing: by the publish stamps when the topics stamped them (exact), else
      // by when the recorder appended (within its polling latency).
      if (replayed == 0) {
        start = clock::now();
        first_ns = s->time_ns;
        first_publish_ns = v.envelope.publish_time_ns;
      } else {
        const bool stamped = first_publish_ns != 0 && v.envelope.publish_time_ns >= first_publish_ns;
        const std::uint64_t since_first = stamped ? v.envelope.publish_time_ns - first_publish_ns : s->time_ns - first_ns;
        std::this_thread::sleep_until(start + std::chrono::nanoseconds(static_cast<std::int64_t>(static_cast<double>(since_first) / args.rate)));
      }
    }
    publish_recorded(targets[v.envelope.topic], v);
    ++replayed;
  }
  if (global.json) {
    std::cout << nlohmann::json{{"directory", args.dir}, {"messages", replayed}, {"lost", reader.lost()}}.dump() << std::endl;
  } else {
    std::cout << "replayed " << replayed << " messages from " << args.dir;
    if (reader.lost() != 0) std::cout << " (" << reader.lost() << " were removed by retention before they were read)";
    std::cout << std::endl;
  }
}

// ---- log info ----------------------------------------------------------------------------------

std::string topic_type_name(const TopicConfig& c) { return type_name_of(c); }

void log_info(const std::string& dir, const GlobalOptions& global) {
  LogLocation loc = locate_log(dir);
  std::vector<DurableSegmentInfo> segs = list_durable_segments(loc.directory, loc.topic);
  require_a_readable_segment(segs);
  nlohmann::json out = {{"directory", dir}, {"kind", loc.recording ? "recording" : "durable topic"}};
  std::uint64_t size = 0, used = 0;
  nlohmann::json jsegs = nlohmann::json::array();
  Table table({"SEGMENT", "SEQUENCES", "FIRST TIME", "LAST TIME", "SIZE", "USED", "SEALED"});
  std::vector<std::string> damaged;  // one line each, naming the file
  for (const DurableSegmentInfo& s : segs) {
    size += s.size_bytes;
    used += s.used_bytes;
    jsegs.push_back({{"file", s.path.filename().string()}, {"first_sequence", s.first_sequence}, {"next_sequence", s.next_sequence},
                     {"first_time_ns", s.first_time_ns}, {"last_time_ns", s.last_time_ns}, {"size_bytes", s.size_bytes},
                     {"used_bytes", s.used_bytes}, {"sealed", s.sealed}});
    if (!s.damage.empty()) jsegs.back()["damage"] = s.damage, damaged.push_back(s.damage);
    table.add({s.path.filename().string(), std::to_string(s.first_sequence) + ".." + std::to_string(s.next_sequence),
               format_time(s.first_time_ns), format_time(s.last_time_ns), human_bytes(s.size_bytes), human_bytes(s.used_bytes),
               !s.damage.empty() ? "DAMAGED" : s.sealed ? "yes" : "no"});
  }
  const std::uint64_t first = segs.empty() ? 0 : segs.front().first_sequence;
  const std::uint64_t next = segs.empty() ? 0 : segs.back().next_sequence;
  out["segments"] = jsegs;
  out["first_sequence"] = first;
  out["next_sequence"] = next;
  out["messages"] = next - first;
  out["size_bytes"] = size;
  out["used_bytes"] = used;
  if (!segs.empty()) {
    out["first_time_ns"] = segs.front().first_time_ns;
    out["last_time_ns"] = segs.back().last_time_ns;
  }
  nlohmann::json topics = nlohmann::json::array();
  if (loc.recording) {
    for (std::size_t i = 0; i < loc.recording->size(); ++i) {
      const TopicConfig& c = (*loc.recording)[i].config;
      topics.push_back({{"index", i}, {"topic", c.name}, {"type", topic_type_name(c)}, {"type_id", c.type_id}});
    }
    out["topics"] = topics;
  } else {
    TopicConfig c;
    c.type_id = readable_type_id(segs);
    c.schema = durable_schema(loc.directory, loc.topic);
    out["topic"] = loc.topic;
    out["type"] = topic_type_name(c);
    out["type_id"] = c.type_id;
  }
  nlohmann::json readers = nlohmann::json::array();
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(loc.directory / loc.topic / "readers", ec)) {
    if (e.path().extension() != ".pos") continue;
    DurableReader r = DurableReader::named(loc.directory, loc.topic, e.path().stem().string());
    readers.push_back({{"name", e.path().stem().string()}, {"position", r.position()}});
  }
  out["named_readers"] = readers;
  if (global.json) {
    std::cout << out.dump(2) << "\n";
    return;
  }
  std::cout << dir << ": " << (loc.recording ? "recording" : "durable topic '" + loc.topic + "'") << ", " << (next - first)
            << " messages (sequences " << first << ".." << next << "), " << segs.size() << " segment(s), "
            << human_bytes(used) << " used of " << human_bytes(size) << "\n";
  if (!segs.empty()) std::cout << "time: " << format_time(segs.front().first_time_ns) << " .. " << format_time(segs.back().last_time_ns) << "\n";
  if (loc.recording) {
    Table t({"INDEX", "TOPIC", "TYPE"});
    for (const nlohmann::json& j : topics) t.add({std::to_string(j["index"].get<std::size_t>()), j["topic"].get<std::string>(), j["type"].get<std::string>()});
    std::cout << "\n" << t.render();
  } else {
    std::cout << "type: " << out["type"].get<std::string>() << "\n";
  }
  std::cout << "\n" << table.render();
  for (const std::string& d : damaged) std::cout << "damaged: " << d << "\n";
  if (!readers.empty()) {
    Table r({"NAMED READER", "POSITION"});
    for (const nlohmann::json& j : readers) r.add({j["name"].get<std::string>(), std::to_string(j["position"].get<std::uint64_t>())});
    std::cout << "\n" << r.render();
  }
}

}  // namespace

// ---- dump --------------------------------------------------------------------------------------

void add_log_dump_options(CLI::App& dump, LogDumpOptions& o) {
  dump.add_option("--topic", o.topics, "Recordings: only this topic (repeatable)")->type_name("TOPIC");
  dump.add_option("--from", o.from, "Logs: start at this sequence number")->type_name("SEQ");
  dump.add_option("--since", o.since, "Logs: start at the first message at or after TIME (seconds or ns since 1970, or ISO 8601 UTC)")->type_name("TIME");
}

void dump_log(const std::string& dir, const LogDumpOptions& options, long count, const GlobalOptions& global) {
  LogLocation loc = locate_log(dir);
  std::deque<MessageCodec> codecs;  // not movable (capnp::SchemaLoader): a deque never moves them
  std::vector<std::string> names;
  std::vector<bool> keep;
  if (loc.recording) {
    for (const RecordedTopic& t : *loc.recording) {
      codecs.emplace_back(t.config.schema, t.config.type_id);
      names.push_back(t.config.name);
    }
    keep = selected_topics(*loc.recording, options.topics);
  } else {
    if (!options.topics.empty()) throw std::invalid_argument("--topic applies to recordings; " + dir + " is one durable topic's log");
    std::vector<DurableSegmentInfo> segs = list_durable_segments(loc.directory, loc.topic);
    codecs.emplace_back(durable_schema(loc.directory, loc.topic), readable_type_id(segs));
    names.push_back(loc.topic);
    keep = {true};
  }
  DurableReader reader = open_reader(loc, options.from, options.since);
  long shown = 0;
  while (count < 0 || shown < count) {
    std::optional<DurableSample> s = next_sample(reader, dir);
    if (!s) break;
    std::size_t topic = 0;
    std::span<const std::byte> message = s->data;
    nlohmann::json entry = {{"sequence", s->sequence}, {"time_ns", s->time_ns}};
    if (loc.recording) {
      RecordView v = split_record(s->data, s->sequence, names.size());
      topic = v.envelope.topic;
      message = v.message;
      entry["original_sequence"] = v.envelope.original_sequence;
      if (v.envelope.publish_time_ns != 0) entry["publish_time_ns"] = v.envelope.publish_time_ns;
    }
    if (!keep[topic]) continue;
    entry["topic"] = names[topic];
    entry["bytes"] = message.size();
    std::string body;
    bool decoded = codecs[topic].typed();
    if (decoded) {
      try {
        body = codecs[topic].decode(framed_segments(message), global.json);
      } catch (const kj::Exception& e) {
        body = std::string("<malformed: ") + e.getDescription().cStr() + "> " + hex_preview(message.data(), message.size());
        decoded = false;
      }
    } else {
      body = hex_preview(message.data(), message.size());
    }
    if (global.json) {  // one JSON object per line: a log may be larger than memory
      if (decoded) entry["message"] = nlohmann::json::parse(body);
      else entry["hex"] = body;
      std::cout << entry.dump() << "\n";
    } else {
      std::cout << "#" << s->sequence << " " << format_time(s->time_ns) << " " << names[topic] << " (" << message.size()
                << " bytes) " << body << "\n";
    }
    ++shown;
  }
  if (reader.lost() != 0) std::cerr << "shmbus: " << reader.lost() << " messages were removed by retention while dump read\n";
}

void add_durable_commands(CLI::App& app, const GlobalOptions& global) {
  auto r = std::make_shared<RecordArgs>();
  CLI::App* rc = app.add_subcommand("record", "Record one or several topics into a durable log, in one global order");
  rc->add_option("TOPIC", r->topics, "Topic names or region files")->required();
  rc->add_option("-o,--output", r->output, "Recording directory to create")->required()->type_name("DIR");
  rc->add_option("-n,--count", r->count, "Stop after COUNT messages");
  rc->add_option("--duration", r->duration_s, "Stop after this many seconds");
  rc->add_option("--segment-size", r->segment_size, "Bytes per segment file (default 64 MiB)");
  rc->callback([r, &global] { record(*r, global); });

  auto p = std::make_shared<ReplayArgs>();
  CLI::App* pc = app.add_subcommand("replay", "Publish a recording's messages again, with their original spacing");
  pc->add_option("DIR", p->dir, "Recording directory (made by shmbus record)")->required();
  pc->add_option("--topic", p->topics, "Only this recorded topic (repeatable)")->type_name("TOPIC");
  CLI::Option* rate = pc->add_option("--rate", p->rate, "Speed factor: 2 = twice as fast (default 1)")->type_name("X");
  pc->add_flag("--as-fast", p->as_fast, "No spacing: as fast as possible")->excludes(rate);
  CLI::Option* from = pc->add_option("--from", p->from, "Start at this sequence number of the recording")->type_name("SEQ");
  pc->add_option("--since", p->since, "Start at the first message at or after TIME (seconds or ns since 1970, or ISO 8601 UTC)")
      ->type_name("TIME")->excludes(from);
  pc->add_option("--region-dir", p->region_dir, "No daemon: publish on region files in DIR (created if missing)")->type_name("DIR");
  pc->callback([p, &global] { replay(*p, global); });

  CLI::App* lc = app.add_subcommand("log", "Inspect durable logs and recordings");
  lc->require_subcommand(1);
  auto dir = std::make_shared<std::string>();
  CLI::App* ic = lc->add_subcommand("info", "Segments, sequence and time ranges, sizes, named readers, type(s)");
  ic->add_option("DIR", *dir, "A recording, or a durable topic's log directory")->required();
  ic->callback([dir, &global] { log_info(*dir, global); });
}

}  // namespace shmbus::cli
