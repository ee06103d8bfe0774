// shmbus snapshot TOPIC -o FILE and shmbus dump FILE: save a consistent copy of a topic's
// retained messages, and read it back offline through the schema recorded inside it.
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "durable_commands.hpp"
#include "message_codec.hpp"
#include "output.hpp"
#include "shmbus/snapshot.hpp"
#include "topic_source.hpp"

namespace shmbus::cli {
namespace {

struct SnapshotArgs {
  std::string topic;
  std::string output;
};

struct DumpArgs {
  std::string file;
  long count = -1;
  LogDumpOptions log;  // a directory: a durable log or a recording (durable_commands.cpp)
};

void dump(const DumpArgs& args, const GlobalOptions& global) {
  Snapshot snap = Snapshot::open(args.file);
  MessageCodec codec(snap.schema(), snap.type_id());
  nlohmann::json out = {{"topic", snap.topic_name()}, {"type", codec.type_name()},
                        {"created_unix_ns", snap.created_unix_ns()}, {"messages", nlohmann::json::array()}};
  if (!global.json) {
    std::cout << "snapshot of topic '" << snap.topic_name() << "' (" << codec.type_name() << "), "
              << snap.messages().size() << " messages\n";
  }
  long shown = 0;
  for (const SnapshotMessage& m : snap.messages()) {
    if (args.count >= 0 && shown++ >= args.count) break;
    std::size_t bytes = 0;
    for (auto s : m.segments) bytes += s.size();
    std::string body;
    bool decoded = m.typed && codec.typed();
    if (decoded) {
      try {
        body = codec.decode(m.segments, global.json);
      } catch (const kj::Exception& e) {
        body = std::string("<malformed: ") + e.getDescription().cStr() + ">";
        decoded = false;
      }
    } else {
      body = hex_preview(m.segments.at(0).data(), m.segments.at(0).size());
    }
    if (global.json) {
      nlohmann::json entry = {{"sequence", m.sequence}, {"publish_time_ns", m.publish_time_ns}, {"bytes", bytes}};
      if (decoded) entry["message"] = nlohmann::json::parse(body);
      else entry["hex"] = body;
      out["messages"].push_back(entry);
    } else {
      std::cout << "#" << m.sequence << " (" << bytes << " bytes) " << body << "\n";
    }
  }
  if (global.json) std::cout << out.dump(2) << "\n";
}

}  // namespace

void add_snapshot_commands(CLI::App& app, const GlobalOptions& global) {
  auto snap = std::make_shared<SnapshotArgs>();
  CLI::App* s = app.add_subcommand("snapshot", "Save a consistent copy of a topic's retained messages");
  s->add_option("TOPIC", snap->topic, "Topic name or region file")->required();
  s->add_option("-o,--output", snap->output, "Snapshot file to write")->required();
  s->callback([snap, &global] {
    OpenedTopic opened = open_topic(snap->topic, global, Role::subscriber);
    Topic& topic = opened.topic;
    std::size_t n = save_snapshot(topic, snap->output);
    if (global.json) {
      std::cout << nlohmann::json{{"topic", topic.name()}, {"file", snap->output}, {"messages", n}}.dump() << "\n";
    } else {
      std::cout << "saved " << n << " messages of topic '" << topic.name() << "' to " << snap->output << "\n";
    }
  });

  auto d = std::make_shared<DumpArgs>();
  CLI::App* dc = app.add_subcommand("dump", "Print the messages of a snapshot file, durable log or recording, decoded through its recorded schema");
  dc->add_option("FILE", d->file, "Snapshot file, or a recording / durable topic's log directory")->required();
  dc->add_option("-n,--count", d->count, "Print at most COUNT messages");
  add_log_dump_options(*dc, d->log);
  dc->callback([d, &global] {
    if (std::filesystem::is_directory(d->file)) return dump_log(d->file, d->log, d->count, global);
    dump(*d, global);
  });
}

}  // namespace shmbus::cli
