// A typed request/response client: calls "typed-multiply" of typed_service_server, four calls
// in flight at a time, each answered by a stream; builds each Multiply in place in its loaned
// chunk and reads each Product in place in the server's. No correlation ids, no copies.
//
//   typed_service_client [--dir /dev/shm/shmbus-examples] [--count 100]
#include <cstdio>
#include <optional>
#include <vector>

#include "example_util.hpp"
#include "shmbus/shmbus.hpp"
#include "shmbus/typed_service.hpp"
#include "telemetry.capnp.h"

using shmbus::examples::Multiply;
using shmbus::examples::Product;

int main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IOLBF, 0);
  const std::filesystem::path dir = examples::bus_directory(argc, argv);
  const std::uint64_t count = examples::flag_u64(argc, argv, "--count", 100);
  try {
    // The server creates the service: wait for it (and for a server to register).
    std::optional<shmbus::Service> svc = examples::wait_for_server(dir, "typed-multiply", std::chrono::seconds(10));
    if (!svc) {
      std::fprintf(stderr, "typed_service_client: no server of 'typed-multiply' in %s\n", dir.c_str());
      return 1;
    }
    shmbus::TypedServiceClient<Multiply, Product> client(*svc);  // throws type_mismatch on other types
    examples::LatencyStats stats;
    std::uint64_t done = 0, bad = 0;
    while (done < count) {
      struct InFlight { shmbus::TypedCall<Product> call; std::uint64_t value; std::uint32_t length; std::uint64_t sent_ns; };
      std::vector<InFlight> batch;
      for (std::uint32_t i = 0; i < 4 && done + batch.size() < count; ++i) {
        auto loan = client.loan();  // the request class's 64 bytes, zeroed
        if (!loan) { std::fprintf(stderr, "typed_service_client: loan: %s\n", loan.status().name()); return 1; }
        Multiply::Builder m = loan.init();  // built in place
        m.setValue(done + batch.size() + 1);
        m.setLength(1 + i % 3);
        const std::uint64_t t0 = examples::monotonic_ns();
        auto call = client.send(loan);
        if (!call) { std::fprintf(stderr, "typed_service_client: send: %s\n", call.name()); return 1; }
        batch.push_back({std::move(*call), m.getValue(), m.getLength(), t0});
      }
      for (InFlight& f : batch) {
        for (std::uint32_t i = 1; !f.call.done(); ++i) {
          auto response = f.call.receive_wait(std::chrono::seconds(5));
          if (!response) {  // timeout, server_gone, malformed_message
            std::fprintf(stderr, "typed_service_client: call %llu: %s\n", static_cast<unsigned long long>(f.value),
                         response.name());
            ++bad;
            break;
          }
          Product::Reader p = response->root();  // read in place
          if (p.getProduct() != f.value * i || p.getIndex() != i || response->last() != (i == f.length)) ++bad;
        }
        stats.add(examples::monotonic_ns() - f.sent_ns);
        ++done;
      }
    }
    std::printf("typed_service_client: %llu calls, %llu bad\n", static_cast<unsigned long long>(done),
                static_cast<unsigned long long>(bad));
    stats.print("typed_service_client (call to last response)");
    return bad == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "typed_service_client: %s\n", e.what());
    return 1;
  }
}
