// Loans may be given back (dropped unpublished) on any thread: the publishing thread finishes
// such returns at its next loan. Here a second thread drops every other loan while the first
// keeps loaning and publishing (run under ThreadSanitizer too).
#include <gtest/gtest.h>

#include <thread>

#include "shmbus/shmbus.hpp"
#include "test_support.hpp"

namespace shmbus {
namespace {

using namespace shmbus::testing;

TEST(LoanReleaseThread, LoansDroppedOnAnotherThreadAllComeBack) {
  const long n = scaled(50'000);
  TopicConfig c;
  c.name = unique_name("loan-threads");
  c.size_classes = {{64, 32}};
  c.queue_depth = 8;
  c.max_loans_per_publisher = 4;
  Topic topic = Topic::create(c);
  RawPublisher pub(topic);
  DestroyingThread<RawLoan> dropper;  // drops loans unpublished, on its own thread
  long published = 0;
  for (long i = 0; i < n; ++i) {
    Result<RawLoan> dropped = pub.loan(64);
    if (!dropped && dropped.code() == Errc::too_many_loans) {  // the dropper is behind
      std::this_thread::yield();
      --i;
      continue;
    }
    ASSERT_TRUE(static_cast<bool>(dropped)) << i << ": " << dropped.name() << "\n" << topic.describe_pool();
    dropper.hand(std::move(dropped.value()));
    Status st = publish_stamped(pub, 1, static_cast<std::uint64_t>(i), 16);
    if (st.code() == Errc::too_many_loans) continue;  // as above
    ASSERT_TRUE(st.ok()) << i << ": " << st.name() << "\n" << topic.describe_pool();
    ++published;
  }
  dropper.finish();
  EXPECT_GT(published, n / 2);
  // The next loan on the publishing thread finishes the returns left to it.
  { Result<RawLoan> last = pub.loan(64); ASSERT_TRUE(static_cast<bool>(last)) << last.name(); }
  const TopicStats st = topic.stats();
  EXPECT_EQ(st.classes[0].loaned, 0u) << topic.describe_pool();
  EXPECT_EQ(st.classes[0].free + st.classes[0].in_ring, st.classes[0].total) << topic.describe_pool();
}

}  // namespace
}  // namespace shmbus
