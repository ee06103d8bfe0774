// Typed durable logs: Cap'n Proto messages built in the log's record by one process and read
// in place by another; records that are not valid messages are reported and skipped.
#include <gtest/gtest.h>

#include <capnp/serialize.h>

#include "shmbus/durable_typed.hpp"
#include "test_messages.capnp.h"
#include "test_support.hpp"

namespace shmbus {
namespace {

using namespace shmbus::testing;
using shmbus::test::Reading;
namespace fs = std::filesystem;

DurableConfig readings_log(const fs::path& dir) {
  DurableConfig c;
  c.directory = dir;
  c.topic = "readings";
  c.segment_size = 64 * 1024;
  return c;
}

std::vector<std::byte> body_of(std::uint64_t seq) {
  std::vector<std::byte> b(8 + seq % 50);
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<std::byte>(seq * 31 + i);
  return b;
}

TEST(DurableTyped, MessagesBuiltInTheRecordByOneProcessAreReadInPlaceByAnother) {
  TempDir dir("durable-typed");
  constexpr std::uint64_t kCount = 3000;  // several 64 KiB segments
  Child writer = Child::spawn([&]() -> int {
    TypedDurableAppender<Reading> log(readings_log(dir.path()));
    for (std::uint64_t i = 0; i < kCount; ++i) {
      TypedDurableLoan<Reading> loan = log.loan(128);
      if (!loan) return kChildFirstFree;
      Reading::Builder r = loan.init();
      r.setSeq(i);
      r.setPublisher(7);
      std::vector<std::byte> body = body_of(i);
      r.setChecksum(fnv1a(body));
      r.setBody(kj::arrayPtr(reinterpret_cast<const capnp::byte*>(body.data()), body.size()));
      if (!log.publish(loan)) return kChildFirstFree + 1;
    }
    return kChildOk;
  });
  ASSERT_EQ(writer.wait(), kChildOk) << describe_exit(writer.wait());

  EXPECT_EQ(list_durable_segments(dir.path(), "readings").front().type_id, capnp::typeId<Reading>());
  EXPECT_FALSE(durable_schema(dir.path(), "readings").empty()) << "the schema file is what tools decode with";
  TypedDurableReader<Reading> in(DurableReader::oldest(dir.path(), "readings"));
  for (std::uint64_t i = 0; i < kCount; ++i) {
    Result<Reading::Reader> r = in.next();
    ASSERT_TRUE(r) << "message " << i << ": " << r.name();
    ASSERT_EQ(r->getSeq(), i);
    ASSERT_EQ(in.sample().sequence, i);
    capnp::Data::Reader body = r->getBody();
    ASSERT_EQ(r->getChecksum(), fnv1a(std::as_bytes(std::span(body.begin(), body.size()))));
    // The record holds standard framing: any Cap'n Proto reader decodes it.
    auto words = kj::arrayPtr(reinterpret_cast<const capnp::word*>(in.sample().data.data()),
                              in.sample().data.size() / sizeof(capnp::word));
    capnp::FlatArrayMessageReader plain(words);
    ASSERT_EQ(plain.getRoot<Reading>().getSeq(), i);
  }
  EXPECT_EQ(in.next().code(), Errc::no_data);
}

TEST(DurableTyped, ARecordThatIsNoMessageIsMalformedAndSkippedAndAnOverfullLoanLeavesATombstone) {
  TempDir dir("durable-typed-bad");
  TypedDurableAppender<Reading> log(readings_log(dir.path()));
  {
    TypedDurableLoan<Reading> loan = log.loan(64);
    ASSERT_TRUE(loan);
    loan.init().setSeq(1);
    ASSERT_TRUE(log.publish(loan));
  }
  // Garbage in a record of the same log: a framing word claiming far more than the record.
  std::uint32_t bogus[4] = {0, 1000000, 0, 0};
  ASSERT_TRUE(log.raw().append(std::as_bytes(std::span(bogus))));
  {
    TypedDurableLoan<Reading> loan = log.loan(48);  // room for the struct, not for a 200-byte body
    ASSERT_TRUE(loan);
    Reading::Builder r = loan.init();
    std::vector<capnp::byte> big(200, 1);
    EXPECT_ANY_THROW(r.setBody(kj::arrayPtr(big.data(), big.size())));
  }  // dropped unpublished: a tombstone, its sequence spent
  {
    TypedDurableLoan<Reading> loan = log.loan(64);
    ASSERT_TRUE(loan);
    loan.init().setSeq(4);
    ASSERT_TRUE(log.publish(loan));
  }
  TypedDurableReader<Reading> in(DurableReader::oldest(dir.path(), "readings"));
  Result<Reading::Reader> first = in.next();
  ASSERT_TRUE(first) << first.name();
  EXPECT_EQ(first->getSeq(), 1u);
  EXPECT_EQ(in.next().code(), Errc::malformed_message);
  Result<Reading::Reader> last = in.next();
  ASSERT_TRUE(last) << last.name();
  EXPECT_EQ(last->getSeq(), 4u);
  EXPECT_EQ(in.sample().sequence, 3u);  // sequence 2 was the tombstone
  EXPECT_THROW(TypedDurableAppender<shmbus::test::Tree>{readings_log(dir.path())}, Error)
      << "an appender of another type is refused (type_mismatch)";
}

}  // namespace
}  // namespace shmbus
