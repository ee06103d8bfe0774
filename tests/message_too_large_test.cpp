// A typed message that outgrows the topic: Cap'n Proto can only throw from its segment
// allocation, so the exception must itself be the one line a user acts on (the topic, the
// size, the largest chunk), and the loan keeps the code.
#include <gtest/gtest.h>

#include <kj/exception.h>

#include <string>
#include <vector>

#include "shmbus/shmbus.hpp"
#include "test_messages.capnp.h"
#include "test_support.hpp"

namespace shmbus {
namespace {

using namespace shmbus::testing;

TEST(MessageTooLarge, ATypedMessageLargerThanTheLargestChunkThrowsOneLineNamingTopicSizeAndLargestChunk) {
  TopicConfig c = typed_topic<test::Reading>(unique_name("too-large"));
  c.size_classes = {{256, 8}, {1024, 4}};
  Topic topic = Topic::create(c);
  Publisher<test::Reading> pub(topic);
  auto loan = pub.loan();
  ASSERT_TRUE(loan.ok()) << loan.status().name();
  std::vector<kj::byte> body(4000, 'x');
  std::string what;
  try {
    loan.init().setBody(kj::arrayPtr(body.data(), body.size()));
  } catch (const kj::Exception& e) {
    what = e.getDescription().cStr();
  }
  ASSERT_FALSE(what.empty()) << "a 4000-byte body fit into a 1024-byte chunk";
  EXPECT_NE(what.find("topic '" + topic.name() + "'"), std::string::npos) << what;
  EXPECT_NE(what.find("message too large"), std::string::npos) << what;
  EXPECT_NE(what.find("largest chunk 1024 bytes"), std::string::npos) << what;
  EXPECT_NE(what.find("cannot loan 40"), std::string::npos) << what;  // the body's 4000 bytes and a few words
  EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  EXPECT_EQ(what.find("kNoChunk"), std::string::npos) << what;
  EXPECT_EQ(loan.status().code(), Errc::message_too_large);

  // The topic is unharmed: the next message that fits goes through.
  auto next = pub.loan();
  ASSERT_TRUE(next.ok()) << next.status().name();
  next.init().setSeq(1);
  EXPECT_TRUE(pub.publish(next).ok());
}

}  // namespace
}  // namespace shmbus
