// shmbus_profile: one process running the raw hot path N times (loan, write 8 bytes, publish,
// take, read 8 bytes, release), for instruction counts under
//   valgrind --tool=callgrind --toggle-collect='*hot_loop*' ./shmbus_profile [N] [fanout]  [block|drop_oldest]
// (perf's hardware counters are not available in this guest). `fanout` registers that many
// subscribers and takes from each.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "profile_harness.hpp"
#include "shmbus/shmbus.hpp"

__attribute__((noinline)) std::uint64_t hot_loop(shmbus::RawPublisher& pub, std::vector<shmbus::RawSubscriber>& subs, long n) {
  std::uint64_t sum = 0;
  for (long i = 0; i < n; ++i) {
    auto loan = pub.loan(64);
    if (!loan) std::abort();
    std::memcpy(loan->data().data(), &i, 8);
    if (!pub.publish(std::move(loan.value())).ok()) std::abort();
    for (auto& sub : subs) {
      auto s = sub.take();
      if (!s) std::abort();
      std::uint64_t v;
      std::memcpy(&v, s->data().data(), 8);
      sum += v;
    }
  }
  return sum;
}

int main(int argc, char** argv) {
  long n = shmbus_profile::iterations(argc, argv);
  int fan = argc > 2 ? std::atoi(argv[2]) : 1;
  shmbus::TopicConfig c;
  c.name = "profile";
  c.size_classes = {{64, 64}};
  c.queue_depth = 4;
  c.policy = argc > 3 && std::string(argv[3]) == "drop_oldest" ? shmbus::SlowSubscriberPolicy::drop_oldest : shmbus::SlowSubscriberPolicy::block;
  shmbus::Topic topic = shmbus::Topic::create(c);
  shmbus::RawPublisher pub(topic);
  std::vector<shmbus::RawSubscriber> subs;
  shmbus::SubscriberOptions o;
  o.with_history = false;
  for (int i = 0; i < fan; ++i) subs.emplace_back(topic, o);
  return shmbus_profile::run("pub/sub hop (loan, publish, take, release)", n, [&](long k) { return hot_loop(pub, subs, k); });
}
