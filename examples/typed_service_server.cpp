// A typed request/response server: creates the file-backed service "typed-multiply" (Cap'n
// Proto Multiply requests, Product responses; examples/telemetry.capnp) and answers each call
// with a stream of `length` responses value*1, value*2, ..., the last one ending the stream.
// Requests are read and responses built in place in shared memory: no serialization, no copy.
// `shmbus call --dir DIR typed-multiply '(value = 6, length = 1)'` calls it from a shell.
//
//   typed_service_server [--dir /dev/shm/shmbus-examples] [--count 0] [--idle 3]
#include <cstdio>
#include <string>

#include "example_util.hpp"
#include "shmbus/shmbus.hpp"
#include "shmbus/typed_service.hpp"
#include "telemetry.capnp.h"

using shmbus::examples::Multiply;
using shmbus::examples::Product;

int main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IOLBF, 0);
  const std::filesystem::path dir = examples::bus_directory(argc, argv);
  const std::uint64_t count = examples::flag_u64(argc, argv, "--count", 0);
  const std::uint64_t idle_s = examples::flag_u64(argc, argv, "--idle", 3);
  try {
    shmbus::ServiceConfig config = shmbus::typed_service<Multiply, Product>("typed-multiply");
    config.request_classes = {{64, 96}};    // a Multiply is 40 bytes in flat-array form
    config.response_classes = {{128, 96}};  // a Product with its short text, under 100
    shmbus::Service svc = examples::open_or_create_service_files(dir, config);
    shmbus::TypedServiceServer<Multiply, Product> server(svc);
    const std::string me = "server " + std::to_string(server.id());
    std::printf("typed_service_server: serving '%s' as %s\n", svc.name().c_str(), me.c_str());
    std::uint64_t served = 0;
    while (count == 0 || served < count) {
      auto request = server.take_wait(std::chrono::seconds(idle_s));
      if (request.code() == shmbus::Errc::timeout) break;
      if (!request) {  // a malformed request was answered with an empty stream: go on
        std::fprintf(stderr, "typed_service_server: %s\n", request.name());
        continue;
      }
      Multiply::Reader in = request->root();  // read in place
      for (std::uint32_t i = 1; i <= in.getLength(); ++i) {
        auto out = server.loan();  // the response class's 128 bytes, zeroed
        if (!out) {
          std::fprintf(stderr, "typed_service_server: loan: %s\n", out.status().name());
          break;
        }
        Product::Builder p = out.init();  // built in place
        p.setProduct(in.getValue() * i);
        p.setIndex(i);
        p.setServer(me);
        shmbus::Status sent = server.respond(*request, out, /*last=*/i == in.getLength());
        if (sent.code() == shmbus::Errc::call_cancelled) break;  // the client dropped the call
        if (!sent) std::fprintf(stderr, "typed_service_server: respond: %s\n", sent.name());
      }
      ++served;
    }
    // Without a daemon a client maps our response pool only while we live: linger a little.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    std::printf("typed_service_server: served %llu calls\n", static_cast<unsigned long long>(served));
    return served > 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "typed_service_server: %s\n", e.what());
    return 1;
  }
}
