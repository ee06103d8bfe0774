// Zero copy, shown rather than assumed: the bytes a subscriber process reads lie inside its own
// mapping of the publisher's payload pool, at the same offset from the mapping's base as the
// publisher process's loan. The two processes map the pool at different addresses, so equal
// offsets mean the same physical bytes, not a copy that happens to land at the same place.
// The subscriber's mapping is read-only; the publisher's is writable.
#include <gtest/gtest.h>

#include <sys/mman.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "shmbus/shmbus.hpp"
#include "test_messages.capnp.h"
#include "test_support.hpp"

namespace shmbus {
namespace {

using namespace shmbus::testing;
using namespace std::chrono_literals;

// Where one message's bytes were, as seen by one process.
struct Placement {
  std::uint64_t base;            // pool mapping base address in that process
  std::uint64_t offset;          // of the payload (or the Data field) from that base
  std::uint64_t offset_in_body;  // subscriber: the publisher's offset carried in the message
  std::uint32_t inside;          // subscriber: payload lies fully inside its mapping
  std::uint32_t writable;        // that process's mapping of the pool is writable
};

// The placement of [p, p+size) in `topic`'s payload mappings of this process.
Placement place(const Topic& topic, const void* p, std::size_t size) {
  std::optional<Topic::PayloadLocation> at = topic.locate_payload(p);
  if (!at) return Placement{0, ~0ULL, 0, 0, 0};
  return Placement{reinterpret_cast<std::uint64_t>(at->mapping_base), at->offset, 0,
                   at->offset + size <= at->mapping_size, at->writable};
}

// Maps the region where no sibling process forked from the same parent maps anything: a sibling
// has this process's address-space layout, so a later mapping of either lands in the same
// place whenever both ask for the same size from the same free gaps. Here every hole between
// existing mappings (below 1 GiB: the gaps between libraries, not the large free area) is
// filled with an inaccessible reservation, a gigabyte more is reserved, and the region is mapped
// twice, the first mapping (where a sibling's sits) kept: everything this process maps next, its
// payload pool among them, then lies below what a sibling maps at the same step.
Topic map_elsewhere(const Topic& shared, std::vector<Topic>& keep) {
  struct Range {
    std::uintptr_t begin, end;
    bool stack;  // the hole below the stack is where it grows: left alone
  };
  std::vector<Range> ranges;
  if (std::FILE* maps = std::fopen("/proc/self/maps", "r")) {
    unsigned long begin = 0, end = 0;
    char line[512];
    while (std::fgets(line, sizeof line, maps)) {
      if (std::sscanf(line, "%lx-%lx", &begin, &end) == 2)
        ranges.push_back({begin, end, std::strstr(line, "[stack]") != nullptr});
    }
    std::fclose(maps);
  }
  for (std::size_t i = 1; i < ranges.size(); ++i) {
    const std::uintptr_t hole = ranges[i - 1].end, size = ranges[i].begin - hole;
    if (size == 0 || size >= (std::uintptr_t{1} << 30) || ranges[i].stack) continue;
    mmap(reinterpret_cast<void*>(hole), size, PROT_NONE,
         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
  }
  // And a gigabyte at the top of the free area: whatever either process maps on its own later
  // (a sanitizer's bookkeeping too) cannot bring the two pools back to one address.
  mmap(nullptr, std::size_t{1} << 30, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  keep.push_back(Topic::open_fd(shared.fd()));
  return Topic::open_fd(shared.fd());
}

TopicConfig zero_copy_topic() {
  TopicConfig c;
  c.name = unique_name("zero-copy");
  c.size_classes = {{256, 32}, {64 * 1024, 8}, {1 << 20, 4}};
  c.queue_depth = 8;
  c.policy = SlowSubscriberPolicy::block;
  return c;
}

const std::vector<std::uint32_t> kBodySizes = {16, 200, 60'000, 1'000'000};

TEST(ZeroCopy, RawSubscriberReadsThePublishersBytesInPlace) {
  Topic topic = Topic::create(zero_copy_topic());
  // `done`: the publisher process stays alive until the subscriber has read every message.
  // Without a daemon, a pool whose publisher exited before a subscriber mapped it is out of
  // reach (docs/usage.md, "lost_before"): its messages would be counted lost, not read.
  Pipe ready, pub_report, sub_report, done;
  Child subscriber = Child::spawn([&] {
    Topic mine = Topic::open_fd(topic.fd());
    RawSubscriber sub(mine);
    if (!ready.notify()) return static_cast<int>(kChildPipeFailed);
    for (std::size_t i = 0; i < kBodySizes.size(); ++i) {
      Result<RawSample> s = sub.take_wait(10s);
      if (!s) return static_cast<int>(kChildTimedOut);
      std::optional<Stamp> stamp = check_stamped(s->data());
      if (!stamp || stamp->body_size != kBodySizes[i]) return static_cast<int>(kChildBadData);
      Placement p = place(mine, s->data().data(), s->data().size());
      p.offset_in_body = stamp->extra;
      if (!sub_report.send(p)) return static_cast<int>(kChildPipeFailed);
    }
    return static_cast<int>(kChildOk);
  });
  ASSERT_TRUE(ready.await());
  Child publisher = Child::spawn([&] {
    std::vector<Topic> keep;
    Topic mine = map_elsewhere(topic, keep);
    RawPublisher pub(mine);
    for (std::uint32_t body : kBodySizes) {
      Result<RawLoan> loan = pub.loan(stamped_size(body));
      if (!loan) return static_cast<int>(kChildFirstFree);
      Placement at = place(mine, loan->data().data(), loan->data().size());
      write_stamped(loan->data(), 0, 0, body, /*extra=*/at.offset);
      if (!pub_report.send(at)) {
        return static_cast<int>(kChildPipeFailed);
      }
      if (!pub.publish(std::move(loan.value())).ok()) return static_cast<int>(kChildFirstFree + 1);
    }
    return static_cast<int>(done.await() ? kChildOk : kChildPipeFailed);
  });
  for (std::uint32_t body : kBodySizes) {
    std::optional<Placement> at_pub = pub_report.receive<Placement>();
    std::optional<Placement> at_sub = sub_report.receive<Placement>();
    ASSERT_TRUE(at_pub && at_sub) << "body " << body;
    EXPECT_NE(at_pub->base, at_sub->base) << "both processes mapped the region at one address";
    EXPECT_TRUE(at_sub->inside) << "body " << body << ": payload outside the subscriber's mapping";
    EXPECT_EQ(at_sub->offset, at_pub->offset) << "body " << body;
    EXPECT_EQ(at_sub->offset_in_body, at_pub->offset) << "body " << body;
    EXPECT_TRUE(at_pub->writable) << "the publisher cannot write its own pool";
    EXPECT_FALSE(at_sub->writable) << "body " << body << ": the subscriber maps the payload writable";
  }
  EXPECT_EQ(subscriber.wait(), kChildOk);
  done.notify();
  EXPECT_EQ(publisher.wait(), kChildOk);
}

TEST(ZeroCopy, TypedSubscriberReadsDataFieldInPlace) {
  TopicConfig config = zero_copy_topic();
  config.type_id = capnp::typeId<test::Reading>();
  config.max_message_size = 2 << 20;
  Topic topic = Topic::create(config);
  // `done`: the publisher process stays alive until the subscriber has read every message.
  // Without a daemon, a pool whose publisher exited before a subscriber mapped it is out of
  // reach (docs/usage.md, "lost_before"): its messages would be counted lost, not read.
  Pipe ready, pub_report, sub_report, done;
  Child subscriber = Child::spawn([&] {
    Topic mine = Topic::open_fd(topic.fd());
    Subscriber<test::Reading> sub(mine);
    if (!ready.notify()) return static_cast<int>(kChildPipeFailed);
    for (std::size_t i = 0; i < kBodySizes.size(); ++i) {
      auto s = sub.take_wait(10s);
      if (!s) return static_cast<int>(kChildTimedOut);
      capnp::Data::Reader body = s->root().getBody();
      if (body.size() != kBodySizes[i] || fnv1a(std::as_bytes(std::span(body.begin(), body.size()))) != s->root().getChecksum()) {
        return static_cast<int>(kChildBadData);
      }
      Placement p = place(mine, body.begin(), body.size());
      if (!sub_report.send(p)) return static_cast<int>(kChildPipeFailed);
    }
    return static_cast<int>(kChildOk);
  });
  ASSERT_TRUE(ready.await());
  Child publisher = Child::spawn([&] {
    std::vector<Topic> keep;
    Topic mine = map_elsewhere(topic, keep);
    Publisher<test::Reading> pub(mine);
    for (std::uint32_t size : kBodySizes) {
      auto loan = pub.loan(size + 64);  // one segment: the Data field follows the root struct
      if (!loan.ok()) return static_cast<int>(kChildFirstFree);
      auto r = loan.init();
      capnp::Data::Builder body = r.initBody(size);
      for (std::uint32_t i = 0; i < size; ++i) body[i] = static_cast<capnp::byte>(i * 7 + size);
      r.setChecksum(fnv1a(std::as_bytes(std::span(body.begin(), body.size()))));
      Placement p = place(mine, body.begin(), body.size());
      if (!pub_report.send(p)) return static_cast<int>(kChildPipeFailed);
      if (!pub.publish(loan).ok()) return static_cast<int>(kChildFirstFree + 1);
    }
    return static_cast<int>(done.await() ? kChildOk : kChildPipeFailed);
  });
  for (std::uint32_t size : kBodySizes) {
    std::optional<Placement> at_pub = pub_report.receive<Placement>();
    std::optional<Placement> at_sub = sub_report.receive<Placement>();
    ASSERT_TRUE(at_pub && at_sub) << "body " << size;
    EXPECT_NE(at_pub->base, at_sub->base);
    EXPECT_TRUE(at_sub->inside) << "body " << size;
    EXPECT_EQ(at_sub->offset, at_pub->offset) << "body " << size;
    EXPECT_FALSE(at_sub->writable) << "body " << size;
  }
  EXPECT_EQ(subscriber.wait(), kChildOk);
  done.notify();
  EXPECT_EQ(publisher.wait(), kChildOk);
}

}  // namespace
}  // namespace shmbus
