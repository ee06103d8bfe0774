// Hostile Cap'n Proto in shared memory. A publisher process writes bytes of its choosing into
// raw chunks of a typed topic (random bit flips of a valid message, pointers out of bounds,
// nesting past the limit, far-pointer and self-referencing loops, lying chunk headers); a
// subscriber process takes them with Subscriber<Tree>. Every hostile message must be
// Errc::malformed_message or, for a harmless flip, a message that reads without crashing; the
// valid message published after each one must still arrive. A crash, a hang or an ASan report
// fails the test through the subscriber's exit status.
#include <gtest/gtest.h>

#include <capnp/message.h>
#include <kj/exception.h>

#include <random>
#include <vector>

#include "shmbus/shmbus.hpp"
#include "test_messages.capnp.h"
#include "test_support.hpp"
#include "topic_admin.hpp"
#include "topic_map.hpp"

namespace shmbus {
namespace {

using namespace shmbus::testing;
using namespace std::chrono_literals;
using test::Tree;

enum class Expect { reject, accept, either };

// One hostile message: the segment's words, how many bytes of them to publish, and optional
// lies in the chunk header.
struct HostileCase {
  std::string what;
  std::vector<std::uint64_t> words;
  std::size_t used_bytes;
  Expect expect;
  std::optional<std::uint32_t> segment_count;  // overrides the head chunk's segment count
  std::optional<std::uint32_t> next_segment;   // overrides the head chunk's next link
};

// Cap'n Proto wire pointers (encoding spec, "Pointers").
std::uint64_t struct_ptr(std::int32_t offset, std::uint16_t data_words, std::uint16_t ptrs) {
  return (static_cast<std::uint32_t>(offset) << 2) | (std::uint64_t{data_words} << 32) | (std::uint64_t{ptrs} << 48);
}
std::uint64_t list_ptr(std::int32_t offset, std::uint32_t element_size, std::uint32_t count) {
  return ((static_cast<std::uint32_t>(offset) << 2) | 1u) | (std::uint64_t{(count << 3) | element_size} << 32);
}
std::uint64_t far_ptr(std::uint32_t pad_offset, bool double_far, std::uint32_t segment) {
  return ((pad_offset << 3) | (double_far ? 4u : 0u) | 2u) | (std::uint64_t{segment} << 32);
}

std::vector<std::uint64_t> words_of(capnp::MallocMessageBuilder& builder) {
  auto segments = builder.getSegmentsForOutput();
  EXPECT_EQ(segments.size(), 1u);
  std::vector<std::uint64_t> out(segments[0].size());
  std::memcpy(out.data(), segments[0].begin(), out.size() * sizeof(capnp::word));
  return out;
}

// A Tree `depth` levels deep, one child per level.
std::vector<std::uint64_t> chain_tree(int depth) {
  capnp::MallocMessageBuilder builder(8192);
  Tree::Builder node = builder.initRoot<Tree>();
  for (int i = 0; i < depth; ++i) {
    node.setValue(i);
    node = node.initChildren(1)[0];
  }
  return words_of(builder);
}

// A bushy valid Tree: the template for random bit flips.
std::vector<std::uint64_t> bushy_tree() {
  capnp::MallocMessageBuilder builder(8192);
  Tree::Builder root = builder.initRoot<Tree>();
  root.setValue(1);
  auto level1 = root.initChildren(3);
  for (unsigned i = 0; i < 3; ++i) {
    level1[i].setValue(10 + i);
    auto level2 = level1[i].initChildren(3);
    for (unsigned j = 0; j < 3; ++j) {
      level2[j].setValue(100 + 10 * i + j);
      level2[j].initChildren(2)[1].setValue(-1);
    }
  }
  return words_of(builder);
}

HostileCase whole(std::string what, std::vector<std::uint64_t> words, Expect expect) {
  std::size_t bytes = words.size() * 8;
  return {std::move(what), std::move(words), bytes, expect, std::nullopt, std::nullopt};
}

std::vector<HostileCase> crafted_cases() {
  std::vector<HostileCase> c;
  // Positive controls: prove the subscriber accepts what it should.
  c.push_back(whole("valid bushy tree", bushy_tree(), Expect::accept));
  c.push_back(whole("valid 20-level tree", chain_tree(20), Expect::accept));
  // Pointers out of bounds.
  c.push_back(whole("root struct past the segment end", {struct_ptr(1000, 1, 1), 0, 0}, Expect::reject));
  c.push_back(whole("root struct before the segment start", {struct_ptr(-1000, 1, 1), 0, 0}, Expect::reject));
  c.push_back(whole("children list past the end", {struct_ptr(0, 1, 1), 7, list_ptr(500, 7, 4)}, Expect::reject));
  c.push_back(whole("list of 2^29-1 words", {struct_ptr(0, 1, 1), 7, list_ptr(0, 5, (1u << 29) - 1)}, Expect::reject));
  // Composite list whose tag claims more elements than the list's word count holds.
  c.push_back(whole("composite tag larger than the list",
                    {struct_ptr(0, 1, 1), 7, list_ptr(0, 7, 2), /*tag*/ (std::uint64_t{50} << 2) | (std::uint64_t{1} << 32) | (std::uint64_t{1} << 48), 0, 0},
                    Expect::reject));
  // Nesting beyond the reader's limit (64).
  c.push_back(whole("tree 100 levels deep", chain_tree(100), Expect::reject));
  c.push_back(whole("tree 300 levels deep", chain_tree(300), Expect::reject));
  // Loops.
  c.push_back(whole("far pointer to itself", {far_ptr(0, false, 0)}, Expect::reject));
  // Landing pad = the double-far itself, tag = a struct of one pointer at offset 0: the
  // struct's pointer is the double-far again.
  c.push_back(whole("double-far loop", {far_ptr(0, true, 0), struct_ptr(0, 0, 1)}, Expect::reject));
  c.push_back(whole("far pointers to each other", {far_ptr(1, false, 0), far_ptr(0, false, 0)}, Expect::reject));
  c.push_back(whole("far pointer to an unknown segment", {far_ptr(0, false, 7)}, Expect::reject));
  c.push_back(whole("struct whose pointer is itself", {struct_ptr(-1, 0, 1)}, Expect::reject));
  // Root struct at word 2; its children list (tag at word 1: one element) starts at word 2,
  // so the root's only child is the root itself.
  c.push_back(whole("children list containing its parent",
                    {struct_ptr(1, 1, 1), struct_ptr(1, 1, 1), 7, list_ptr(-3, 7, 2)}, Expect::reject));
  // Framing lies.
  c.push_back(whole("empty segment", {}, Expect::reject));
  HostileCase odd = whole("segment not a whole number of words", {struct_ptr(0, 1, 0), 7}, Expect::reject);
  odd.used_bytes = 13;
  c.push_back(odd);
  HostileCase zero_segments = whole("segment count 0", bushy_tree(), Expect::reject);
  zero_segments.segment_count = 0;
  c.push_back(zero_segments);
  HostileCase many_segments = whole("segment count 33", bushy_tree(), Expect::reject);
  many_segments.segment_count = 33;
  c.push_back(many_segments);
  HostileCase missing_segment = whole("segment count 3, one chunk", bushy_tree(), Expect::reject);
  missing_segment.segment_count = 3;
  c.push_back(missing_segment);
  HostileCase bogus_link = whole("next segment out of range", bushy_tree(), Expect::reject);
  bogus_link.segment_count = 2;
  bogus_link.next_segment = 0xFFFF'FFF0u;
  c.push_back(bogus_link);
  return c;
}

std::vector<HostileCase> bit_flip_cases(int iterations, std::uint32_t seed) {
  const std::vector<std::uint64_t> base = bushy_tree();
  std::mt19937 rng(seed);
  std::vector<HostileCase> c;
  for (int i = 0; i < iterations; ++i) {
    std::vector<std::uint64_t> words = base;
    int flips = 1 + static_cast<int>(rng() % 8);
    for (int f = 0; f < flips; ++f) {
      std::size_t bit = rng() % (words.size() * 64);
      words[bit / 64] ^= 1ULL << (bit % 64);
    }
    c.push_back(whole("bit flips #" + std::to_string(i), std::move(words), Expect::either));
  }
  return c;
}

// Reads every node; Cap'n Proto throws kj::Exception on anything out of bounds.
std::int64_t walk(Tree::Reader node, int depth) {
  std::int64_t sum = node.getValue();
  if (depth > 200) return sum;  // the reader's nesting limit stops long before this
  for (Tree::Reader child : node.getChildren()) sum += walk(child, depth + 1);
  return sum;
}

// What the subscriber saw for one case.
struct Outcome {
  std::int32_t take_code;   // Errc of taking the hostile message
  std::uint32_t read_threw; // accepted, then reading threw kj::Exception (allowed)
  std::uint32_t next_ok;    // the valid message after it arrived intact
};

constexpr std::int64_t kMarkerBase = 1'000'000'000;

int publish_cases(const Topic& shared, const std::vector<HostileCase>& cases) {
  Topic topic = Topic::open_fd(shared.fd());
  Publisher<Tree> typed(topic);
  RawPublisher& raw = typed.raw();
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const HostileCase& hc = cases[i];
    Result<RawLoan> loan = raw.loan(std::max<std::size_t>(hc.words.size() * 8, 8));
    if (!loan) return kChildFirstFree;
    if (!hc.words.empty()) std::memcpy(loan->data().data(), hc.words.data(), hc.words.size() * 8);
    detail::ChunkHeader& header = detail::TopicAccess::map(topic).chunk(loan->chunk());
    if (hc.segment_count) header.segment_count.store(*hc.segment_count);
    if (hc.next_segment) header.next_segment.store(*hc.next_segment);
    if (!raw.publish(std::move(loan.value()), hc.used_bytes).ok()) return kChildFirstFree + 1;
    auto valid = typed.loan();
    if (!valid.ok()) return kChildFirstFree + 2;
    valid.init().setValue(kMarkerBase + static_cast<std::int64_t>(i));
    if (!typed.publish(valid).ok()) return kChildFirstFree + 3;
  }
  return kChildOk;
}

int take_cases(const Topic& shared, std::size_t count, Pipe& ready, Pipe& report) {
  Topic topic = Topic::open_fd(shared.fd());
  Subscriber<Tree> sub(topic, SubscriberOptions{.wait_mode = WaitMode::block});
  if (!ready.notify()) return kChildPipeFailed;
  for (std::size_t i = 0; i < count; ++i) {
    Outcome out{0, 0, 0};
    if (sub.wait(10s).code() == Errc::timeout) return kChildTimedOut;
    {
      auto hostile = sub.take();
      out.take_code = static_cast<std::int32_t>(hostile.code());
      if (hostile) {
        try {
          (void)walk(hostile->root(), 0);
        } catch (const kj::Exception&) {
          out.read_threw = 1;
        }
      }
    }
    auto next = sub.take_wait(10s);
    out.next_ok = next && next->root().getValue() == kMarkerBase + static_cast<std::int64_t>(i);
    if (!report.send(out)) return kChildPipeFailed;
  }
  return kChildOk;
}

TopicConfig tree_topic() {
  TopicConfig c;
  c.name = unique_name("malformed");
  c.type_id = capnp::typeId<Tree>();
  c.size_classes = {{8192, 64}};
  c.queue_depth = 16;
  c.policy = SlowSubscriberPolicy::block;
  c.block_timeout = 10s;
  return c;
}

void run_cases(const std::vector<HostileCase>& cases) {
  Topic topic = Topic::create(tree_topic());
  Pipe ready, report;
  Child subscriber = Child::spawn([&] { return take_cases(topic, cases.size(), ready, report); });
  ASSERT_TRUE(ready.await());
  Child publisher = Child::spawn([&] { return publish_cases(topic, cases); });
  std::size_t accepted = 0, rejected = 0;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    std::optional<Outcome> out = report.receive<Outcome>(20s);
    ASSERT_TRUE(out) << "no outcome for case '" << cases[i].what << "'; subscriber "
                     << describe_exit(subscriber.wait(1s));
    Errc code = static_cast<Errc>(out->take_code);
    EXPECT_TRUE(code == Errc::ok || code == Errc::malformed_message) << cases[i].what << ": " << errc_name(code);
    if (cases[i].expect == Expect::reject) {
      EXPECT_EQ(code, Errc::malformed_message) << cases[i].what;
    } else if (cases[i].expect == Expect::accept) {
      EXPECT_EQ(code, Errc::ok) << cases[i].what;
      EXPECT_FALSE(out->read_threw) << cases[i].what;
    }
    EXPECT_TRUE(out->next_ok) << "valid message after '" << cases[i].what << "' did not arrive";
    (code == Errc::ok ? accepted : rejected) += 1;
  }
  int pub_status = publisher.wait();
  int sub_status = subscriber.wait();
  EXPECT_EQ(pub_status, kChildOk) << describe_exit(pub_status);
  EXPECT_EQ(sub_status, kChildOk) << describe_exit(sub_status);
  // Nothing leaked: every chunk is free or referenced by the ring.
  for (const SizeClassUsage& u : topic.stats().classes) EXPECT_EQ(u.free + u.in_ring, u.total);
  std::cout << cases.size() << " cases: " << accepted << " accepted, " << rejected << " rejected\n";
}

TEST(MalformedMessage, CraftedAttacksAreRejectedAndTheNextMessageArrives) { run_cases(crafted_cases()); }

TEST(MalformedMessage, RandomBitFlipsNeverCrashTheSubscriber) {
  const int iterations = kScaleDown > 1 ? 1000 : 5000;
  std::vector<HostileCase> cases = bit_flip_cases(iterations, /*seed=*/20240611);
  run_cases(cases);
}

}  // namespace
}  // namespace shmbus
