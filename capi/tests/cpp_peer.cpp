// The C++ side of capi_process_test.c: a separate program, exec'd by the C test, that meets it
// through the bus daemon with the C++ API.
//
//   capi_cpp_peer subscribe SOCKET TOPIC COUNT   prints "ready", then checks COUNT messages
//   capi_cpp_peer publish SOCKET TOPIC COUNT     publishes COUNT messages
//
// Message i is 64 bytes: i as a native uint64, then bytes (i * 7 + k) & 0xff for k = 8..63
// (exchange_pattern.h says the same for the C side). Exit 0 when all went right, 1 (with a
// line on stderr) when not.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "exchange_pattern.h"
#include "shmbus/client.hpp"
#include "shmbus/raw.hpp"

namespace {

shmbus::ClientOptions options_for(const char* socket) {
  shmbus::ClientOptions o;
  o.socket = socket;
  o.name = "capi_cpp_peer";
  o.timeout = std::chrono::seconds(5);
  o.reconnect = false;
  return o;
}

int subscribe(shmbus::Client& client, const std::string& name, std::uint64_t count) {
  shmbus::Topic topic = client.open_existing_topic(name, shmbus::Role::subscriber);
  shmbus::RawSubscriber sub = client.subscriber(topic);
  std::printf("ready\n");
  std::fflush(stdout);
  for (std::uint64_t i = 0; i < count; ++i) {
    auto sample = sub.take_wait(std::chrono::seconds(10));
    if (!sample) return std::fprintf(stderr, "cpp_peer: take_wait of message %llu: %s\n", (unsigned long long)i, sample.name()), 1;
    auto bytes = sample->data();
    if (bytes.size() != kExchangeMessageSize || !exchange_message_is(bytes.data(), i))
      return std::fprintf(stderr, "cpp_peer: message %llu (%zu bytes) is not what the C publisher wrote\n",
                          (unsigned long long)i, bytes.size()), 1;
    if (sample->sequence() != i || sample->lost_before() != 0)
      return std::fprintf(stderr, "cpp_peer: message %llu came as sequence %llu\n", (unsigned long long)i,
                          (unsigned long long)sample->sequence()), 1;
  }
  return 0;
}

int publish(shmbus::Client& client, const std::string& name, std::uint64_t count) {
  shmbus::Topic topic = client.open_existing_topic(name, shmbus::Role::publisher);
  shmbus::RawPublisher pub = client.publisher(topic);
  for (std::uint64_t i = 0; i < count; ++i) {
    auto loan = pub.loan(kExchangeMessageSize);
    if (!loan) return std::fprintf(stderr, "cpp_peer: loan: %s\n", loan.name()), 1;
    write_exchange_message(loan->data().data(), i);
    if (auto st = pub.publish(std::move(*loan), kExchangeMessageSize); !st)
      return std::fprintf(stderr, "cpp_peer: publish of message %llu: %s\n", (unsigned long long)i, st.name()), 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) return std::fprintf(stderr, "usage: capi_cpp_peer subscribe|publish SOCKET TOPIC COUNT\n"), 2;
  try {
    shmbus::Client client(options_for(argv[2]));
    const std::uint64_t count = std::stoull(argv[4]);
    if (std::strcmp(argv[1], "subscribe") == 0) return subscribe(client, argv[3], count);
    if (std::strcmp(argv[1], "publish") == 0) return publish(client, argv[3], count);
    return std::fprintf(stderr, "cpp_peer: unknown mode '%s'\n", argv[1]), 2;
  } catch (const std::exception& e) {
    return std::fprintf(stderr, "cpp_peer: %s\n", e.what()), 1;
  }
}
