// shmbus_profile_service: one process making N calls of a service (the client's loan, send,
// the server's take, loan, respond, the client's receive), for instruction counts under
//   valgrind --tool=callgrind --toggle-collect='*call_loop*' ./shmbus_profile_service [N] [servers]
// Compare with shmbus_profile's hot_loop (one pub/sub hop): a call is two hops plus the
// service's own work. `servers` > 1 registers idle extra servers, so that calls take the
// shared path (service_layout.hpp rule 2b) instead of the addressed one (2a).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "profile_harness.hpp"
#include "shmbus/service.hpp"

__attribute__((noinline)) std::uint64_t call_loop(shmbus::ServiceClient& client, shmbus::ServiceServer& server, long n) {
  std::uint64_t sum = 0;
  for (long i = 0; i < n; ++i) {
    auto loan = client.loan(64);
    if (!loan) std::abort();
    std::memcpy(loan->data().data(), &i, 8);
    auto call = client.send(std::move(*loan));
    if (!call) std::abort();
    auto req = server.take();
    if (!req) std::abort();
    auto out = server.loan(64);
    if (!out) std::abort();
    std::memcpy(out->data().data(), req->data().data(), 8);
    if (!server.respond(*req, std::move(*out)).ok()) std::abort();
    auto resp = call->receive();
    if (!resp) std::abort();
    std::uint64_t v;
    std::memcpy(&v, resp->data().data(), 8);
    sum += v;
  }
  return sum;
}

int main(int argc, char** argv) {
  long n = shmbus_profile::iterations(argc, argv);
  int servers = argc > 2 ? std::atoi(argv[2]) : 1;
  shmbus::ServiceConfig c;
  c.name = "profile-service";
  c.request_classes = {{64, 16}};
  c.response_classes = {{64, 16}};
  c.request_queue_depth = c.response_queue_depth = 8;
  c.max_servers = static_cast<std::uint32_t>(std::max(servers, 1));
  c.max_clients = 1;
  c.max_calls_per_client = 4;
  shmbus::Service svc = shmbus::Service::create(c);
  shmbus::SubscriberOptions o;
  o.with_history = false;
  shmbus::ServiceServer server(svc, o);
  std::vector<shmbus::ServiceServer> idle;
  for (int i = 1; i < servers; ++i) idle.emplace_back(svc, o);
  shmbus::ServiceClient client(svc, o);
  return shmbus_profile::run("service call (two hops)", n, [&](long k) { return call_loop(client, server, k); });
}
