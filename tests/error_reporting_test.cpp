// Clear errors for exhausted resources and for regions that are not what they claim: each
// failure has its own Errc and a message naming the topic or the file.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <kj/exception.h>
#include <sys/mman.h>
#include <unistd.h>

#include <random>

#include "layout.hpp"
#include "shmbus/shmbus.hpp"
#include "test_messages.capnp.h"
#include "test_support.hpp"
#include "topic_admin.hpp"

namespace shmbus {
namespace {

using namespace shmbus::testing;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

TopicConfig tiny_topic(const std::string& tag) {
  TopicConfig c;
  c.name = unique_name(tag);
  c.size_classes = {{256, 8}};
  c.queue_depth = 4;
  return c;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// ---------------------------------------------------------------- resources

TEST(ErrorReporting, PoolExhaustionNamesTopicAndTheProcessHoldingChunks) {
  Topic topic = Topic::create(tiny_topic("exhaust"));
  RawPublisher pub(topic);
  Pipe holding, release;
  Child holder = Child::spawn([&] {
    Topic mine = Topic::open_fd(topic.fd());
    RawSubscriber sub(mine);
    std::vector<RawSample> held;
    if (!holding.notify()) return static_cast<int>(kChildPipeFailed);  // registered
    while (held.size() < 4) {
      Result<RawSample> s = sub.take_wait(10s);
      if (!s) return static_cast<int>(kChildTimedOut);
      held.push_back(std::move(s.value()));
    }
    if (!holding.notify()) return static_cast<int>(kChildPipeFailed);  // holding 4 samples
    return release.await() ? static_cast<int>(kChildOk) : static_cast<int>(kChildPipeFailed);
  });
  ASSERT_TRUE(holding.await());
  for (std::uint64_t i = 0; i < 4; ++i) ASSERT_TRUE(publish_stamped(pub, 0, i, 8).ok());
  ASSERT_TRUE(holding.await());
  // 4 chunks held by the child, 4 more in the ring: all 8 in use.
  for (std::uint64_t i = 4; i < 8; ++i) ASSERT_TRUE(publish_stamped(pub, 0, i, 8).ok());
  Result<RawLoan> more = pub.loan(100);
  ASSERT_EQ(more.code(), Errc::pool_exhausted);
  std::string why = pub.explain(more.code(), 100);
  EXPECT_TRUE(contains(why, topic.name())) << why;
  EXPECT_TRUE(contains(why, "4 held by subscribers")) << why;
  EXPECT_TRUE(contains(why, "pid " + std::to_string(holder.pid()))) << why;
  ASSERT_TRUE(release.notify());
  EXPECT_EQ(holder.wait(), kChildOk);
  EXPECT_TRUE(pub.loan(100)) << "chunks did not come back after the holder let go";
}

TEST(ErrorReporting, OversizeLoansAreMessageTooLarge) {
  TopicConfig c = tiny_topic("oversize");
  c.size_classes = {{256, 8}, {4096, 4}};
  c.max_message_size = 3000;
  Topic topic = Topic::create(c);
  RawPublisher pub(topic);
  EXPECT_TRUE(pub.loan(3000));
  for (std::size_t size : {3001u, 4096u, 4097u, 1u << 30}) {
    Result<RawLoan> loan = pub.loan(size);
    EXPECT_EQ(loan.code(), Errc::message_too_large) << size;
    std::string why = pub.explain(loan.code(), size);
    EXPECT_TRUE(contains(why, topic.name())) << why;
    EXPECT_TRUE(contains(why, "max message 3000")) << why;
  }
}

TEST(ErrorReporting, TypedMessageOutgrowingTheTopicThrowsNamingIt) {
  TopicConfig c = tiny_topic("typed-oversize");
  c.type_id = capnp::typeId<test::Blob>();
  c.size_classes = {{1024, 16}};
  c.max_message_size = 4096;
  Topic topic = Topic::create(c);
  Publisher<test::Blob> pub(topic);
  {
    auto loan = pub.loan();
    ASSERT_TRUE(loan.ok());
    try {
      loan.init().initParts(1).init(0, 10'000);
      FAIL() << "a 10 kB message fitted in a 4 kB limit";
    } catch (const kj::Exception& e) {
      EXPECT_TRUE(contains(e.getDescription().cStr(), topic.name())) << e.getDescription().cStr();
    }
  }
  for (const SizeClassUsage& u : topic.stats().classes) EXPECT_EQ(u.free, u.total) << "the failed loan leaked chunks";
}

TEST(ErrorReporting, TooManyLoansAndTooManyHeldSamples) {
  TopicConfig c = tiny_topic("limits");
  c.max_loans_per_publisher = 2;
  c.max_held_per_subscriber = 2;
  Topic topic = Topic::create(c);
  RawPublisher pub(topic);
  RawSubscriber sub(topic);
  {
    Result<RawLoan> a = pub.loan(10), b = pub.loan(10);
    ASSERT_TRUE(a && b);
    Result<RawLoan> third = pub.loan(10);
    EXPECT_EQ(third.code(), Errc::too_many_loans);
    EXPECT_TRUE(contains(pub.explain(third.code(), 10), topic.name()));
  }
  EXPECT_TRUE(pub.loan(10)) << "loans given back did not count as returned";
  for (std::uint64_t i = 0; i < 3; ++i) ASSERT_TRUE(publish_stamped(pub, 0, i, 8).ok());
  Result<RawSample> s1 = sub.take(), s2 = sub.take();
  ASSERT_TRUE(s1 && s2);
  EXPECT_EQ(sub.take().code(), Errc::too_many_held);
  s1 = Result<RawSample>(Errc::no_data);  // let one go
  Result<RawSample> s3 = sub.take();
  ASSERT_TRUE(s3) << "the refused take lost its message";
  EXPECT_EQ(s3->sequence(), 2u);
}

// ---------------------------------------------------------------- misuse

// Calls the library does not allow here fail with Errc::misuse, never with a configuration
// error: the caller's code, not the topic, is what to fix.
TEST(ErrorReporting, CallsNotAllowedHereAreMisuseNotInvalidConfig) {
  TempDir dir("misuse");
  Topic topic = Topic::create(tiny_topic("misuse"), dir.region_options());
  RawPublisher mine(topic), other(topic);
  Result<RawLoan> loan = mine.loan(16);
  ASSERT_TRUE(loan);
  EXPECT_EQ(other.publish(std::move(loan.value())).code(), Errc::misuse) << "a loan of another publisher";
  EXPECT_TRUE(mine.publish(std::move(loan.value())).ok()) << "the refused loan stayed its publisher's";

  EXPECT_EQ(CowView::from(RawSample{}).code(), Errc::misuse) << "an empty sample";
  EXPECT_THROW(
      {
        try {
          (void)detail::publisher_generation(topic, topic.config().max_publishers);
        } catch (const Error& e) {
          EXPECT_EQ(e.code(), Errc::misuse) << e.what();
          throw;
        }
      },
      Error);

  Topic inspected = Topic::inspect_file(topic.path());
  for (bool publisher : {true, false}) {
    try {
      if (publisher) {
        RawPublisher p(inspected);
      } else {
        RawSubscriber s(inspected);
      }
      ADD_FAILURE() << "a " << (publisher ? "publisher" : "subscriber") << " on a read-only topic";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::misuse) << e.what();
      EXPECT_TRUE(contains(e.what(), "read-only")) << e.what();
    }
  }
}

TEST(ErrorReporting, TooManyPublishersAndSubscribersNameTheTopic) {
  TopicConfig c = tiny_topic("slots");
  c.max_publishers = 1;
  c.max_subscribers = 1;
  Topic topic = Topic::create(c);
  RawPublisher pub(topic);
  RawSubscriber sub(topic);
  try {
    RawPublisher second(topic);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::too_many_publishers);
    EXPECT_TRUE(contains(e.what(), topic.name())) << e.what();
  }
  try {
    RawSubscriber second(topic);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::too_many_subscribers);
    EXPECT_TRUE(contains(e.what(), topic.name())) << e.what();
  }
}

// ---------------------------------------------------------------- regions

// A pristine file-backed region, and copies of it to damage one way each.
class RegionFileErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    Topic topic = Topic::create(tiny_topic("region"), dir_.region_options());
    pristine_ = topic.path();
  }
  fs::path copy(const std::string& name) {
    fs::path p = dir_.path() / name;
    fs::copy_file(pristine_, p);
    return p;
  }
  static void patch_u32(const fs::path& file, std::size_t offset, std::uint32_t value) {
    int fd = ::open(file.c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pwrite(fd, &value, sizeof value, static_cast<off_t>(offset)), 4);
    close(fd);
  }
  // Opens `file`, expecting `code` and the path in the message.
  static void expect_refused(const fs::path& file, Errc code, const std::string& also = "") {
    try {
      Topic::open_file(file);
      ADD_FAILURE() << file << " was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), code) << e.what();
      EXPECT_TRUE(contains(e.what(), file.string())) << e.what();
      if (!also.empty()) {
        EXPECT_TRUE(contains(e.what(), also)) << e.what();
      }
    }
  }

  TempDir dir_{"regions"};
  fs::path pristine_;
};

TEST_F(RegionFileErrors, UntouchedCopyOpens) {
  Topic topic = Topic::open_file(copy("good"));
  RawPublisher pub(topic);
  RawSubscriber sub(topic);
  ASSERT_TRUE(publish_stamped(pub, 0, 0, 8).ok());
  EXPECT_TRUE(sub.take());
}

TEST_F(RegionFileErrors, UnknownLayoutVersionIsRefused) {
  fs::path file = copy("future");
  patch_u32(file, offsetof(detail::RegionHeader, layout_version), detail::kLayoutVersion + 41);
  expect_refused(file, Errc::unknown_layout_version, "version " + std::to_string(detail::kLayoutVersion + 41));
}

TEST_F(RegionFileErrors, NeverInitialisedRegionIsCorrupt) {
  fs::path file = copy("half-made");
  patch_u32(file, offsetof(detail::RegionHeader, layout_version), 0);
  expect_refused(file, Errc::region_corrupt);
}

TEST_F(RegionFileErrors, ForeignAbiIsRefused) {
  fs::path file = copy("other-abi");
  patch_u32(file, offsetof(detail::RegionHeader, abi_word), detail::kAbiWord ^ 0x4);
  expect_refused(file, Errc::abi_mismatch);
}

TEST_F(RegionFileErrors, ForeignFileIsNotARegion) {
  fs::path file = dir_.path() / "foreign";
  std::string junk(64 * 1024, '\0');
  std::mt19937 rng(7);
  for (char& ch : junk) ch = static_cast<char>(rng());
  {
    int fd = ::open(file.c_str(), O_RDWR | O_CREAT, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(write(fd, junk.data(), junk.size()), static_cast<ssize_t>(junk.size()));
    close(fd);
  }
  expect_refused(file, Errc::not_a_region);
}

TEST_F(RegionFileErrors, FileShorterThanTheHeaderIsTooShort) {
  fs::path file = copy("stub");
  fs::resize_file(file, 100);
  expect_refused(file, Errc::region_too_short);
  fs::resize_file(file, 0);
  expect_refused(file, Errc::region_too_short);
}

TEST_F(RegionFileErrors, FileShorterThanItsHeaderClaimsIsTooShort) {
  fs::path file = copy("truncated");
  fs::resize_file(file, 2 * detail::kPageSize);
  expect_refused(file, Errc::region_too_short);
}

// A region's bytes in a memfd nobody sealed: it could be truncated under a reader, so opening
// it must be refused.
int unsealed_copy_of(const Topic& topic, unsigned seals) {
  std::size_t size = topic.mapping_size();
  int fd = memfd_create("shmbus-test-unsealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(write(fd, topic.mapping_base(), size), static_cast<ssize_t>(size));
  if (seals != 0) {
    EXPECT_EQ(fcntl(fd, F_ADD_SEALS, seals), 0);
  }
  return fd;
}

TEST(ErrorReporting, UnsealedMemfdIsRefused) {
  Topic topic = Topic::create(tiny_topic("unsealed"));
  {  // control: the same bytes, sealed, open fine
    int fd = unsealed_copy_of(topic, F_SEAL_SHRINK | F_SEAL_GROW);
    EXPECT_NO_THROW(Topic::open_fd(fd));
    close(fd);
  }
  for (unsigned seals : {0u, unsigned{F_SEAL_SHRINK}, unsigned{F_SEAL_GROW}}) {
    int fd = unsealed_copy_of(topic, seals);
    try {
      Topic::open_fd(fd);
      ADD_FAILURE() << "memfd with seals " << seals << " was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::region_unsealed) << e.what();
      EXPECT_TRUE(contains(e.what(), "region fd")) << e.what();
    }
    close(fd);
  }
}

}  // namespace
}  // namespace shmbus
