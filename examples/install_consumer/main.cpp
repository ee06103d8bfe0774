// Uses an installed shmbus: publishes one raw message and reads it back in place.
#include <shmbus/shmbus.hpp>

#include <cstdio>
#include <cstring>
#if __has_include(<shmbus/client.hpp>)
#include <shmbus/client.hpp>
#endif

int main([[maybe_unused]] int argc, char**) {
#if __has_include(<shmbus/client.hpp>)
  // Never runs (no daemon here): proves the daemon client, and the Cap'n Proto RPC it uses,
  // link from the installed package.
  if (argc > 99) shmbus::Client client;
#endif
  shmbus::TopicConfig config;
  config.name = "install-check";
  config.size_classes = {{1024, 16}};
  shmbus::Topic topic = shmbus::Topic::create(config);
  shmbus::RawPublisher pub(topic);
  shmbus::RawSubscriber sub(topic);

  const char text[] = "hello from an installed shmbus";
  auto loan = pub.loan(sizeof text);
  if (!loan) return std::printf("loan: %s\n", loan.name()), 1;
  std::memcpy(loan->data().data(), text, sizeof text);
  if (auto st = pub.publish(std::move(*loan), sizeof text); !st) return std::printf("publish: %s\n", st.name()), 1;

  auto sample = sub.take();
  if (!sample) return std::printf("take: %s\n", sample.name()), 1;
  const char* got = reinterpret_cast<const char*>(sample->data().data());
  std::printf("consumer: %s (sequence %llu)\n", got, static_cast<unsigned long long>(sample->sequence()));
  return std::strcmp(got, text) == 0 ? 0 : 1;
}
