// A request/response server: creates the file-backed service "multiply" in the bus directory
// and answers each call with a stream of `length` responses value*1, value*2, ..., the last one
// ending the stream. Requests and responses are read and built in place in shared memory.
// Run several at once and they share the calls (the first creates the service).
//
//   service_server [--dir /dev/shm/shmbus-examples] [--count 0] [--idle 3]
#include <cstdio>
#include <cstring>

#include "example_util.hpp"
#include "service_messages.hpp"
#include "shmbus/shmbus.hpp"

int main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IOLBF, 0);
  const std::filesystem::path dir = examples::bus_directory(argc, argv);
  const std::uint64_t count = examples::flag_u64(argc, argv, "--count", 0);
  const std::uint64_t idle_s = examples::flag_u64(argc, argv, "--idle", 3);
  try {
    shmbus::ServiceConfig config;
    config.name = examples::kServiceName;
    config.request_classes = {{sizeof(examples::MultiplyRequest), 96}};
    config.response_classes = {{sizeof(examples::MultiplyResponse), 96}};
    shmbus::Service svc = examples::open_or_create_service_files(dir, config);
    shmbus::ServiceServer server(svc);
    std::printf("service_server: serving '%s' as server %u\n", svc.name().c_str(), server.id());
    std::uint64_t served = 0;
    while (count == 0 || served < count) {
      auto request = server.take_wait(std::chrono::seconds(idle_s));
      if (request.code() == shmbus::Errc::timeout) break;
      if (!request) {  // a malformed request is dropped; say so and go on
        std::fprintf(stderr, "service_server: %s\n", request.name());
        continue;
      }
      examples::MultiplyRequest in{};
      std::memcpy(&in, request->data().data(), std::min(sizeof in, request->data().size()));
      for (std::uint32_t i = 1; i <= in.length; ++i) {
        auto loan = server.loan(sizeof(examples::MultiplyResponse));
        if (!loan) {
          std::fprintf(stderr, "service_server: loan: %s\n", loan.name());
          break;
        }
        examples::MultiplyResponse out{in.value * i, i};
        std::memcpy(loan->data().data(), &out, sizeof out);  // built in place
        shmbus::Status sent = server.respond(*request, std::move(*loan), /*last=*/i == in.length);
        if (sent.code() == shmbus::Errc::call_cancelled) break;  // the client dropped the call
        if (!sent) std::fprintf(stderr, "service_server: respond: %s\n", sent.name());
      }
      ++served;
    }
    // Without a daemon a client maps our response pool only while we live: linger a little.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    std::printf("service_server: served %llu calls\n", static_cast<unsigned long long>(served));
    return served > 0 ? 0 : 1;
  } catch (const shmbus::Error& e) {
    std::fprintf(stderr, "service_server: %s\n", e.what());
    return 1;
  }
}
