// shmbus services / service info / call: list a bus's request/response services, show one's
// servers and clients, and make one call, printing each response of its stream. Daemonless:
// the services are the file-backed ones in --dir (their "service%NAME.shmsvc" region files).
#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>

#include "commands.hpp"
#include "output.hpp"
#include "shmbus/service.hpp"

namespace shmbus::cli {
namespace {

constexpr std::string_view kRegionPrefix = "service%";
constexpr std::string_view kRegionSuffix = ".shmsvc";

// Exit statuses of a call that ran but did not finish (docs/cli.md), beside 1 (failed).
constexpr int kExitTimeout = 3;
constexpr int kExitServerGone = 4;

// "service%a%b.shmsvc" -> "a/b", as Service::region_file names a service's file.
std::optional<std::string> service_name_of(const std::filesystem::path& file) {
  std::string f = file.filename().string();
  if (!f.starts_with(kRegionPrefix) || !f.ends_with(kRegionSuffix)) return std::nullopt;
  std::string name = f.substr(kRegionPrefix.size(), f.size() - kRegionPrefix.size() - kRegionSuffix.size());
  std::replace(name.begin(), name.end(), '%', '/');
  return name;
}

void require_directory(const std::string& dir) {
  if (dir.empty()) {
    throw std::invalid_argument("services need --dir DIR (the directory of the service region files); "
                                        "through the daemon is not supported yet");
  }
  if (std::error_code ec; !std::filesystem::is_directory(dir, ec)) {
    throw std::invalid_argument("--dir " + dir + ": not a directory");
  }
}

Service open_service(const std::string& dir, const std::string& name) {
  require_directory(dir);
  if (std::error_code ec; !std::filesystem::exists(Service::region_file(dir, name), ec)) {
    throw Error(Errc::no_such_topic, "no service '" + name + "' in " + dir + " (see: shmbus services --dir " + dir + ")");
  }
  return Service::open_files(dir, name);
}

// A process that exited (or a pid reused by nobody) is not alive; EPERM means it exists.
bool pid_alive(pid_t pid) { return pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM); }

std::string type_of(std::uint64_t id) {
  if (id == 0) return "raw bytes";
  char buf[32];
  std::snprintf(buf, sizeof buf, "id 0x%016llx", static_cast<unsigned long long>(id));
  return buf;
}

std::string to_hex(std::span<const std::byte> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  s.reserve(bytes.size() * 2);
  for (std::byte b : bytes) {
    s += kDigits[std::to_integer<unsigned>(b) >> 4];
    s += kDigits[std::to_integer<unsigned>(b) & 15];
  }
  return s;
}

std::vector<std::byte> from_hex(const std::string& hex) {
  auto digit = [&](char c) -> unsigned {
    if (c >= '0' && c <= '9') return static_cast<unsigned>(c - '0');
    if (c >= 'a' && c <= 'f') return static_cast<unsigned>(c - 'a' + 10);
    if (c >= 'A' && c <= 'F') return static_cast<unsigned>(c - 'A' + 10);
    throw std::invalid_argument(std::string("--raw: '") + c + "' is not a hex digit");
  };
  if (hex.size() % 2 != 0) throw std::invalid_argument("--raw: odd number of hex digits (" + std::to_string(hex.size()) + ")");
  std::vector<std::byte> out;
  for (std::size_t i = 0; i < hex.size(); i += 2) out.push_back(std::byte(digit(hex[i]) << 4 | digit(hex[i + 1])));
  return out;
}

std::vector<std::byte> read_file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::invalid_argument("--raw @" + path + ": cannot read: " + std::strerror(errno));
  std::string s((std::istreambuf_iterator<char>(in)), {});
  std::vector<std::byte> out(s.size());
  std::memcpy(out.data(), s.data(), s.size());
  return out;
}

struct ServiceSummary {
  std::string name;
  std::size_t servers_alive = 0, servers = 0, clients = 0, calls_in_flight = 0;
  std::uint64_t request_type = 0, response_type = 0;
};

ServiceSummary summarize(const Service& svc) {
  ServiceSummary s{.name = svc.name(), .request_type = svc.request_type_id(), .response_type = svc.response_type_id()};
  for (const auto& row : svc.servers()) {
    ++s.servers;
    s.servers_alive += pid_alive(row.pid) ? 1 : 0;
  }
  for (const auto& row : svc.clients()) {
    ++s.clients;
    s.calls_in_flight += row.calls_in_flight;
  }
  return s;
}

void list_services(const std::string& dir, const GlobalOptions& global) {
  require_directory(dir);
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (service_name_of(entry.path())) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  nlohmann::json j = nlohmann::json::array();
  Table table({"SERVICE", "SERVERS ALIVE", "CLIENTS", "CALLS IN FLIGHT", "REQUEST", "RESPONSE"});
  for (const auto& file : files) {
    ServiceSummary s;
    try {
      s = summarize(Service::open_files(dir, *service_name_of(file)));
    } catch (const Error& e) {  // one damaged service must not hide the others
      std::cerr << "shmbus: " << e.what() << "\n";
      continue;
    }
    j.push_back({{"name", s.name}, {"servers", s.servers}, {"servers_alive", s.servers_alive}, {"clients", s.clients},
                 {"calls_in_flight", s.calls_in_flight}, {"request_type_id", s.request_type}, {"response_type_id", s.response_type}});
    table.add({s.name, std::to_string(s.servers_alive) + "/" + std::to_string(s.servers), std::to_string(s.clients),
               std::to_string(s.calls_in_flight), type_of(s.request_type), type_of(s.response_type)});
  }
  if (global.json) std::cout << j.dump(2) << "\n";
  else std::cout << table.render() << std::flush;
}

nlohmann::json queue_json(const Topic& t) {
  TopicStats st = t.stats();
  return {{"topic", t.name()}, {"queue_depth", t.config().queue_depth}, {"published", st.published}};
}

void service_info(const std::string& dir, const std::string& name, const GlobalOptions& global) {
  Service svc = open_service(dir, name);
  const ServiceSummary s = summarize(svc);
  nlohmann::json j = {{"name", s.name}, {"request_type_id", s.request_type}, {"response_type_id", s.response_type},
                      {"max_servers", svc.max_servers()}, {"max_clients", svc.max_clients()},
                      {"max_calls_per_client", svc.max_calls_per_client()},
                      {"requests", queue_json(svc.requests())}, {"responses", queue_json(svc.responses())}};
  Table rows({"ROLE", "ID", "PID", "ALIVE", "SERVED", "CALLS IN FLIGHT"});
  j["servers"] = nlohmann::json::array();
  for (const auto& r : svc.servers()) {
    const bool alive = pid_alive(r.pid);
    j["servers"].push_back({{"id", r.id}, {"pid", r.pid}, {"alive", alive}, {"served", r.claimed}});
    rows.add({"server", std::to_string(r.id), std::to_string(r.pid), alive ? "yes" : "no", std::to_string(r.claimed), "-"});
  }
  j["clients"] = nlohmann::json::array();
  for (const auto& r : svc.clients()) {
    const bool alive = pid_alive(r.pid);
    j["clients"].push_back({{"id", r.id}, {"pid", r.pid}, {"alive", alive}, {"calls_in_flight", r.calls_in_flight}});
    rows.add({"client", std::to_string(r.id), std::to_string(r.pid), alive ? "yes" : "no", "-", std::to_string(r.calls_in_flight)});
  }
  if (global.json) {
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::cout << "service " << s.name << "\n  request  " << type_of(s.request_type) << ", queue depth "
            << svc.requests().config().queue_depth << ", " << j["requests"]["published"] << " sent\n  response "
            << type_of(s.response_type) << ", queue depth " << svc.responses().config().queue_depth << ", "
            << j["responses"]["published"] << " sent\n  limits   " << svc.max_servers() << " servers, " << svc.max_clients()
            << " clients, " << svc.max_calls_per_client() << " calls in flight per client\n\n"
            << rows.render() << std::flush;
}

struct CallArgs {
  std::string dir;
  std::string name;
  std::string text;
  std::string raw;
  double timeout_s = 5;
};

// A call that ran but did not finish: main() prints it and exits with exit_status_of().
[[noreturn]] void fail_call(Errc code, const std::string& what) { throw CallFailed(code, what); }

void call(const CallArgs& args, const GlobalOptions& global) {
  Service svc = open_service(args.dir, args.name);
  if (svc.request_type_id() != 0 || svc.response_type_id() != 0) {
    throw std::invalid_argument("service '" + args.name + "' is typed (" + type_of(svc.request_type_id()) +
                                            "), and services record no schema to encode it with yet");
  }
  if (!args.raw.empty() && !args.text.empty()) throw std::invalid_argument("give the request as TEXT or --raw, not both");
  std::vector<std::byte> request = args.raw.starts_with("@") ? read_file_bytes(args.raw.substr(1))
                                   : !args.raw.empty()       ? from_hex(args.raw)
                                                             : std::vector<std::byte>(reinterpret_cast<const std::byte*>(args.text.data()),
                                                                                      reinterpret_cast<const std::byte*>(args.text.data()) + args.text.size());
  ServiceClient client(svc);
  Result<RequestLoan> loan = client.loan(std::max<std::size_t>(request.size(), 1));
  if (!loan) throw Error(loan.code(), "service '" + args.name + "': a request of " + std::to_string(request.size()) + " bytes: " + loan.name());
  std::memcpy(loan->data().data(), request.data(), request.size());
  Result<PendingCall> pending = client.send(std::move(*loan), request.size(), kAnyServer);
  if (!pending) fail_call(pending.code(), "service '" + args.name + "': " + pending.name() + (pending.code() == Errc::server_gone ? " (no live server)" : ""));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(args.timeout_s));
  for (std::size_t index = 1; !pending->done(); ++index) {
    const auto left = deadline - std::chrono::steady_clock::now();
    Result<ServiceResponse> r = pending->receive_wait(std::max<std::chrono::nanoseconds>(left, std::chrono::nanoseconds(0)));
    if (!r) {
      if (r.code() == Errc::timeout) fail_call(Errc::timeout, "service '" + args.name + "': no " + (index == 1 ? "response" : "end of stream") + " within " + std::to_string(args.timeout_s) + " s (after " + std::to_string(index - 1) + " responses)");
      if (r.code() == Errc::server_gone) fail_call(Errc::server_gone, "service '" + args.name + "': the server died or left with the call unfinished (after " + std::to_string(index - 1) + " responses)");
      throw Error(r.code(), "service '" + args.name + "': " + r.name());
    }
    if (global.json) {
      std::cout << nlohmann::json{{"index", index}, {"server", r->server()}, {"last", r->last()}, {"hex", to_hex(r->data())}}.dump() << std::endl;
    } else if (!r->last() || !r->data().empty()) {  // an empty last response only ends the stream
      std::cout << "#" << index << " (" << r->data().size() << " bytes) " << to_hex(r->data()) << std::endl;
    }
  }
}

}  // namespace

int exit_status_of(const Error& e) {
  if (dynamic_cast<const CallFailed*>(&e) == nullptr) return 1;
  switch (e.code()) {
    case Errc::timeout: return kExitTimeout;
    case Errc::server_gone: return kExitServerGone;
    default: return 1;
  }
}

void add_service_commands(CLI::App& app, const GlobalOptions& global) {
  auto dir = std::make_shared<std::string>();
  CLI::App* list = app.add_subcommand("services", "List request/response services: servers alive, clients, calls in flight, types");
  list->add_option("--dir", *dir, "Directory of the service region files (daemonless)")->type_name("DIR");
  list->callback([dir, &global] { list_services(*dir, global); });

  auto info_name = std::make_shared<std::string>();
  CLI::App* service = app.add_subcommand("service", "One service");
  service->require_subcommand(1);
  CLI::App* info = service->add_subcommand("info", "A service's servers and clients with pids and liveness, queues, counters");
  info->add_option("NAME", *info_name, "Service name")->required();
  info->add_option("--dir", *dir, "Directory of the service region files (daemonless)")->type_name("DIR");
  info->callback([dir, info_name, &global] { service_info(*dir, *info_name, global); });

  auto c = std::make_shared<CallArgs>();
  CLI::App* cc = app.add_subcommand("call", "Send one request to a service and print each response of its stream");
  cc->add_option("NAME", c->name, "Service name")->required();
  cc->add_option("TEXT", c->text, "The request; raw services: its bytes");
  cc->add_option("--raw", c->raw, "The request as hex digits, or @FILE for a file's bytes")->type_name("HEX|@FILE");
  cc->add_option("--timeout", c->timeout_s, "Give up after this many seconds (exit status 3; default 5)");
  cc->add_option("--dir", c->dir, "Directory of the service region files (daemonless)")->type_name("DIR");
  cc->callback([c, &global] { call(*c, global); });
}

}  // namespace shmbus::cli
