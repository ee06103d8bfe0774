// Zero copy, shown rather than assumed: the bytes a subscriber process reads lie inside its own
// mapping of the topic, at the same offset from the mapping's base as the publisher process's
// loan. The two processes map the region at different addresses, so equal offsets mean the
// same physical bytes, not a copy that happens to land at the same place.
#include <gtest/gtest.h>

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
  std::uint64_t base;            // mapping base address in that process
  std::uint64_t offset;          // of the payload (or the Data field) from that base
  std::uint64_t offset_in_body;  // subscriber: the publisher's offset carried in the message
  std::uint32_t inside;          // subscriber: payload lies fully inside its mapping
};

std::uint64_t offset_in(const Topic& topic, const void* p) {
  return static_cast<std::uint64_t>(static_cast<const std::byte*>(p) - static_cast<const std::byte*>(topic.mapping_base()));
}

bool lies_inside(const Topic& topic, const void* p, std::size_t size) {
  auto base = reinterpret_cast<std::uintptr_t>(topic.mapping_base());
  auto at = reinterpret_cast<std::uintptr_t>(p);
  return at >= base && at + size <= base + topic.mapping_size();
}

// Maps the region twice and keeps the first mapping: the second one, which the caller uses,
// then lies at an address no sibling process picked by the same fork-inherited layout.
Topic map_elsewhere(const Topic& shared, std::vector<Topic>& keep) {
  keep.push_back(Topic::open_fd(shared.fd()));
  keep.push_back(Topic::open_fd(shared.fd()));
  keep.push_back(Topic::open_fd(shared.fd()));
  return keep.back();
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
  Pipe ready, pub_report, sub_report;
  Child subscriber = Child::spawn([&] {
    Topic mine = Topic::open_fd(topic.fd());
    RawSubscriber sub(mine);
    if (!ready.notify()) return static_cast<int>(kChildPipeFailed);
    for (std::size_t i = 0; i < kBodySizes.size(); ++i) {
      Result<RawSample> s = sub.take_wait(10s);
      if (!s) return static_cast<int>(kChildTimedOut);
      std::optional<Stamp> stamp = check_stamped(s->data());
      if (!stamp || stamp->body_size != kBodySizes[i]) return static_cast<int>(kChildBadData);
      Placement p{reinterpret_cast<std::uint64_t>(mine.mapping_base()), offset_in(mine, s->data().data()),
                  stamp->extra, lies_inside(mine, s->data().data(), s->data().size())};
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
      std::uint64_t offset = offset_in(mine, loan->data().data());
      write_stamped(loan->data(), 0, 0, body, /*extra=*/offset);
      if (!pub_report.send(Placement{reinterpret_cast<std::uint64_t>(mine.mapping_base()), offset, offset, 1})) {
        return static_cast<int>(kChildPipeFailed);
      }
      if (!pub.publish(std::move(loan.value())).ok()) return static_cast<int>(kChildFirstFree + 1);
    }
    return static_cast<int>(kChildOk);
  });
  for (std::uint32_t body : kBodySizes) {
    std::optional<Placement> at_pub = pub_report.receive<Placement>();
    std::optional<Placement> at_sub = sub_report.receive<Placement>();
    ASSERT_TRUE(at_pub && at_sub) << "body " << body;
    EXPECT_NE(at_pub->base, at_sub->base) << "both processes mapped the region at one address";
    EXPECT_TRUE(at_sub->inside) << "body " << body << ": payload outside the subscriber's mapping";
    EXPECT_EQ(at_sub->offset, at_pub->offset) << "body " << body;
    EXPECT_EQ(at_sub->offset_in_body, at_pub->offset) << "body " << body;
  }
  EXPECT_EQ(publisher.wait(), kChildOk);
  EXPECT_EQ(subscriber.wait(), kChildOk);
}

TEST(ZeroCopy, TypedSubscriberReadsDataFieldInPlace) {
  TopicConfig config = zero_copy_topic();
  config.type_id = capnp::typeId<test::Reading>();
  config.max_message_size = 2 << 20;
  Topic topic = Topic::create(config);
  Pipe ready, pub_report, sub_report;
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
      Placement p{reinterpret_cast<std::uint64_t>(mine.mapping_base()), offset_in(mine, body.begin()), 0,
                  lies_inside(mine, body.begin(), body.size())};
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
      Placement p{reinterpret_cast<std::uint64_t>(mine.mapping_base()), offset_in(mine, body.begin()), 0, 1};
      if (!pub_report.send(p)) return static_cast<int>(kChildPipeFailed);
      if (!pub.publish(loan).ok()) return static_cast<int>(kChildFirstFree + 1);
    }
    return static_cast<int>(kChildOk);
  });
  for (std::uint32_t size : kBodySizes) {
    std::optional<Placement> at_pub = pub_report.receive<Placement>();
    std::optional<Placement> at_sub = sub_report.receive<Placement>();
    ASSERT_TRUE(at_pub && at_sub) << "body " << size;
    EXPECT_NE(at_pub->base, at_sub->base);
    EXPECT_TRUE(at_sub->inside) << "body " << size;
    EXPECT_EQ(at_sub->offset, at_pub->offset) << "body " << size;
  }
  EXPECT_EQ(publisher.wait(), kChildOk);
  EXPECT_EQ(subscriber.wait(), kChildOk);
}

}  // namespace
}  // namespace shmbus
