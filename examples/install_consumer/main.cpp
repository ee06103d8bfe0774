// Uses an installed shmbus: publishes one raw message and reads it back in place, on a topic it
// creates itself and, given a bus daemon's runtime directory as argument, on a topic the
// daemon serves (Client::open_topic: the region fd passed over the control socket).
#include <shmbus/shmbus.hpp>

#include <cstdio>
#include <cstring>
#include <exception>
#if __has_include(<shmbus/client.hpp>)
#include <shmbus/client.hpp>
#define SHMBUS_HAS_CLIENT 1
#endif

namespace {

int round_trip(shmbus::Topic& topic, const char* how) {
  shmbus::RawPublisher pub(topic);
  shmbus::RawSubscriber sub(topic);
  const char text[] = "hello from an installed shmbus";
  auto loan = pub.loan(sizeof text);
  if (!loan) return std::printf("%s: loan: %s\n", how, loan.name()), 1;
  std::memcpy(loan->data().data(), text, sizeof text);
  if (auto st = pub.publish(std::move(*loan), sizeof text); !st) return std::printf("%s: publish: %s\n", how, st.name()), 1;
  auto sample = sub.take();
  if (!sample) return std::printf("%s: take: %s\n", how, sample.name()), 1;
  const char* got = reinterpret_cast<const char*>(sample->data().data());
  std::printf("consumer (%s): %s (sequence %llu)\n", how, got, static_cast<unsigned long long>(sample->sequence()));
  return std::strcmp(got, text) == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  shmbus::TopicConfig config;
  config.name = "install-check";
  config.size_classes = {{1024, 16}};
  shmbus::Topic topic = shmbus::Topic::create(config);
  if (int rc = round_trip(topic, "own topic"); rc != 0) return rc;
#ifdef SHMBUS_HAS_CLIENT
  if (argc > 1) {
    try {
      shmbus::ClientOptions options;
      options.socket = shmbus::bus_socket_path("default", argv[1]);
      options.reconnect = false;
      shmbus::Client client(options);
      shmbus::Topic served = client.open_topic(config, shmbus::Role::publisher);
      return round_trip(served, "daemon's topic");
    } catch (const std::exception& e) {
      return std::printf("daemon's topic: %s\n", e.what()), 1;
    }
  }
#else
  (void)argc;
  (void)argv;
#endif
  return 0;
}
