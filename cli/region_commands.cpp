// shmbus region inspect REGION|FILE: the header, sections, pool use per size class, and every
// chunk that is not free with its state and holder. Reads a read-only mapping: it never
// disturbs the bus and works with no daemon running.
#include <fcntl.h>

#include <filesystem>
#include <iostream>
#include <optional>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "durable_inspect.hpp"
#include "message_codec.hpp"
#include "output.hpp"
#include "topic_source.hpp"

namespace shmbus::cli {
namespace {

std::string seal_names(int seals) {
  if (seals < 0) return "none (file)";
  std::string s;
  auto add = [&](int bit, const char* name) {
    if (seals & bit) s += std::string(s.empty() ? "" : ",") + name;
  };
  add(F_SEAL_SEAL, "seal");
  add(F_SEAL_SHRINK, "shrink");
  add(F_SEAL_GROW, "grow");
  add(F_SEAL_WRITE, "write");
  add(F_SEAL_FUTURE_WRITE, "future_write");
  return s.empty() ? "none" : s;
}


// `shmbus region inspect` of a region file the library refused (damaged, foreign, another
// version): prints what the header says, read without mapping it, and rethrows the
// validation error, which names the inconsistent field (main() prints it as the one-line
// error and exits 1).
[[noreturn]] void show_refused(const std::string& target, const GlobalOptions& global, const Error& refusal) {
  Topic::RegionInfo info;
  try {
    info = Topic::read_region_header(target);
  } catch (const Error&) {
    throw refusal;  // not even a header to show
  }
  if (global.json) {
    nlohmann::json j;
    j["file"] = target;
    j["error"] = refusal.what();
    j["header"] = {{"layout_version", info.layout_version}, {"kind", info.anonymous ? "anonymous" : "file"},
                   {"size", info.size}, {"bus", info.bus_name}, {"epoch", info.bus_epoch}, {"revoked", info.revoked}};
    for (const auto& s : info.sections) j["sections"].push_back({{"name", s.name}, {"offset", s.offset}, {"size", s.size}});
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << "region " << target << " (REFUSED, as its header says, unchecked)\n"
              << "  layout version " << info.layout_version << ", " << (info.anonymous ? "anonymous (memfd)" : "file-backed")
              << ", size " << info.size << ", bus '" << info.bus_name << "'" << (info.revoked ? ", revoked" : "") << "\n\n";
    Table sections({"SECTION", "OFFSET", "SIZE"});
    for (const auto& s : info.sections) sections.add({s.name, std::to_string(s.offset), std::to_string(s.size)});
    std::cout << sections.render() << std::flush;
  }
  throw refusal;
}

// Every region this command maps goes through Topic::inspect_file (or the daemon's
// open_topic), i.e. TopicMap::open, which registers the mapping with the library's SIGBUS
// guard before its first read: a region truncated under us becomes Errc::region_lost, not a
// crash. Everything shown is bounded by the configuration validated at open (stats(),
// busy_chunks() and region_info() never index with a value read from the mapping unchecked).
void inspect(const std::string& target, const GlobalOptions& global) {
  if (is_durable_log_dir(target)) return inspect_durable_log(target, nullptr, global);  // durable_inspect.cpp
  std::optional<OpenedTopic> maybe;
  try {
    maybe.emplace(inspect_topic(target, global));
  } catch (const Error& e) {
    switch (e.code()) {
      case Errc::not_a_region: case Errc::unknown_layout_version: case Errc::abi_mismatch:
      case Errc::region_too_short: case Errc::region_corrupt: case Errc::region_unsealed: case Errc::region_lost:
        if (std::error_code ec; std::filesystem::is_regular_file(target, ec)) show_refused(target, global, e);
        break;
      default: break;
    }
    throw;
  }
  OpenedTopic& opened = *maybe;
  Topic& topic = opened.topic;
  Topic::RegionInfo info = topic.region_info();
  TopicStats stats = topic.stats();
  std::vector<Topic::ChunkInfo> chunks = topic.busy_chunks();
  const TopicConfig& c = topic.config();
  if (global.json) {
    nlohmann::json j;
    j["file"] = target;
    j["header"] = {{"magic", "SHMBUS1"}, {"layout_version", info.layout_version},
                   {"kind", info.anonymous ? "anonymous" : "file"}, {"size", info.size},
                   {"bus", info.bus_name}, {"epoch", info.bus_epoch}, {"healthy", info.healthy},
                   {"seals", seal_names(info.seals)}};
    for (const auto& s : info.sections) j["sections"].push_back({{"name", s.name}, {"offset", s.offset}, {"size", s.size}});
    j["payload_pools"] = nlohmann::json::array();
    for (const auto& p : info.pools) {
      j["payload_pools"].push_back({{"pool", p.index}, {"generation", p.generation}, {"size", p.size},
                                    {"where", p.external ? "memfd of its publisher" : "this region"},
                                    {"owner_pid", p.owner_pid}});
    }
    j["topic"] = {{"name", c.name}, {"type", type_name_of(c)}, {"type_id", c.type_id}, {"policy", policy_name(c.policy)},
                  {"queue_depth", c.queue_depth}, {"history_depth", c.history_depth},
                  {"max_publishers", c.max_publishers}, {"max_subscribers", c.max_subscribers},
                  {"max_message_size", c.max_message_size}, {"published", stats.published}};
    for (const auto& u : stats.classes) {
      j["pool"].push_back({{"chunk_size", u.chunk_size}, {"total", u.total}, {"free", u.free},
                           {"in_queue", u.in_ring}, {"loaned", u.loaned}, {"held", u.held}});
    }
    for (const auto& ch : chunks) {
      j["chunks"].push_back({{"index", ch.index}, {"chunk_size", ch.size_class}, {"refs", ch.refs},
                             {"sequence", ch.sequence == ~0ULL ? nlohmann::json(nullptr) : nlohmann::json(ch.sequence)},
                             {"state", ch.state}});
    }
    for (const auto& cl : stats.clients) {
      j["clients"].push_back({{"role", cl.role == ClientSlotInfo::Role::publisher ? "publisher" : "subscriber"},
                              {"slot", cl.slot}, {"pid", cl.pid}, {"messages", cl.messages},
                              {"lost", cl.lost}, {"backlog", cl.backlog}, {"chunks", cl.chunks}});
    }
    if (!j.contains("chunks")) j["chunks"] = nlohmann::json::array();
    if (!j.contains("clients")) j["clients"] = nlohmann::json::array();
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::cout << "region " << target << "\n"
            << "  magic SHMBUS1, layout version " << info.layout_version << ", "
            << (info.anonymous ? "anonymous (memfd)" : "file-backed") << ", " << human_bytes(info.size)
            << ", bus '" << info.bus_name << "', " << (info.healthy ? "healthy" : "LOST/REVOKED")
            << ", seals: " << seal_names(info.seals) << "\n"
            << "topic '" << c.name << "': policy " << policy_name(c.policy) << ", queue " << c.queue_depth
            << ", history " << c.history_depth << ", " << stats.published << " published, type "
            << type_name_of(c)
            << "\n\n";
  Table sections({"SECTION", "OFFSET", "SIZE"});
  for (const auto& s : info.sections) sections.add({s.name, std::to_string(s.offset), std::to_string(s.size)});
  std::cout << sections.render() << "\n";
  // Where the payload is: per-publisher sealed memfds (anonymous), or the region file itself.
  Table pools({"PAYLOAD POOL", "GENERATION", "SIZE", "WHERE", "CREATED BY PID"});
  for (const auto& p : info.pools) {
    pools.add({std::to_string(p.index), std::to_string(p.generation), human_bytes(p.size),
               p.external ? "sealed memfd of its publisher" : "this region",
               p.external ? std::to_string(p.owner_pid) : "-"});
  }
  std::cout << pools.render() << "\n";
  Table pool({"CHUNK SIZE", "TOTAL", "FREE", "IN QUEUE", "LOANED", "HELD"});
  for (const auto& u : stats.classes) {
    pool.add({human_bytes(u.chunk_size), std::to_string(u.total), std::to_string(u.free), std::to_string(u.in_ring),
              std::to_string(u.loaned), std::to_string(u.held)});
  }
  std::cout << pool.render() << "\n";
  Table busy({"CHUNK", "SIZE", "REFS", "SEQUENCE", "STATE"});
  for (const auto& ch : chunks) {
    busy.add({std::to_string(ch.index), human_bytes(ch.size_class), std::to_string(ch.refs),
              ch.sequence == ~0ULL ? "-" : std::to_string(ch.sequence), ch.state});
  }
  std::cout << busy.render();
}

}  // namespace

void add_region_commands(CLI::App& app, const GlobalOptions& global) {
  CLI::App* region = app.add_subcommand("region", "Inspect shared regions");
  region->require_subcommand(1);
  CLI::App* cmd = region->add_subcommand("inspect", "Header, sections, pool use and busy chunks of a region (no daemon needed)");
  auto target = std::make_shared<std::string>();
  cmd->add_option("REGION", *target, "Region file")->required();
  cmd->callback([target, &global] { inspect(*target, global); });
}

}  // namespace shmbus::cli
