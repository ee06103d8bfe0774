// Helpers of the service tests: a tiny request protocol and a test server that runs in a
// forked child until it is told to stop (or killed).
#pragma once

#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <thread>

#include "shmbus/service.hpp"
#include "test_support.hpp"

namespace shmbus::testing {

enum class Op : std::uint32_t {
  twice = 1,      // one response: value * 2
  stream = 2,     // `count` responses value, value+1, ..., then an empty last one
  silent = 3,     // claim, never answer
  until_cancelled = 4,  // a response every millisecond until the client drops the call
  slow_twice = 5, // sleep 2 ms, then as twice
  stop = 6,       // answer, then the server returns
};

struct TestRequest {
  Op op;
  std::uint32_t count;
  std::uint64_t value;
};

struct TestResponse {
  std::uint64_t value;
  std::uint32_t server;
  std::int32_t pid;
  std::uint32_t index;
  std::uint32_t pad;
};

inline Service reopen(const Service& s) { return Service::open_fds(s.fd(), s.requests().fd(), s.responses().fd()); }

template <typename T>
T read_as(std::span<const std::byte> bytes) {
  T v{};
  std::memcpy(&v, bytes.data(), std::min(sizeof v, bytes.size()));
  return v;
}

inline Status respond_value(ServiceServer& server, const ServiceRequest& req, std::uint64_t value, std::uint32_t index,
                            bool last) {
  Result<ResponseLoan> l = server.loan(sizeof(TestResponse));
  if (!l) return l.code();
  TestResponse r{value, server.id(), static_cast<std::int32_t>(getpid()), index, 0};
  std::memcpy(l->data().data(), &r, sizeof r);
  return server.respond(req, std::move(*l), last);
}

// The server child's body: serves until a stop request; `cancelled` (optional) reports each
// until_cancelled call's responses sent before respond() said call_cancelled.
inline int serve(const Service& shared, Pipe* ready, Pipe* cancelled = nullptr) {
  Service svc = reopen(shared);
  ServiceServer server(svc);
  if (ready != nullptr && !ready->send(server.id())) return kChildPipeFailed;
  std::vector<ServiceRequest> silent;  // held, never answered
  for (;;) {
    Result<ServiceRequest> req = server.take_wait(std::chrono::seconds(20));
    if (!req) {
      if (req.code() == Errc::malformed_message) continue;
      return req.code() == Errc::timeout ? kChildTimedOut : kChildFirstFree + static_cast<int>(req.code());
    }
    TestRequest t = read_as<TestRequest>(req->data());
    switch (t.op) {
      case Op::slow_twice:
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        [[fallthrough]];
      case Op::twice:
      case Op::stop:
        if (!respond_value(server, *req, t.value * 2, 0, true).ok()) return kChildBadData;
        if (t.op == Op::stop) {
          // Without a daemon a client that has not mapped our pool yet loses the response
          // once we are gone (docs/services.md): give it time.
          std::this_thread::sleep_for(std::chrono::milliseconds(200));
          return kChildOk;
        }
        break;
      case Op::stream:
        for (std::uint32_t i = 0; i < t.count; ++i) {
          if (!respond_value(server, *req, t.value + i, i, false).ok()) return kChildBadData;
        }
        if (!server.end_stream(*req).ok()) return kChildBadData;
        break;
      case Op::silent:
        silent.push_back(std::move(*req));
        break;
      case Op::until_cancelled: {
        std::uint32_t sent = 0;
        for (;;) {
          Status s = respond_value(server, *req, t.value + sent, sent, false);
          if (s.code() == Errc::call_cancelled) break;
          if (!s.ok() || sent > 10000) return kChildBadData;
          ++sent;
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        if (cancelled != nullptr && !cancelled->send(sent)) return kChildPipeFailed;
        break;
      }
      default:
        return kChildBadData;
    }
  }
}

// Loans, fills and sends one test request.
inline Result<PendingCall> call(ServiceClient& client, Op op, std::uint64_t value, std::uint32_t count = 0,
                                std::uint32_t server = kAnyServer) {
  Result<RequestLoan> l = client.loan(sizeof(TestRequest));
  if (!l) return l.code();
  TestRequest t{op, count, value};
  std::memcpy(l->data().data(), &t, sizeof t);
  return client.send(std::move(*l), server);
}

inline ServiceConfig small_service(const std::string& tag) {
  ServiceConfig c;
  c.name = unique_name(tag);
  c.request_classes = {{64, 32}};
  c.response_classes = {{64, 64}};
  c.max_servers = 4;
  c.max_clients = 4;
  c.max_calls_per_client = 16;
  c.request_queue_depth = 16;
  c.response_queue_depth = 32;
  return c;
}

}  // namespace shmbus::testing
