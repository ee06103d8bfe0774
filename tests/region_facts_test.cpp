// The private copy of a region's immutable words (bus/region_facts.hpp): an opener validates
// a copy and uses only the copy, so rewriting the shared header, control block or size class
// table after open changes nothing for it; an opened topic reports exactly the configuration
// it was created with; and error messages keep naming the topic after the region is lost.
#include <gtest/gtest.h>

#include <cstring>
#include <unistd.h>

#include "layout.hpp"
#include "shmbus/shmbus.hpp"
#include "test_support.hpp"
#include "topic_admin.hpp"
#include "topic_map.hpp"

namespace shmbus {
namespace {

using namespace detail;

TopicConfig small_config(const std::string& tag) {
  TopicConfig c;
  c.name = testing::unique_name(tag);
  c.size_classes = {{4096, 6}, {64, 20}, {1024, 10}};  // any order: the creator sorts them
  c.queue_depth = 8;
  c.history_depth = 3;
  c.policy = SlowSubscriberPolicy::drop_oldest;
  c.block_timeout = std::chrono::milliseconds(250);
  c.max_publishers = 2;
  c.max_subscribers = 3;
  c.max_loans_per_publisher = 4;
  c.max_held_per_subscriber = 5;
  c.max_segments = 3;
  c.max_message_size = 2048;
  c.type_id = 0x1234'5678'9abc'def0ULL;
  c.schema = "not really a schema, just bytes";
  c.stamp_publish_time = true;
  return c;
}

void expect_same_config(const TopicConfig& a, const TopicConfig& b) {
  EXPECT_EQ(a.name, b.name);
  ASSERT_EQ(a.size_classes.size(), b.size_classes.size());
  for (std::size_t i = 0; i < a.size_classes.size(); ++i) {
    EXPECT_EQ(a.size_classes[i].chunk_size, b.size_classes[i].chunk_size) << "class " << i;
    EXPECT_EQ(a.size_classes[i].count, b.size_classes[i].count) << "class " << i;
  }
  EXPECT_EQ(a.queue_depth, b.queue_depth);
  EXPECT_EQ(a.history_depth, b.history_depth);
  EXPECT_EQ(a.policy, b.policy);
  EXPECT_EQ(a.block_timeout, b.block_timeout);
  EXPECT_EQ(a.max_publishers, b.max_publishers);
  EXPECT_EQ(a.max_subscribers, b.max_subscribers);
  EXPECT_EQ(a.max_loans_per_publisher, b.max_loans_per_publisher);
  EXPECT_EQ(a.max_held_per_subscriber, b.max_held_per_subscriber);
  EXPECT_EQ(a.max_segments, b.max_segments);
  EXPECT_EQ(a.max_message_size, b.max_message_size);
  EXPECT_EQ(a.type_id, b.type_id);
  EXPECT_EQ(a.schema, b.schema);
  EXPECT_EQ(a.stamp_publish_time, b.stamp_publish_time);
}

TEST(RegionFacts, AnOpenedTopicReportsExactlyTheConfigurationItWasCreatedWith) {
  testing::TempDir dir("facts-config");
  for (bool file : {false, true}) {
    SCOPED_TRACE(file ? "file-backed" : "anonymous");
    RegionOptions options = file ? dir.region_options() : RegionOptions{};
    Topic created = Topic::create(small_config("facts-config"), options);
    Topic opened = file ? Topic::open_file(created.path()) : Topic::open_fd(created.fd());
    expect_same_config(created.config(), opened.config());
    // No phantom default class {4096, 256} in front of the region's own three.
    ASSERT_EQ(opened.config().size_classes.size(), 3u);
    EXPECT_EQ(opened.config().size_classes.front().chunk_size, 64u);
  }
}

// Writes `value` over every byte of the immutable words of the shared header, control block
// and size class table (what a scribbler, or a stray write of a buggy client, could do).
void scribble_immutable_words(Topic& topic, std::uint8_t value) {
  TopicMap& m = detail::TopicAccess::map(topic);
  const RegionFacts& f = m.facts();
  std::memset(m.base(), value, offsetof(RegionHeader, health));
  std::memset(m.base() + f.section(kSectionControl).offset, value, offsetof(TopicControl, tail));
  std::memset(m.base() + f.section(kSectionClasses).offset, value, f.classes.size() * sizeof(SizeClassEntry));
}

TEST(RegionFacts, RewritingTheImmutableWordsAfterOpenChangesNothingForAnOpener) {
  for (std::uint8_t value : {std::uint8_t{0x00}, std::uint8_t{0xff}, std::uint8_t{0x03}}) {
    SCOPED_TRACE("scribbled with byte " + std::to_string(value));
    TopicConfig config = small_config("facts-scribble");
    config.stamp_publish_time = false;
    Topic created = Topic::create(config);
    Topic opened = Topic::open_fd(created.fd());
    const TopicConfig before = opened.config();
    const Topic::RegionInfo info_before = opened.region_info();
    const std::string described = detail::TopicAccess::map(opened).describe();
    RawSubscriber sub(opened);
    RawPublisher pub(opened);

    // 0x03 makes the shared policy fail_publish and every count 0x03030303; 0xff makes the
    // ring capacity 2^32-1 and every offset far outside the region; 0x00 zeroes them all.
    scribble_immutable_words(created, value);

    expect_same_config(before, opened.config());
    EXPECT_EQ(detail::TopicAccess::map(opened).describe(), described);
    const Topic::RegionInfo info = opened.region_info();
    EXPECT_EQ(info.size, info_before.size);
    EXPECT_EQ(info.anonymous, info_before.anonymous);
    ASSERT_EQ(info.sections.size(), info_before.sections.size());
    for (std::size_t i = 0; i < info.sections.size(); ++i) {
      EXPECT_EQ(info.sections[i].offset, info_before.sections[i].offset) << info.sections[i].name;
      EXPECT_EQ(info.sections[i].size, info_before.sections[i].size) << info.sections[i].name;
    }
    // Still drop-oldest with a ring of 8: three laps without taking all succeed (a re-read
    // fail_publish policy would refuse the ninth), and the subscriber then finds the newest
    // messages where a ring of 8 keeps them.
    for (std::uint32_t i = 0; i < 24; ++i) {
      auto loan = pub.loan(sizeof i);
      ASSERT_TRUE(loan) << loan.name();
      std::memcpy(loan->data().data(), &i, sizeof i);
      ASSERT_TRUE(pub.publish(std::move(*loan), sizeof i)) << "message " << i;
    }
    std::uint32_t last = 0;
    int taken = 0;
    for (;;) {
      auto s = sub.take();
      if (!s) {
        EXPECT_EQ(s.code(), Errc::no_data);
        break;
      }
      std::memcpy(&last, s->data().data(), sizeof last);
      ++taken;
    }
    EXPECT_EQ(last, 23u);
    EXPECT_LE(taken, 8);
    EXPECT_GE(taken, 1);
    TopicStats st = opened.stats();
    ASSERT_EQ(st.classes.size(), 3u);
    EXPECT_EQ(st.classes[0].chunk_size, 64u);
    EXPECT_FALSE(opened.busy_chunks().empty());  // the ring holds messages
    // A new opener is refused, naming what is wrong.
    try {
      Topic::open_fd(created.fd());
      ADD_FAILURE() << "a scribbled region was opened";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("region fd"), std::string::npos) << e.what();
    }
  }
}

TEST(RegionFacts, ErrorMessagesNameTheTopicAfterItsRegionIsLost) {
  testing::TempDir dir("facts-lost");
  TopicConfig config = small_config("facts-lost");
  Topic topic = Topic::create(config, dir.region_options());
  ASSERT_EQ(truncate(topic.path().c_str(), 0), 0);
  (void)topic.stats();  // touches the mapping: the SIGBUS guard replaces it with zero pages
  ASSERT_TRUE(detail::TopicAccess::map(topic).unusable());
  EXPECT_NE(detail::TopicAccess::map(topic).describe().find("'" + config.name + "'"), std::string::npos) << detail::TopicAccess::map(topic).describe();
  EXPECT_EQ(topic.name(), config.name);
}

}  // namespace
}  // namespace shmbus
