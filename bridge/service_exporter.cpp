#include "service_exporter.hpp"

#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <spdlog/spdlog.h>

#include "service_wire.hpp"
#include "shmbus/service.hpp"
#include "subjects.hpp"

namespace shmbus::bridge {

struct ServiceExporter::Exported {
  const ServiceExportRule* rule = nullptr;
  std::string subject;
  struct Queued {
    std::string payload, reply;
  };
  std::mutex mutex;            // queue, between the NATS delivery thread and ours
  std::deque<Queued> queue;
  // Ours only:
  std::optional<Service> service;
  std::optional<ServiceClient> client;
  std::chrono::steady_clock::time_point next_open{};
  struct Call {
    std::string reply;
    PendingCall call;
    std::uint32_t next_index = 0;
    std::chrono::steady_clock::time_point deadline;
  };
  std::vector<Call> calls;
  using Counter = std::atomic<std::uint64_t>;  // relaxed tallies for the status file
  Counter received{0}, answered{0}, responses{0}, server_gone{0}, timeouts{0}, refused{0}, in_flight{0};
  static void add(Counter& c, std::uint64_t n = 1) { c.fetch_add(n, std::memory_order_relaxed); }
};

ServiceExporter::ServiceExporter(Engine& engine, const BridgeConfig& config, LogLimiter& log)
    : engine_(engine), config_(config), log_(log) {
  for (const ServiceExportRule& rule : config_.service_exports) {
    auto e = std::make_unique<Exported>();
    e->rule = &rule;
    e->subject = *subject_of(rule.subject_prefix, rule.service);  // checked by the config
    exported_.push_back(std::move(e));
  }
}

ServiceExporter::~ServiceExporter() { stop(); }

void ServiceExporter::start() {
  if (exported_.empty()) return;
  for (auto& ep : exported_) {
    Exported* e = ep.get();
    engine_.subscribe_requests(e->subject, [this, e](const IncomingMessage& m, std::string_view reply) {
      Exported::add(e->received);
      if (reply.empty()) return;  // nobody to answer
      std::lock_guard lock(e->mutex);
      if (e->queue.size() >= kMaxQueued) {
        Exported::add(e->refused);
        Headers h = {{kHeaderError, kErrorRefused}, {kHeaderLast, "1"}};
        engine_.publish(std::string(reply), h, {});
        log_.warn(e->subject + "/queue", "service export '" + e->rule->service + "': " + std::to_string(kMaxQueued) +
                                             " calls queued: request refused");
        return;
      }
      auto p = m.payload();
      e->queue.push_back({std::string(reinterpret_cast<const char*>(p.data()), p.size()), std::string(reply)});
    });
    spdlog::info("answering calls of service '{}' ({}) on {}", e->rule->service, e->rule->directory.string(), e->subject);
  }
  loop_.start([this](const std::atomic<bool>& stop) { run(stop); });
}

void ServiceExporter::stop() {
  loop_.stop();
}

bool ServiceExporter::pump(Exported& e) {
  bool any = false;
  const auto now = std::chrono::steady_clock::now();
  auto fail = [&](const std::string& reply, const char* error, Exported::Counter& counter) {
    Exported::add(counter);
    Headers h = {{kHeaderError, error}, {kHeaderLast, "1"}};
    engine_.publish(reply, h, {});
  };
  if (!e.client && now >= e.next_open) {
    try {
      e.service.emplace(Service::open_files(e.rule->directory, e.rule->service));
      e.client.emplace(*e.service);
    } catch (const Error& err) {
      e.client.reset();
      e.service.reset();
      log_.warn(e.subject + "/open", "service export '" + e.rule->service + "': " + err.what());
      e.next_open = now + std::chrono::seconds(1);
    }
  }
  // 1. Queued requests become local calls.
  for (;;) {
    std::optional<Exported::Queued> q;
    {
      std::lock_guard lock(e.mutex);
      if (e.queue.empty() || (e.client && e.calls.size() >= e.rule->max_in_flight)) break;
      q = std::move(e.queue.front());
      e.queue.pop_front();
    }
    any = true;
    if (!e.client) {
      fail(q->reply, kErrorServerGone, e.server_gone);  // no such service here (yet)
      continue;
    }
    Result<RequestLoan> loan = e.client->loan(q->payload.size());
    if (!loan) {
      fail(q->reply, kErrorRefused, e.refused);
      log_.warn(e.subject + "/loan", "service export '" + e.rule->service + "': a request of " + std::to_string(q->payload.size()) +
                                         " bytes: " + loan.name());
      continue;
    }
    std::memcpy(loan->data().data(), q->payload.data(), q->payload.size());
    Result<PendingCall> call = e.client->send(std::move(*loan));
    if (!call) {
      fail(q->reply, call.code() == Errc::server_gone ? kErrorServerGone : kErrorRefused,
           call.code() == Errc::server_gone ? e.server_gone : e.refused);
      continue;
    }
    e.calls.push_back({std::move(q->reply), std::move(*call), 0, now + std::chrono::milliseconds(e.rule->call_timeout_ms)});
  }
  // 2. Responses go back as they come; failed calls are answered with their error.
  for (std::size_t i = 0; i < e.calls.size();) {
    Exported::Call& c = e.calls[i];
    bool finished = false;
    for (;;) {
      Result<ServiceResponse> r = c.call.receive();
      if (r) {
        any = true;
        Headers h = {{kHeaderIndex, std::to_string(c.next_index++)}, {kHeaderLast, r->last() ? "1" : "0"}};
        std::span<const std::byte> segments[1] = {r->data()};
        engine_.publish(c.reply, h, segments);
        Exported::add(e.responses);
        c.deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(e.rule->call_timeout_ms);
        if (r->last()) {
          Exported::add(e.answered);
          finished = true;
          break;
        }
        continue;
      }
      if (r.code() == Errc::no_data && !c.call.done()) {
        if (std::chrono::steady_clock::now() > c.deadline) {
          fail(c.reply, kErrorTimeout, e.timeouts);
          finished = true;
        }
      } else {
        fail(c.reply, r.code() == Errc::server_gone ? kErrorServerGone : kErrorRefused,
             r.code() == Errc::server_gone ? e.server_gone : e.refused);
        finished = true;
      }
      break;
    }
    if (finished) {
      any = true;
      e.calls.erase(e.calls.begin() + static_cast<std::ptrdiff_t>(i));  // drops (cancels) the call
    } else {
      ++i;
    }
  }
  e.in_flight.store(e.calls.size(), std::memory_order_relaxed);
  return any;
}

void ServiceExporter::run(const std::atomic<bool>& stop) {
  // Idle: a backoff up to 500 us (NATS requests and local responses both wake us).
  poll_until_stopped(
      stop, std::chrono::microseconds(20), std::chrono::microseconds(500), [] {},
      [this] {
        bool any = false;
        for (auto& e : exported_) any = pump(*e) || any;
        return any;
      },
      [] { return false; });
}

nlohmann::json ServiceExporter::status() const {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& e : exported_) {
    auto v = [](const Exported::Counter& c) { return c.load(std::memory_order_relaxed); };
    out[e->rule->service] = {{"subject", e->subject}, {"received", v(e->received)}, {"answered", v(e->answered)},
                             {"responses", v(e->responses)}, {"server_gone", v(e->server_gone)}, {"timeouts", v(e->timeouts)},
                             {"refused", v(e->refused)}, {"in_flight", v(e->in_flight)}};
  }
  return out;
}

}  // namespace shmbus::bridge
