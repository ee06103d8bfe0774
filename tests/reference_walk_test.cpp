// detail::walk_references reports exactly the references the rows and the ring record, and
// never an index a scribbled row makes up (bus/reference_walk.hpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <optional>
#include <vector>

#include "reference_walk.hpp"
#include "shmbus/shmbus.hpp"
#include "test_support.hpp"
#include "topic_admin.hpp"

namespace shmbus {
namespace {

using namespace shmbus::testing;
using detail::HoldReference;
using detail::LoanReference;
using detail::RingReference;
using detail::SlotReference;
using detail::SlotsWalked;

struct Walked {
  std::vector<std::uint32_t> committed_ring;  // chunks of committed ring slots
  std::vector<std::uint32_t> loaned;          // loan-row chunks, not the kept one
  std::vector<std::uint32_t> held;            // hold-row chunks, pinned or counted
};

Walked walk(const detail::TopicMap& m, SlotsWalked slots) {
  struct Visitor {
    Walked& w;
    void operator()(const RingReference& r) const {
      if (r.commit != 0) w.committed_ring.push_back(r.chunk);
    }
    void operator()(const LoanReference& r) const {
      if (!r.kept) w.loaned.push_back(r.chunk);
    }
    void operator()(const HoldReference& r) const { w.held.push_back(r.chunk); }
  };
  Walked w;
  detail::walk_references(m, slots, Visitor{w});
  return w;
}

TopicConfig small_topic(const std::string& tag) {
  TopicConfig c;
  c.name = unique_name(tag);
  c.size_classes = {{128, 32}};
  c.queue_depth = 8;
  return c;
}

TEST(ReferenceWalk, ReportsTheRingTheLoansAndTheHeldSamplesOfLiveClients) {
  Topic topic = Topic::create(small_topic("walk"));
  RawSubscriber sub(topic);
  RawPublisher pub(topic);
  const std::byte body[16]{};
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(pub.publish_copy(body).ok());
  Result<RawLoan> loan = pub.loan(64);
  ASSERT_TRUE(loan.ok());
  Result<RawSample> first = sub.take();
  Result<RawSample> second = sub.take();
  ASSERT_TRUE(first.ok() && second.ok());

  Walked w = walk(detail::TopicAccess::map(topic), SlotsWalked::active);
  EXPECT_EQ(w.committed_ring.size(), 3u);
  ASSERT_EQ(w.loaned.size(), 1u);
  EXPECT_EQ(w.loaned[0], loan->chunk());
  std::vector<std::uint32_t> samples{first->chunk(), second->chunk()};
  std::sort(samples.begin(), samples.end());
  std::sort(w.held.begin(), w.held.end());
  EXPECT_EQ(w.held, samples);
}

TEST(ReferenceWalk, NeverReportsAnIndexAScribbledRowMakesUp) {
  Topic topic = Topic::create(small_topic("walk-scribbled"));
  RawSubscriber sub(topic);
  RawPublisher pub(topic);
  detail::TopicMap& m = detail::TopicAccess::map(topic);
  const std::uint32_t beyond = m.total_chunks();
  m.loans_of(pub.slot())[0].store(beyond);
  m.holds_of(sub.slot())[0].store(beyond | detail::kHoldPinned);
  m.holds_of(sub.slot())[1].store(0x7FFF'FFFEu);
  m.ring_slot(0).chunk.store(beyond + 7);
  m.ring_slot(0).commit.store(1);

  Walked w = walk(m, SlotsWalked::not_free);
  EXPECT_TRUE(w.committed_ring.empty());
  EXPECT_TRUE(w.loaned.empty());
  EXPECT_TRUE(w.held.empty());
  // The rows are left as found: the walk only reads. Put them back for the destructors.
  m.loans_of(pub.slot())[0].store(detail::kNoChunk);
  m.holds_of(sub.slot())[0].store(detail::kNoChunk);
  m.holds_of(sub.slot())[1].store(detail::kNoChunk);
  m.ring_slot(0).chunk.store(detail::kNoChunk);
}

TEST(ReferenceWalk, SkipsTheRowsOfFreeSlots) {
  Topic topic = Topic::create(small_topic("walk-free"));
  std::optional<RawPublisher> pub(std::in_place, topic);
  const std::uint32_t slot = pub->slot();
  pub.reset();
  detail::TopicMap& m = detail::TopicAccess::map(topic);
  m.loans_of(slot)[0].store(0);  // a stale entry in a free slot's row

  EXPECT_TRUE(walk(m, SlotsWalked::not_free).loaned.empty());
  m.loans_of(slot)[0].store(detail::kNoChunk);
}

TEST(ReferenceWalk, VisitsEveryLiveSlotOnceAndWalksOnlyTheKindsItsVisitorTakes) {
  Topic topic = Topic::create(small_topic("walk-kinds"));
  RawSubscriber sub(topic);  // holds nothing: still a live client to list
  RawPublisher pub(topic);
  const std::byte body[16]{};
  ASSERT_TRUE(pub.publish_copy(body).ok());
  Result<RawLoan> loan = pub.loan(64);
  ASSERT_TRUE(loan.ok());

  struct SlotsAndHolds {
    std::vector<SlotReference> slots;
    std::size_t holds = 0;
    void operator()(const SlotReference& s) { slots.push_back(s); }
    void operator()(const HoldReference&) { ++holds; }
  } v;
  detail::walk_references(detail::TopicAccess::map(topic), SlotsWalked::active, v);
  ASSERT_EQ(v.slots.size(), 2u);
  EXPECT_EQ(v.slots[0].role, SlotReference::Role::publisher);
  EXPECT_EQ(v.slots[0].slot, pub.slot());
  EXPECT_EQ(v.slots[1].role, SlotReference::Role::subscriber);
  EXPECT_EQ(v.holds, 0u);

  // A visitor of hold rows only sees the sample the subscriber takes, never the loan or ring.
  Result<RawSample> taken = sub.take();
  ASSERT_TRUE(taken.ok());
  struct HoldsOnly {
    std::size_t holds = 0;
    void operator()(const HoldReference&) { ++holds; }
  } h;
  detail::walk_references(detail::TopicAccess::map(topic), SlotsWalked::active, h);
  EXPECT_EQ(h.holds, 1u);
}

}  // namespace
}  // namespace shmbus
