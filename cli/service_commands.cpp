// shmbus services / service info / call: list a bus's request/response services, show one's
// servers and clients, and make one call, printing each response of its stream. Through the
// bus daemon (like `shmbus topics`), or daemonless with --dir: the file-backed services there
// (their "service%NAME.shmsvc" region files).
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

#include <capnp/serialize.h>

#include "commands.hpp"
#include "message_codec.hpp"
#include "output.hpp"
#include "shmbus/client.hpp"
#include "shmbus/service.hpp"
#include "topic_source.hpp"

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

// The bus daemon, or one line saying how to reach it, or how to go without it.
std::unique_ptr<Client> connect_for_services(const GlobalOptions& global) {
  try {
    return connect(global);
  } catch (const Error& e) {
    throw Error(e.code(), std::string(e.what()) + "; services without a daemon need --dir DIR");
  }
}

// A service mapped for one call: through the daemon (whose client stays open during the call,
// so the daemon looks after it like after any client), or from --dir.
struct OpenedService {
  std::unique_ptr<Client> client;
  Service service;
};

OpenedService open_for_call(const std::string& dir, const std::string& name, const GlobalOptions& global) {
  if (!dir.empty()) return {nullptr, open_service(dir, name)};
  std::unique_ptr<Client> client = connect_for_services(global);
  try {
    Service svc = client->open_existing_service(name, ServiceRole::call);  // never creates
    return {std::move(client), std::move(svc)};
  } catch (const Error& e) {
    if (e.code() != Errc::no_such_topic) throw;
    throw Error(Errc::no_such_topic, "no service '" + name + "' on bus '" + global.bus + "' (see: shmbus services)");
  }
}

std::vector<ServiceListing> all_listings(const std::string& dir, const GlobalOptions& global) {
  if (dir.empty()) {
    std::vector<ServiceListing> out = connect_for_services(global)->list_services();
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.config.name < b.config.name; });
    return out;
  }
  require_directory(dir);
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (service_name_of(entry.path())) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  std::vector<ServiceListing> out;
  for (const auto& file : files) {
    try {
      out.push_back(Service::open_files(dir, *service_name_of(file)).listing());
    } catch (const Error& e) {  // one damaged service must not hide the others
      std::cerr << "shmbus: " << e.what() << "\n";
    }
  }
  return out;
}

ServiceListing listing_of(const std::string& dir, const std::string& name, const GlobalOptions& global) {
  if (!dir.empty()) return open_service(dir, name).listing();
  for (ServiceListing& l : connect_for_services(global)->list_services()) {
    if (l.config.name == name) return std::move(l);
  }
  throw Error(Errc::no_such_topic, "no service '" + name + "' on bus '" + global.bus + "' (see: shmbus services)");
}

// "raw bytes", the type's name from the recorded schema, or its id without one.
std::string type_of(std::uint64_t id, const std::string& schema) {
  if (id == 0) return "raw bytes";
  if (!schema.empty()) {
    try {
      MessageCodec codec(schema, id);
      if (codec.typed()) return codec.type_name();
    } catch (const std::exception&) {  // a damaged schema: fall back to the id
    }
  }
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

std::size_t servers_alive(const ServiceListing& l) {
  return static_cast<std::size_t>(std::count_if(l.servers.begin(), l.servers.end(), [](const auto& r) { return r.alive; }));
}

void list_services(const std::string& dir, const GlobalOptions& global) {
  nlohmann::json j = nlohmann::json::array();
  Table table({"SERVICE", "SERVERS ALIVE", "CLIENTS", "CALLS IN FLIGHT", "REQUEST", "RESPONSE"});
  for (const ServiceListing& l : all_listings(dir, global)) {
    const ServiceConfig& c = l.config;
    std::size_t calls = 0;
    for (const auto& r : l.clients) calls += r.calls_in_flight;
    const std::string request = type_of(c.request_type_id, c.request_schema);
    const std::string response = type_of(c.response_type_id, c.response_schema);
    j.push_back({{"name", c.name}, {"servers", l.servers.size()}, {"servers_alive", servers_alive(l)},
                 {"clients", l.clients.size()}, {"calls_in_flight", calls}, {"request_type_id", c.request_type_id},
                 {"response_type_id", c.response_type_id}, {"request_type", request}, {"response_type", response}});
    table.add({c.name, std::to_string(servers_alive(l)) + "/" + std::to_string(l.servers.size()),
               std::to_string(l.clients.size()), std::to_string(calls), request, response});
  }
  if (global.json) std::cout << j.dump(2) << "\n";
  else std::cout << table.render() << std::flush;
}

void service_info(const std::string& dir, const std::string& name, const GlobalOptions& global) {
  const ServiceListing l = listing_of(dir, name, global);
  const ServiceConfig& c = l.config;
  const std::string request = type_of(c.request_type_id, c.request_schema);
  const std::string response = type_of(c.response_type_id, c.response_schema);
  nlohmann::json j = {{"name", c.name}, {"request_type_id", c.request_type_id}, {"response_type_id", c.response_type_id},
                      {"request_type", request}, {"response_type", response},
                      {"max_servers", c.max_servers}, {"max_clients", c.max_clients},
                      {"max_calls_per_client", c.max_calls_per_client},
                      {"requests", {{"topic", Service::request_topic_name(c.name)}, {"queue_depth", c.request_queue_depth},
                                    {"published", l.requests_published}}},
                      {"responses", {{"topic", Service::response_topic_name(c.name)}, {"queue_depth", c.response_queue_depth},
                                     {"published", l.responses_published}}}};
  Table rows({"ROLE", "ID", "PID", "ALIVE", "SERVED", "CALLS IN FLIGHT"});
  j["servers"] = nlohmann::json::array();
  for (const auto& r : l.servers) {
    j["servers"].push_back({{"id", r.id}, {"pid", r.pid}, {"alive", r.alive}, {"served", r.served}});
    rows.add({"server", std::to_string(r.id), std::to_string(r.pid), r.alive ? "yes" : "no", std::to_string(r.served), "-"});
  }
  j["clients"] = nlohmann::json::array();
  for (const auto& r : l.clients) {
    j["clients"].push_back({{"id", r.id}, {"pid", r.pid}, {"alive", r.alive}, {"calls_in_flight", r.calls_in_flight}});
    rows.add({"client", std::to_string(r.id), std::to_string(r.pid), r.alive ? "yes" : "no", "-", std::to_string(r.calls_in_flight)});
  }
  if (global.json) {
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::cout << "service " << c.name << "\n  request  " << request << ", queue depth " << c.request_queue_depth << ", "
            << l.requests_published << " sent\n  response " << response << ", queue depth " << c.response_queue_depth
            << ", " << l.responses_published << " sent\n  limits   " << c.max_servers << " servers, " << c.max_clients
            << " clients, " << c.max_calls_per_client << " calls in flight per client\n\n"
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

// A kj description on one line (the CLI's errors are one line each).
std::string one_line(std::string text) {
  std::replace(text.begin(), text.end(), '\n', ' ');
  return text;
}

// The request's bytes: --raw hex or @FILE as given; else TEXT, which a typed service's recorded
// request schema encodes (Cap'n Proto text, or JSON with --json) as one flat-array message,
// and a raw service takes as its bytes.
std::vector<std::byte> request_bytes(const CallArgs& args, const Service& svc, const GlobalOptions& global) {
  if (!args.raw.empty() && !args.text.empty()) throw std::invalid_argument("give the request as TEXT or --raw, not both");
  if (args.raw.starts_with("@")) return read_file_bytes(args.raw.substr(1));
  if (!args.raw.empty()) return from_hex(args.raw);
  if (svc.request_type_id() == 0) {
    const auto* p = reinterpret_cast<const std::byte*>(args.text.data());
    return std::vector<std::byte>(p, p + args.text.size());
  }
  if (svc.request_schema().empty()) {
    throw std::invalid_argument("service '" + args.name + "' takes requests of type " + type_of(svc.request_type_id(), "") +
                                " but records no schema to build one from text: give its bytes with --raw");
  }
  MessageCodec codec(svc.request_schema(), svc.request_type_id());
  capnp::MallocMessageBuilder message;
  try {
    codec.encode(args.text.empty() ? (global.json ? "{}" : "()") : args.text, global.json, message);
  } catch (const kj::Exception& e) {
    throw std::invalid_argument("service '" + args.name + "': the request is not a " + codec.type_name() + ": " +
                                one_line(e.getDescription().cStr()));
  } catch (const std::invalid_argument& e) {  // a JSON member the type has no field for
    throw std::invalid_argument("service '" + args.name + "': the request is not a " + codec.type_name() + ": " + e.what());
  }
  kj::Array<capnp::word> flat = capnp::messageToFlatArray(message);
  const auto bytes = flat.asBytes();
  const auto* p = reinterpret_cast<const std::byte*>(bytes.begin());
  return std::vector<std::byte>(p, p + bytes.size());
}

// A typed response in Cap'n Proto text (JSON with --json): one flat-array message. Copied to
// words first: the payload follows a 32-byte header, and the reader wants word alignment.
std::string decode_response(const MessageCodec& codec, std::span<const std::byte> data, bool json) {
  kj::Array<capnp::word> words = kj::heapArray<capnp::word>((data.size() + sizeof(capnp::word) - 1) / sizeof(capnp::word));
  std::memcpy(words.begin(), data.data(), data.size());
  capnp::FlatArrayMessageReader reader(words);
  std::vector<std::span<const std::byte>> segments;
  for (unsigned i = 0;; ++i) {
    kj::ArrayPtr<const capnp::word> seg = reader.getSegment(i);
    if (seg == nullptr) break;
    segments.emplace_back(reinterpret_cast<const std::byte*>(seg.begin()), seg.size() * sizeof(capnp::word));
  }
  return codec.decode(segments, json);
}

void call(const CallArgs& args, const GlobalOptions& global) {
  OpenedService opened = open_for_call(args.dir, args.name, global);
  const Service& svc = opened.service;
  std::vector<std::byte> request = request_bytes(args, svc, global);
  std::optional<MessageCodec> response_codec;
  if (svc.response_type_id() != 0 && !svc.response_schema().empty()) {
    response_codec.emplace(svc.response_schema(), svc.response_type_id());
  }
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
    // A response that is not a message of the recorded type is shown as hex, and said so.
    std::optional<std::string> decoded;
    std::string undecodable;
    if (response_codec && !r->data().empty()) {
      try {
        decoded = decode_response(*response_codec, r->data(), global.json);
      } catch (const kj::Exception& e) {
        undecodable = one_line(e.getDescription().cStr());
      }
    }
    if (global.json) {
      nlohmann::json line{{"index", index}, {"server", r->server()}, {"last", r->last()}};
      if (decoded) line["message"] = nlohmann::json::parse(*decoded);
      else line["hex"] = to_hex(r->data());
      if (!undecodable.empty()) line["error"] = undecodable;
      std::cout << line.dump() << std::endl;
    } else if (decoded) {
      std::cout << "#" << index << " " << *decoded << std::endl;
    } else if (!r->last() || !r->data().empty()) {  // an empty last response only ends the stream
      std::cout << "#" << index << " (" << r->data().size() << " bytes) " << to_hex(r->data())
                << (undecodable.empty() ? "" : " (not a " + response_codec->type_name() + ": " + undecodable + ")") << std::endl;
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
  list->add_option("--dir", *dir, "Directory of the service region files (daemonless; default: through the bus daemon)")->type_name("DIR");
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
  cc->add_option("TEXT", c->text, "The request: typed services as Cap'n Proto text '(a = 1)' (JSON with --json); raw services: its bytes");
  cc->add_option("--raw", c->raw, "The request as hex digits, or @FILE for a file's bytes")->type_name("HEX|@FILE");
  cc->add_option("--timeout", c->timeout_s, "Give up after this many seconds (exit status 3; default 5)");
  cc->add_option("--dir", c->dir, "Directory of the service region files (daemonless)")->type_name("DIR");
  cc->callback([c, &global] { call(*c, global); });
}

}  // namespace shmbus::cli
