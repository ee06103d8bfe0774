// Commands that ask the bus daemon: status, topics, topic info, regions, clients.
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <nlohmann/json.hpp>
#include <thread>

#include "bridge_status.hpp"
#include "commands.hpp"
#include "durable_inspect.hpp"
#include "message_codec.hpp"
#include "output.hpp"
#include "topic_source.hpp"

namespace shmbus::cli {
namespace {

using nlohmann::json;

std::string program_of(pid_t pid, const std::string& fallback) {
  std::ifstream comm("/proc/" + std::to_string(pid) + "/comm");
  std::string name;
  if (pid > 0 && std::getline(comm, name) && !name.empty()) return name;
  return fallback;
}


void status(const GlobalOptions& global) {
  std::unique_ptr<Client> client = connect(global);
  BusStatusInfo s = client->status();
  if (global.json) {
    std::cout << json{{"bus", s.bus_name}, {"daemon_pid", s.daemon_pid}, {"daemon_uid", s.daemon_uid},
                      {"protocol_version", s.protocol_version}, {"uptime_ms", s.uptime_ms}, {"socket", s.socket_path},
                      {"region_dir", s.region_dir}, {"topics", s.topics}, {"clients", s.clients},
                      {"rules", s.rules_source}}.dump(2)
              << "\n";
    return;
  }
  std::cout << "bus '" << s.bus_name << "': shmbusd pid " << s.daemon_pid << " (uid " << s.daemon_uid << "), protocol "
            << s.protocol_version << ", up " << s.uptime_ms / 1000 << " s\n"
            << "  socket   " << s.socket_path << "\n  regions  " << s.region_dir << "\n  rules    " << s.rules_source
            << "\n  " << s.topics << " topics, " << s.clients << " clients\n";
}

json topic_json(const TopicListing& t, const std::map<std::uint64_t, ClientListing>& clients, double rate) {
  json j = {{"name", t.config.name}, {"type", type_name_of(t.config)}, {"type_id", t.config.type_id},
            {"policy", policy_name(t.config.policy)}, {"queue_depth", t.config.queue_depth},
            {"history_depth", t.config.history_depth}, {"backing", t.anonymous ? "anonymous" : "file"},
            {"path", t.path.string()}, {"region_size", t.region_size}, {"published", t.published},
            {"adopted", t.adopted}, {"revoked", t.revoked}, {"leased", t.leased}, {"pool", json::array()}, {"publishers", json::array()},
            {"subscribers", json::array()}};
  if (rate >= 0) j["rate_hz"] = rate;
  for (const auto& c : t.classes) {
    j["pool"].push_back({{"chunk_size", c.chunk_size}, {"total", c.total}, {"free", c.free}, {"in_queue", c.in_ring},
                         {"loaned", c.loaned}, {"held", c.held}});
  }
  for (const auto& s : t.slots) {
    auto c = clients.find(s.client_id);
    json e = {{"slot", s.slot}, {"pid", s.pid}, {"program", program_of(s.pid, c != clients.end() ? c->second.name : "")},
              {"messages", s.messages}, {"chunks_held", s.chunks_held}};
    if (c != clients.end()) e["uid"] = c->second.uid;
    if (s.role == Role::subscriber) {
      e["dropped"] = s.lost;
      e["backlog"] = s.backlog;
    }
    j[s.role == Role::publisher ? "publishers" : "subscribers"].push_back(e);
  }
  return j;
}

std::map<std::uint64_t, ClientListing> clients_by_id(Client& client) {
  std::map<std::uint64_t, ClientListing> m;
  for (ClientListing& c : client.clients()) m.emplace(c.id, std::move(c));
  return m;
}

// The bridges (shmbus-bridge) among `clients`, with their counters.
std::vector<BridgeStatus> bridges_of(Client& client, const std::map<std::uint64_t, ClientListing>& clients) {
  std::set<pid_t> pids;
  for (const auto& [id, c] : clients) pids.insert(c.pid);
  return bridges_of_bus(std::filesystem::path(client.status().socket_path).parent_path(), pids);
}

void topics(const GlobalOptions& global) {
  std::unique_ptr<Client> client = connect(global);
  std::vector<TopicListing> list = client->list_topics();
  if (global.json) {
    auto clients = clients_by_id(*client);
    json j = json::array();
    for (const auto& t : list) j.push_back(topic_json(t, clients, -1));
    std::cout << j.dump(2) << "\n";
    return;
  }
  Table table({"TOPIC", "TYPE", "POLICY", "PUBS", "SUBS", "PUBLISHED", "REGION"});
  for (const auto& t : list) {
    std::size_t pubs = 0, subs = 0;
    for (const auto& s : t.slots) (s.role == Role::publisher ? pubs : subs)++;
    table.add({t.config.name, type_name_of(t.config), policy_name(t.config.policy), std::to_string(pubs), std::to_string(subs),
               std::to_string(t.published), t.anonymous ? "anonymous " + human_bytes(t.region_size) : t.path.string()});
  }
  std::cout << table.render();
}

void topic_info(const std::string& name, const GlobalOptions& global) {
  std::unique_ptr<Client> client = connect(global);
  auto find = [&]() -> std::optional<TopicListing> {
    for (auto& t : client->list_topics()) if (t.config.name == name) return t;
    return std::nullopt;
  };
  std::optional<TopicListing> first = find();
  if (!first && show_declared_durable_log(*client, name, global)) return;  // durable_inspect.cpp
  if (!first) throw Error(Errc::invalid_config, "no topic '" + name + "' on bus '" + global.bus + "' (see: shmbus topics)");
  auto t0 = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // the current rate needs two readings
  std::optional<TopicListing> t = find();
  if (!t) throw Error(Errc::invalid_config, "topic '" + name + "' went away");
  double rate = static_cast<double>(t->published - first->published) /
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto clients = clients_by_id(*client);
  json j = topic_json(*t, clients, rate);
  std::vector<json> bridged;  // what the NATS bridges counted for this topic
  for (const BridgeStatus& b : bridges_of(*client, clients)) {
    if (!b.topics.contains(name)) continue;
    bridged.push_back(bridge_topic_json(b, b.topics[name]));
    bridged.back()["topic"] = name;
  }
  j["bridges"] = bridged;
  if (global.json) {
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::cout << "topic '" << name << "' (" << j["type"].get<std::string>() << "), policy " << j["policy"].get<std::string>()
            << ", queue " << t->config.queue_depth << ", history " << t->config.history_depth << "\n  "
            << t->published << " published, " << static_cast<long>(rate) << " msg/s now, region "
            << (t->anonymous ? "anonymous" : t->path.string()) << " (" << human_bytes(t->region_size) << ")\n\n";
  Table pool({"CHUNK SIZE", "TOTAL", "FREE", "IN QUEUE", "LOANED", "HELD"});
  for (const auto& c : t->classes) {
    pool.add({human_bytes(c.chunk_size), std::to_string(c.total), std::to_string(c.free), std::to_string(c.in_ring),
              std::to_string(c.loaned), std::to_string(c.held)});
  }
  std::cout << pool.render() << "\n";
  Table slots({"ROLE", "SLOT", "PID", "UID", "PROGRAM", "MESSAGES", "DROPPED", "BACKLOG", "HOLDS"});
  for (const char* role : {"publishers", "subscribers"}) {
    for (const auto& e : j[role]) {
      slots.add({role == std::string("publishers") ? "publisher" : "subscriber", std::to_string(e["slot"].get<int>()),
                 std::to_string(e["pid"].get<int>()), e.contains("uid") ? std::to_string(e["uid"].get<int>()) : "-",
                 e["program"], std::to_string(e["messages"].get<std::uint64_t>()),
                 e.contains("dropped") ? std::to_string(e["dropped"].get<std::uint64_t>()) : "-",
                 e.contains("backlog") ? std::to_string(e["backlog"].get<std::uint64_t>()) : "-",
                 std::to_string(e["chunks_held"].get<int>())});
    }
  }
  std::cout << slots.render();
  if (!bridged.empty()) std::cout << "\nNATS bridges (shmbus-bridge):\n" << bridge_table(bridged);
}

void regions(const GlobalOptions& global) {
  std::unique_ptr<Client> client = connect(global);
  std::vector<TopicListing> list = client->list_topics();
  if (global.json) {
    json j = json::array();
    for (const auto& t : list) {
      j.push_back({{"topic", t.config.name}, {"backing", t.anonymous ? "anonymous" : "file"}, {"path", t.path.string()},
                   {"size", t.region_size}, {"adopted", t.adopted}, {"revoked", t.revoked}, {"leased", t.leased}});
    }
    std::cout << j.dump(2) << "\n";
    return;
  }
  Table table({"TOPIC", "KIND", "SIZE", "FILE", "ADOPTED", "LEASE"});
  for (const auto& t : list) {
    // LEASE: the daemon's write lease on the file; REVOKED once someone rewrote or truncated it.
    const char* lease = t.revoked ? "REVOKED" : t.anonymous ? "-" : t.leased ? "held" : "down";
    table.add({t.config.name, t.anonymous ? "anonymous" : "file", human_bytes(t.region_size),
               t.anonymous ? "-" : t.path.string(), t.adopted ? "yes" : "no", lease});
  }
  std::cout << table.render();
}

void clients(const GlobalOptions& global) {
  std::unique_ptr<Client> client = connect(global);
  std::vector<ClientListing> list = client->clients();
  // What each slot holds comes from the topics' listings.
  std::map<std::pair<std::string, std::pair<int, std::uint32_t>>, std::uint32_t> held;
  for (const auto& t : client->list_topics()) {
    for (const auto& s : t.slots) held[{t.config.name, {static_cast<int>(s.role), s.slot}}] = s.chunks_held;
  }
  std::map<pid_t, BridgeStatus> bridges;
  {
    std::map<std::uint64_t, ClientListing> by_id;
    for (const auto& c : list) by_id.emplace(c.id, c);
    for (BridgeStatus& b : bridges_of(*client, by_id)) bridges.emplace(b.pid, std::move(b));
  }
  if (global.json) {
    json j = json::array();
    for (const auto& c : list) {
      json e = {{"id", c.id}, {"pid", c.pid}, {"uid", c.uid}, {"gid", c.gid}, {"name", c.name},
                {"connected_ms", c.connected_ms}, {"publishes", json::array()}, {"subscribes", json::array()}};
      for (const auto& r : c.registrations) {
        e[r.role == Role::publisher ? "publishes" : "subscribes"].push_back(
            {{"topic", r.topic}, {"slot", r.slot}, {"chunks_held", held[{r.topic, {static_cast<int>(r.role), r.slot}}]}});
      }
      if (auto b = bridges.find(c.pid); b != bridges.end()) {
        e["bridge"] = {{"bus_id", b->second.bus_id}, {"nats_connected", b->second.nats_connected}, {"topics", b->second.topics}};
      }
      j.push_back(e);
    }
    std::cout << j.dump(2) << "\n";
    return;
  }
  Table table({"ID", "PID", "UID", "NAME", "PUBLISHES", "SUBSCRIBES", "HOLDS"});
  for (const auto& c : list) {
    std::string pubs, subs;
    std::uint32_t holds = 0;
    for (const auto& r : c.registrations) {
      (r.role == Role::publisher ? pubs : subs) += (r.role == Role::publisher ? pubs : subs).empty() ? r.topic : "," + r.topic;
      holds += held[{r.topic, {static_cast<int>(r.role), r.slot}}];
    }
    table.add({std::to_string(c.id), std::to_string(c.pid), std::to_string(c.uid), c.name, pubs.empty() ? "-" : pubs,
               subs.empty() ? "-" : subs, std::to_string(holds)});
  }
  std::cout << table.render();
  std::vector<json> rows;
  for (const auto& [pid, b] : bridges) {
    for (const auto& [topic, counters] : b.topics.items()) {
      rows.push_back(bridge_topic_json(b, counters));
      rows.back()["topic"] = topic;
    }
  }
  if (!rows.empty()) std::cout << "\nNATS bridges (shmbus-bridge), per topic:\n" << bridge_table(rows);
}

}  // namespace

void add_daemon_commands(CLI::App& app, const GlobalOptions& global) {
  app.add_subcommand("status", "Is the daemon up: pid, version, uptime, directories, counts")
      ->callback([&global] { status(global); });
  app.add_subcommand("topics", "Every topic: type, policy, publishers, subscribers, messages")
      ->callback([&global] { topics(global); });
  CLI::App* topic = app.add_subcommand("topic", "One topic in detail");
  topic->require_subcommand(1);
  auto name = std::make_shared<std::string>();
  CLI::App* info = topic->add_subcommand("info", "Type, policy, pool use, publishers and subscribers, current rate");
  info->add_option("TOPIC", *name, "Topic name")->required();
  info->callback([name, &global] { topic_info(*name, global); });
  app.add_subcommand("regions", "Every shared region of the bus")->callback([&global] { regions(global); });
  app.add_subcommand("clients", "Every connected process with what it publishes, subscribes and holds")
      ->callback([&global] { clients(global); });
}

}  // namespace shmbus::cli
