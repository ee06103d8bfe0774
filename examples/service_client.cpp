// A request/response client: calls the "multiply" service of service_server, four calls in
// flight at a time, each answered by a stream of responses; checks every response and prints
// the round-trip latency. The library matches responses to calls: no correlation ids here.
//
//   service_client [--dir /dev/shm/shmbus-examples] [--count 100]
#include <cstdio>
#include <cstring>
#include <vector>

#include "example_util.hpp"
#include "service_messages.hpp"
#include "shmbus/shmbus.hpp"

int main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IOLBF, 0);
  const std::filesystem::path dir = examples::bus_directory(argc, argv);
  const std::uint64_t count = examples::flag_u64(argc, argv, "--count", 100);
  try {
    // The server creates the service: wait for it (and for a server to register).
    std::optional<shmbus::Service> svc = examples::wait_for_server(dir, examples::kServiceName, std::chrono::seconds(10));
    if (!svc) {
      std::fprintf(stderr, "service_client: no server of '%s' in %s\n", examples::kServiceName, dir.c_str());
      return 1;
    }
    shmbus::ServiceClient client(*svc);
    examples::LatencyStats stats;
    std::uint64_t done = 0, bad = 0;
    while (done < count) {
      struct InFlight { shmbus::PendingCall call; examples::MultiplyRequest request; std::uint64_t sent_ns; };
      std::vector<InFlight> batch;
      for (int i = 0; i < 4 && done + batch.size() < count; ++i) {
        auto loan = client.loan(sizeof(examples::MultiplyRequest));
        if (!loan) { std::fprintf(stderr, "service_client: loan: %s\n", loan.name()); return 1; }
        examples::MultiplyRequest req{done + batch.size() + 1, 1 + static_cast<std::uint32_t>(i % 3)};
        std::memcpy(loan->data().data(), &req, sizeof req);  // built in place
        const std::uint64_t t0 = examples::monotonic_ns();
        auto call = client.send(std::move(*loan));
        if (!call) { std::fprintf(stderr, "service_client: send: %s\n", call.name()); return 1; }
        batch.push_back({std::move(*call), req, t0});
      }
      for (InFlight& f : batch) {
        for (std::uint32_t i = 1; !f.call.done(); ++i) {
          auto response = f.call.receive_wait(std::chrono::seconds(5));
          if (!response) {  // timeout, or server_gone when the server died with our call
            std::fprintf(stderr, "service_client: call %llu: %s\n", static_cast<unsigned long long>(f.request.value),
                         response.name());
            ++bad;
            break;
          }
          examples::MultiplyResponse out{};
          std::memcpy(&out, response->data().data(), std::min(sizeof out, response->data().size()));
          if (out.product != f.request.value * i || out.index != i || response->last() != (i == f.request.length)) ++bad;
        }
        stats.add(examples::monotonic_ns() - f.sent_ns);
        ++done;
      }
    }
    std::printf("service_client: %llu calls, %llu bad\n", static_cast<unsigned long long>(done),
                static_cast<unsigned long long>(bad));
    stats.print("service_client (call to last response)");
    return bad == 0 ? 0 : 1;
  } catch (const shmbus::Error& e) {
    std::fprintf(stderr, "service_client: %s\n", e.what());
    return 1;
  }
}
