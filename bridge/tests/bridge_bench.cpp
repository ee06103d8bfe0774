// shmbus_bridge_bench: bus -> NATS -> bus against the NATS C client alone, through the same
// nats-server on loopback, in one run (issue 18's ratios). Not a test; build the target and run
//   build/bridge/tests/shmbus_bridge_bench [messages] [rounds]
// Throughput: N messages of 64 B (N/20 of 64 KiB), first publish to last receipt. The two
// receivers are the same: a thread that sleeps while idle, a queue of the same depth that drops
// when full (NATS: the subscription's pending limit; the bus: the topic's drop-oldest queue),
// the same count and the same end (all arrived, or nothing for 2 s); what they lost is
// printed and not counted as received. Rounds alternate the NATS client and the bridge; the
// medians are reported. Latency: ping-pong, half the median round trip.
#include <nats/nats.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstdio>
#include <thread>

#include "bridge_harness.hpp"
#include "shmbus/shmbus.hpp"

using namespace shmbus;
using namespace shmbus::bridge::test;
using clk = std::chrono::steady_clock;

namespace {

struct Counted {
  std::atomic<std::uint64_t> n{0};
  std::atomic<std::int64_t> last_ns{0};
};
void count_msg(natsConnection*, natsSubscription*, natsMsg* m, void* c) {
  auto* k = static_cast<Counted*>(c);
  k->last_ns.store(clk::now().time_since_epoch().count(), std::memory_order_relaxed);
  k->n.fetch_add(1, std::memory_order_release);
  natsMsg_Destroy(m);
}

double nats_throughput(const std::string& url, std::size_t size, std::uint64_t count, std::uint32_t queue_depth, std::uint64_t& received) {
  natsConnection *pub = nullptr, *sub = nullptr;
  natsConnection_ConnectTo(&pub, url.c_str());
  natsConnection_ConnectTo(&sub, url.c_str());
  Counted c;
  natsSubscription* s = nullptr;
  natsConnection_Subscribe(&s, sub, "bench.raw", count_msg, &c);
  natsSubscription_SetPendingLimits(s, static_cast<int>(queue_depth), -1);  // as deep as the bus subscriber's queue
  natsConnection_Flush(sub);
  std::string payload(size, 'x');
  const auto start = clk::now();
  for (std::uint64_t i = 0; i < count; ++i) natsConnection_Publish(pub, "bench.raw", payload.data(), static_cast<int>(size));
  natsConnection_Flush(pub);
  auto quiet = clk::now();
  for (std::uint64_t seen = 0; c.n.load() < count && clk::now() - quiet < std::chrono::seconds(2);) {
    if (c.n.load() != seen) { seen = c.n.load(); quiet = clk::now(); }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  received = c.n.load(std::memory_order_acquire);
  const double secs = static_cast<double>(c.last_ns.load() - start.time_since_epoch().count()) / 1e9;
  natsSubscription_Destroy(s);
  natsConnection_Destroy(pub);
  natsConnection_Destroy(sub);
  return static_cast<double>(received) / secs;
}

void echo_back(natsConnection* nc, natsSubscription*, natsMsg* m, void*) {
  natsConnection_Publish(nc, "bench.pong", natsMsg_GetData(m), natsMsg_GetDataLength(m));
  natsMsg_Destroy(m);
}

double nats_latency_us(const std::string& url, int rounds) {
  natsConnection *a = nullptr, *b = nullptr;
  natsConnection_ConnectTo(&a, url.c_str());
  natsConnection_ConnectTo(&b, url.c_str());
  natsSubscription *ping = nullptr, *pong = nullptr;
  natsConnection_Subscribe(&ping, b, "bench.ping", echo_back, nullptr);
  natsConnection_SubscribeSync(&pong, a, "bench.pong");
  natsConnection_Flush(a);
  natsConnection_Flush(b);
  std::vector<double> rtt;
  char buf[64] = {};
  for (int i = 0; i < rounds; ++i) {
    auto t0 = clk::now();
    natsConnection_Publish(a, "bench.ping", buf, sizeof buf);
    natsMsg* m = nullptr;
    if (natsSubscription_NextMsg(&m, pong, 1000) != NATS_OK) continue;
    natsMsg_Destroy(m);
    rtt.push_back(std::chrono::duration<double, std::micro>(clk::now() - t0).count());
  }
  natsSubscription_Destroy(ping);
  natsSubscription_Destroy(pong);
  natsConnection_Destroy(a);
  natsConnection_Destroy(b);
  std::sort(rtt.begin(), rtt.end());
  return rtt.empty() ? 0 : rtt[rtt.size() / 2] / 2;
}

// The receivers' queue depth (both the same): deep enough for a round at 64 B, as a NATS
// subscription's default pending limit (65536) is.
std::uint32_t receive_depth(std::size_t size) { return size > 4096 ? 256 : 32768; }

TopicConfig raw_topic(const std::string& name, std::size_t size) {
  TopicConfig c;
  c.name = name;
  c.queue_depth = receive_depth(size);
  c.size_classes = {{std::max<std::size_t>(size, 64), c.queue_depth + 512}};
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  const std::uint64_t count = argc > 1 ? std::stoull(argv[1]) : 100000;
  const int rounds = argc > 2 ? std::stoi(argv[2]) : 3;
  NatsServer nats;
  Bus a("a"), b("b");
  const std::string rules = "[[export]]\ntopics = \"bench/*\"\n[[import]]\ntopics = \"bench/*\"\n";  // the bench creates the topics
  // SHMBUS_BRIDGE_BENCH_BINARY: measure another shmbus-bridge build (e.g. an older one, for a
  // before/after comparison) with this same bench.
  std::vector<std::string> wrapper;
  if (const char* other = std::getenv("SHMBUS_BRIDGE_BENCH_BINARY")) wrapper = {"/bin/sh", "-c", std::string("shift; exec ") + other + " \"$@\"", "sh"};
  BridgeProcess bridge_a(a, nats, "busA", rules, wrapper), bridge_b(b, nats, "busB", rules, wrapper);
  Client ca(a.client_options()), cb(b.client_options());
  std::printf("%-34s %14s %14s %8s\n", "throughput (msg/s)", "NATS client", "bus->NATS->bus", "ratio");
  for (std::size_t size : {std::size_t{64}, std::size_t{65536}}) {
    const std::uint64_t n = size > 4096 ? count / 20 : count;
    const std::string name = "bench/t" + std::to_string(size);
    // Block policy on bus a: the publisher waits for the bridge, as a NATS publisher waits for its socket.
    TopicConfig blocking = raw_topic(name, size);
    blocking.policy = SlowSubscriberPolicy::block;
    RawPublisher pub = ca.publisher(ca.open_topic(blocking, Role::publisher));
    // The receiver sleeps while there is nothing, as the NATS client's delivery thread does.
    RawSubscriber sub = cb.subscriber(cb.open_topic(raw_topic(name, size), Role::subscriber), {.wait_mode = WaitMode::block});
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // the exporter finds the topic
    std::string payload(size, 'y');
    std::vector<double> ratios, raws, bridgeds;
    // Rounds alternate the two, so both see the same load of this shared machine.
    for (int round = 0; round < rounds; ++round) {
      std::uint64_t nats_got = 0;
      const double raw = nats_throughput(nats.url(), size, n, receive_depth(size), nats_got);
      std::uint64_t got = 0;
      clk::time_point last{};
      std::thread reader([&] {
        // Counts until all arrived or nothing came for 2 s, as the NATS case does.
        while (got < n) {
          auto s = sub.take_wait(std::chrono::seconds(2));
          if (!s) break;
          ++got;
          last = clk::now();
        }
      });
      const auto start = clk::now();
      for (std::uint64_t i = 0; i < n; ++i) {
        while (!pub.publish_copy(std::as_bytes(std::span(payload))).ok()) std::this_thread::yield();
      }
      reader.join();
      const double bridged = static_cast<double>(got) / std::chrono::duration<double>(last - start).count();
      ratios.push_back(bridged / raw);
      raws.push_back(raw);
      bridgeds.push_back(bridged);
      std::printf("%-34s %14.0f %14.0f %8.2f   (received %llu/%llu and %llu/%llu)\n", (std::to_string(size) + " B").c_str(), raw, bridged,
                  bridged / raw, static_cast<unsigned long long>(nats_got), static_cast<unsigned long long>(n),
                  static_cast<unsigned long long>(got), static_cast<unsigned long long>(n));
    }
    for (auto* v : {&ratios, &raws, &bridgeds}) std::sort(v->begin(), v->end());
    const std::size_t mid = ratios.size() / 2;
    std::printf("%-34s %14.0f %14.0f %8.2f   (medians of %d rounds)\n", (std::to_string(size) + " B").c_str(), raws[mid], bridgeds[mid],
                ratios[mid], rounds);
    // For bench/run_bench.py (scripts/bench.sh).
    std::printf("{\"case\": \"throughput\", \"size\": %zu, \"messages\": %llu, \"rounds\": %d, \"nats_msg_s\": %.0f, "
                "\"bridge_msg_s\": %.0f, \"ratio\": %.3f}\n",
                size, static_cast<unsigned long long>(n), rounds, raws[mid], bridgeds[mid], ratios[mid]);
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // one more status round
    std::printf("    where the rest went: bridge a dropped locally %llu, exported %llu; bridge b lost in transit %llu, imported %llu; "
                "subscriber b lost %llu\n",
                static_cast<unsigned long long>(bridge_a.counter(name, "dropped_local")), static_cast<unsigned long long>(bridge_a.counter(name, "exported")),
                static_cast<unsigned long long>(bridge_b.counter(name, "lost_in_transit")), static_cast<unsigned long long>(bridge_b.counter(name, "imported")),
                static_cast<unsigned long long>(sub.lost()));
  }
  // Latency: a -> b on bench/ping, b answers on bench/pong -> a.
  const double raw_us = nats_latency_us(nats.url(), 2000);
  RawPublisher ping = ca.publisher(ca.open_topic(raw_topic("bench/ping", 64), Role::publisher));
  RawSubscriber pong = ca.subscriber(ca.open_topic(raw_topic("bench/pong", 64), Role::subscriber), {.wait_mode = WaitMode::busy_poll});
  RawSubscriber ping_b = cb.subscriber(cb.open_topic(raw_topic("bench/ping", 64), Role::subscriber), {.wait_mode = WaitMode::busy_poll});
  RawPublisher pong_b = cb.publisher(cb.open_topic(raw_topic("bench/pong", 64), Role::publisher));
  std::atomic<bool> stop{false};
  std::thread responder([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      if (auto s = ping_b.take()) (void)pong_b.publish_copy(s->data());
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  std::vector<double> rtt;
  char buf[64] = {};
  for (int i = 0; i < 2000; ++i) {
    auto t0 = clk::now();
    (void)ping.publish_copy(std::as_bytes(std::span(buf)));
    Result<RawSample> s = pong.take_wait(std::chrono::seconds(1));
    if (s) rtt.push_back(std::chrono::duration<double, std::micro>(clk::now() - t0).count());
  }
  stop = true;
  responder.join();
  std::sort(rtt.begin(), rtt.end());
  const double bridged_us = rtt.empty() ? 0 : rtt[rtt.size() / 2] / 2;
  std::printf("%-34s %14.1f %14.1f %8.2f   (%zu/2000 round trips)\n", "latency 64 B, one way (us, median)", raw_us, bridged_us,
              bridged_us / raw_us, rtt.size());
  std::printf("{\"case\": \"latency\", \"size\": 64, \"nats_us\": %.1f, \"bridge_us\": %.1f, \"ratio\": %.3f}\n", raw_us, bridged_us,
              bridged_us / raw_us);
  return 0;
}
