#include "service_importer.hpp"

#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <spdlog/spdlog.h>

#include "service_wire.hpp"
#include "shmbus/service.hpp"
#include "subjects.hpp"

namespace shmbus::bridge {

namespace {
// Why a reply was refused (hostile or broken input from the network).
enum class Hostile { bad_headers, out_of_order, too_large, count_ };
const char* hostile_name(Hostile h) {
  switch (h) {
    case Hostile::bad_headers: return "bad_headers";
    case Hostile::out_of_order: return "out_of_order";
    case Hostile::too_large: return "too_large";
    default: return "?";
  }
}
}  // namespace

struct ServiceImporter::Imported {
  std::size_t index = 0;  // in imported_: the first token after the inbox
  const ServiceImportRule* rule = nullptr;
  std::string subject;
  struct Reply {
    std::uint64_t call = 0;
    bool no_responders = false, headers_malformed = false;
    std::optional<std::string> index, last, error;
    std::string payload;
  };
  std::mutex mutex;  // replies, between the NATS delivery thread and ours
  std::deque<Reply> replies;
  // Ours only:
  std::optional<Service> service;
  std::chrono::steady_clock::time_point next_open{};
  struct Lane {
    std::optional<ServiceServer> server;
    bool retiring = false;
  };
  std::vector<Lane> lanes;
  std::size_t next_lane = 0;
  struct Call {
    std::size_t lane;
    ServiceRequest request;
    std::uint32_t next_index = 0;
    std::chrono::steady_clock::time_point deadline;
  };
  std::map<std::uint64_t, Call> calls;
  std::uint64_t next_call = 1;
  using Counter = std::atomic<std::uint64_t>;  // relaxed tallies for the status file
  Counter forwarded{0}, answered{0}, responses{0}, server_gone{0}, no_responders{0}, timeouts{0}, in_flight{0};
  Counter hostile[static_cast<int>(Hostile::count_)]{};
  static void add(Counter& c, std::uint64_t n = 1) { c.fetch_add(n, std::memory_order_relaxed); }
};

ServiceImporter::ServiceImporter(Engine& engine, const BridgeConfig& config, LogLimiter& log)
    : engine_(engine), config_(config), log_(log) {
  for (const ServiceImportRule& rule : config_.service_imports) {
    auto s = std::make_unique<Imported>();
    s->index = imported_.size();
    s->rule = &rule;
    s->subject = *subject_of(rule.prefix, rule.service);  // checked by the config
    s->lanes.resize(rule.lanes);
    imported_.push_back(std::move(s));
  }
}

ServiceImporter::~ServiceImporter() { stop(); }

void ServiceImporter::start() {
  if (imported_.empty()) return;
  inbox_ = engine_.new_inbox();
  engine_.subscribe(inbox_ + ".>", [this](const IncomingMessage& m) { on_reply(m); });
  for (auto& s : imported_) {
    spdlog::info("serving service '{}' ({}) here by calling {} over NATS", s->rule->service, s->rule->directory.string(), s->subject);
  }
  loop_.start([this](const std::atomic<bool>& stop) { run(stop); });
}

void ServiceImporter::stop() {
  loop_.stop();
}

void ServiceImporter::on_reply(const IncomingMessage& m) {
  // "<inbox>.<service index>.<call id>"
  std::string_view rest = m.subject().substr(std::min(m.subject().size(), inbox_.size() + 1));
  const std::size_t dot = rest.find('.');
  std::optional<std::uint64_t> which = dot == std::string_view::npos ? std::nullopt : parse_u64(rest.substr(0, dot));
  std::optional<std::uint64_t> call = dot == std::string_view::npos ? std::nullopt : parse_u64(rest.substr(dot + 1));
  if (!which || !call || *which >= imported_.size()) return;
  Imported& s = *imported_[*which];
  Imported::Reply r;
  r.call = *call;
  std::optional<std::string_view> status = m.header(kNatsStatusHeader);
  r.no_responders = status && *status == kNatsNoResponders && m.payload().empty();
  auto copy = [&](const char* key) -> std::optional<std::string> {
    std::optional<std::string_view> v = m.header(key);
    return v ? std::optional<std::string>(std::string(*v)) : std::nullopt;
  };
  r.index = copy(kHeaderIndex);
  r.last = copy(kHeaderLast);
  r.error = copy(kHeaderError);
  r.headers_malformed = m.headers_malformed();
  r.payload.assign(reinterpret_cast<const char*>(m.payload().data()), m.payload().size());
  std::lock_guard lock(s.mutex);
  s.replies.push_back(std::move(r));
}

bool ServiceImporter::pump(Imported& s) {
  bool any = false;
  const auto now = std::chrono::steady_clock::now();
  const std::string& name = s.rule->service;
  if (!s.service) {
    if (now < s.next_open) return false;
    try {
      std::error_code ec;
      if (std::filesystem::exists(Service::region_file(s.rule->directory, name), ec)) {
        s.service.emplace(Service::open_files(s.rule->directory, name));
      } else {
        std::filesystem::create_directories(s.rule->directory, ec);
        RegionOptions o;
        o.backing = RegionOptions::Backing::file;
        o.directory = s.rule->directory;
        s.service.emplace(Service::create(ServiceConfig{.name = name}, o));
        spdlog::info("created service '{}' in {}", name, s.rule->directory.string());
      }
    } catch (const Error& e) {
      log_.warn(s.subject + "/open", "service import '" + name + "': " + e.what());
      s.next_open = now + std::chrono::seconds(1);
      return false;
    }
  }
  // Lanes: a retired lane with no call left goes (its row freed: its failed calls' clients see
  // server_gone); empty places get a fresh server.
  for (std::size_t k = 0; k < s.lanes.size(); ++k) {
    Imported::Lane& lane = s.lanes[k];
    if (lane.retiring) {
      bool busy = false;
      for (const auto& [id, c] : s.calls) busy = busy || c.lane == k;
      if (busy) continue;
      lane.server.reset();
      lane.retiring = false;
      any = true;
    }
    if (!lane.server && now >= s.next_open) {
      try {
        lane.server.emplace(*s.service);
      } catch (const Error& e) {
        log_.warn(s.subject + "/lane", "service import '" + name + "': cannot serve: " + e.what());
        s.next_open = now + std::chrono::milliseconds(200);
      }
    }
  }
  auto fail = [&](std::map<std::uint64_t, Imported::Call>::iterator it) {
    s.lanes[it->second.lane].retiring = true;
    Imported::add(s.server_gone);
    s.calls.erase(it);
  };
  // 1. New local calls go out, one take per lane in turn (each take claims a call for its lane).
  for (std::size_t n = 0; n < s.lanes.size(); ++n) {
    const std::size_t k = (s.next_lane + n) % s.lanes.size();
    Imported::Lane& lane = s.lanes[k];
    if (!lane.server || lane.retiring) continue;
    Result<ServiceRequest> req = lane.server->take();
    if (!req) continue;
    any = true;
    s.next_lane = k + 1;
    const std::uint64_t id = s.next_call++;
    Headers h = {{kHeaderOrigin, config_.bus_id}};
    const PublishOutcome out =
        engine_.publish_request(s.subject, inbox_ + "." + std::to_string(s.index) + "." + std::to_string(id), h, req->data());
    auto it = s.calls.emplace(id, Imported::Call{k, std::move(*req), 0, now + std::chrono::milliseconds(s.rule->call_timeout_ms)}).first;
    if (out != PublishOutcome::sent) {
      log_.warn(s.subject + "/send", "service import '" + name + "': NATS did not take a request: the call fails (server_gone)");
      fail(it);
      continue;
    }
    Imported::add(s.forwarded);
  }
  // 2. Replies become responses.
  std::deque<Imported::Reply> replies;
  {
    std::lock_guard lock(s.mutex);
    replies.swap(s.replies);
  }
  for (Imported::Reply& r : replies) {
    any = true;
    auto it = s.calls.find(r.call);
    if (it == s.calls.end()) continue;  // a late reply to a call that ended
    Imported::Call& c = it->second;
    auto hostile = [&](Hostile why, const std::string& detail) {
      Imported::add(s.hostile[static_cast<int>(why)]);
      log_.warn(s.subject + "/" + hostile_name(why), "service import '" + name + "': refused a reply (" + hostile_name(why) + "): " +
                                                          detail + "; the call fails (server_gone)");
      fail(it);
    };
    if (r.no_responders) {
      Imported::add(s.no_responders);
      log_.warn(s.subject + "/no_responders", "service import '" + name + "': no bridge answers " + s.subject + ": the call fails (server_gone)");
      fail(it);
      continue;
    }
    if (r.headers_malformed) {
      hostile(Hostile::bad_headers, "malformed header block");
      continue;
    }
    if (r.error) {
      if (*r.error == kErrorTimeout) {
        Imported::add(s.timeouts);
        s.calls.erase(it);  // dropped: the client's own timeout ends it
      } else if (*r.error == kErrorServerGone || *r.error == kErrorRefused) {
        fail(it);
      } else {
        hostile(Hostile::bad_headers, "unknown " + std::string(kHeaderError) + " '" + r.error->substr(0, 64) + "'");
      }
      continue;
    }
    std::optional<std::uint64_t> index;
    if (r.index) index = parse_u64(*r.index);
    if (!index || !r.last || (*r.last != "0" && *r.last != "1")) {
      hostile(Hostile::bad_headers, std::string("missing or malformed ") + kHeaderIndex + "/" + kHeaderLast);
      continue;
    }
    if (*index != c.next_index) {
      hostile(Hostile::out_of_order, "response " + std::to_string(*index) + " where " + std::to_string(c.next_index) + " was due");
      continue;
    }
    ServiceServer& server = *s.lanes[c.lane].server;
    Result<ResponseLoan> loan = server.loan(r.payload.size());
    if (!loan) {
      hostile(Hostile::too_large, "a response of " + std::to_string(r.payload.size()) + " bytes: " + loan.name());
      continue;
    }
    std::memcpy(loan->data().data(), r.payload.data(), r.payload.size());
    const bool last = *r.last == "1";
    Status st = server.respond(c.request, std::move(*loan), last);
    ++c.next_index;
    c.deadline = now + std::chrono::milliseconds(s.rule->call_timeout_ms);
    Imported::add(s.responses);
    if (last || !st) {
      if (last && st) Imported::add(s.answered);
      s.calls.erase(it);  // answered, or the client dropped it (call_cancelled)
    }
  }
  // 3. Calls with no reply for too long are dropped: their clients time out on their own.
  for (auto it = s.calls.begin(); it != s.calls.end();) {
    if (now > it->second.deadline) {
      Imported::add(s.timeouts);
      it = s.calls.erase(it);
      any = true;
    } else {
      ++it;
    }
  }
  s.in_flight.store(s.calls.size(), std::memory_order_relaxed);
  return any;
}

void ServiceImporter::run(const std::atomic<bool>& stop) {
  // Idle: a backoff up to 500 us (local requests and NATS replies both wake us).
  poll_until_stopped(
      stop, std::chrono::microseconds(20), std::chrono::microseconds(500), [] {},
      [this] {
        bool any = false;
        for (auto& s : imported_) any = pump(*s) || any;
        return any;
      },
      [] { return false; });
}

nlohmann::json ServiceImporter::status() const {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& s : imported_) {
    auto v = [](const Imported::Counter& c) { return c.load(std::memory_order_relaxed); };
    nlohmann::json hostile = nlohmann::json::object();
    for (int h = 0; h < static_cast<int>(Hostile::count_); ++h) hostile[hostile_name(static_cast<Hostile>(h))] = v(s->hostile[h]);
    out[s->rule->service] = {{"subject", s->subject}, {"forwarded", v(s->forwarded)}, {"answered", v(s->answered)},
                             {"responses", v(s->responses)}, {"server_gone", v(s->server_gone)},
                             {"no_responders", v(s->no_responders)}, {"timeouts", v(s->timeouts)}, {"hostile", hostile},
                             {"in_flight", v(s->in_flight)}};
  }
  return out;
}

}  // namespace shmbus::bridge
