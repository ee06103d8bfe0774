// shmbus echo / hz / pub: subscribe and print, measure rate, or publish, through a topic's
// recorded schema.
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include <capnp/serialize.h>

#include "commands.hpp"
#include "message_codec.hpp"
#include "output.hpp"
#include "shmbus/shmbus.hpp"
#include "topic_source.hpp"

namespace shmbus::cli {
namespace {

volatile std::sig_atomic_t g_interrupted = 0;
void on_interrupt(int) { g_interrupted = 1; }

void stop_on_ctrl_c() {
  std::signal(SIGINT, on_interrupt);
  std::signal(SIGTERM, on_interrupt);
}

struct EchoArgs {
  std::string topic;
  long count = -1;
  bool raw = false;
  double timeout_s = -1;
};

// The message's segments, from the sample's chunk chain.
std::vector<std::span<const std::byte>> segments_of(const RawSample& sample, bool typed) {
  if (!typed) return {sample.data()};
  detail::SegmentTable table;
  if (!detail::read_segments(sample, table)) throw Error(Errc::malformed_message, "message " + std::to_string(sample.sequence()) + " has a malformed segment chain");
  std::vector<std::span<const std::byte>> out;
  for (unsigned i = 0; i < table.count; ++i) {
    out.emplace_back(reinterpret_cast<const std::byte*>(table.segments[i].begin()), table.segments[i].size() * sizeof(capnp::word));
  }
  return out;
}

void echo(const EchoArgs& args, const GlobalOptions& global) {
  OpenedTopic opened = open_topic(args.topic, global, Role::subscriber);
  Topic& topic = opened.topic;
  MessageCodec codec(topic.config().schema, topic.config().type_id);
  RawSubscriber sub(topic, {.wait_mode = WaitMode::block});
  opened.register_subscriber(sub);
  stop_on_ctrl_c();
  const auto deadline = args.timeout_s < 0 ? std::chrono::steady_clock::time_point::max()
                                           : std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(args.timeout_s));
  long printed = 0;
  while (!g_interrupted && (args.count < 0 || printed < args.count)) {
    if (std::chrono::steady_clock::now() >= deadline) break;
    Result<RawSample> s = sub.take_wait(std::chrono::milliseconds(100));
    if (!s) {
      if (s.code() == Errc::timeout || s.code() == Errc::no_data) continue;
      throw Error(s.code(), "topic '" + topic.name() + "': " + s.name());
    }
    std::vector<std::span<const std::byte>> segs = segments_of(*s, codec.typed());
    if (args.raw) {  // standard Cap'n Proto framing: segment table, then segments
      if (codec.typed()) {
        std::vector<kj::ArrayPtr<const capnp::word>> words;
        for (auto seg : segs) words.push_back({reinterpret_cast<const capnp::word*>(seg.data()), seg.size() / 8});
        kj::Array<capnp::word> flat = capnp::messageToFlatArray(kj::arrayPtr(words.data(), words.size()));
        std::cout.write(flat.asChars().begin(), static_cast<std::streamsize>(flat.asChars().size()));
      } else {
        std::cout.write(reinterpret_cast<const char*>(segs[0].data()), static_cast<std::streamsize>(segs[0].size()));
      }
      std::cout.flush();
    } else {
      std::string body;
      try {
        body = codec.typed() ? codec.decode(segs, global.json) : hex_preview(segs[0].data(), segs[0].size(), 64);
      } catch (const kj::Exception& e) {
        body = std::string("<malformed: ") + e.getDescription().cStr() + ">";
      }
      if (global.json) {
        nlohmann::json j = {{"sequence", s->sequence()}, {"lost_before", s->lost_before()}};
        if (codec.typed() && body.front() == '{') j["message"] = nlohmann::json::parse(body);
        else j["hex"] = body;
        std::cout << j.dump() << std::endl;
      } else {
        if (s->lost_before() != 0) std::cout << "(lost " << s->lost_before() << " messages)\n";
        std::cout << "#" << s->sequence() << " " << body << std::endl;
      }
    }
    ++printed;
  }
}

struct HzArgs {
  std::string topic;
  double seconds = -1;
};

void hz(const HzArgs& args, const GlobalOptions& global) {
  OpenedTopic opened = open_topic(args.topic, global, Role::subscriber);
  RawSubscriber sub(opened.topic, {.wait_mode = WaitMode::adaptive, .with_history = false});
  opened.register_subscriber(sub);
  stop_on_ctrl_c();
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  auto window = start;
  std::uint64_t messages = 0, bytes = 0, lost = 0;
  while (!g_interrupted) {
    if (Result<RawSample> s = sub.take_wait(std::chrono::milliseconds(50))) {
      ++messages;
      bytes += s->data().size();
      lost += s->lost_before();
    }
    auto now = clock::now();
    if (now - window >= std::chrono::seconds(1)) {
      double dt = std::chrono::duration<double>(now - window).count();
      double rate = static_cast<double>(messages) / dt;
      double bw = static_cast<double>(bytes) / dt;
      if (global.json) {
        std::cout << nlohmann::json{{"rate_hz", rate}, {"bytes_per_s", bw}, {"lost", lost}}.dump() << std::endl;
      } else {
        std::printf("rate %.1f msg/s  bandwidth %.2f MB/s  lost %llu\n", rate, bw / 1e6,
                    static_cast<unsigned long long>(lost));
        std::fflush(stdout);
      }
      messages = bytes = lost = 0;
      window = now;
    }
    if (args.seconds >= 0 && std::chrono::duration<double>(now - start).count() >= args.seconds) break;
  }
}

struct PubArgs {
  std::string topic;
  std::string text;
  double rate = 0;
  long count = 1;
};

void pub(const PubArgs& args, const GlobalOptions& global) {
  OpenedTopic opened = open_topic(args.topic, global, Role::publisher);
  Topic& topic = opened.topic;
  MessageCodec codec(topic.config().schema, topic.config().type_id);
  RawPublisher publisher(topic);
  opened.register_publisher(publisher);
  stop_on_ctrl_c();
  const auto period = args.rate > 0 ? std::chrono::duration<double>(1.0 / args.rate) : std::chrono::duration<double>(0);
  long count = args.rate > 0 && args.count == 1 ? -1 : args.count;  // --rate alone: until Ctrl-C
  auto next = std::chrono::steady_clock::now();
  for (long i = 0; (count < 0 || i < count) && !g_interrupted; ++i) {
    Status st;
    if (codec.typed()) {
      detail::ChunkMessageBuilder builder(detail::core_of(publisher), 0);
      if (!builder.status().ok()) throw Error(builder.status().code(), publisher.explain(builder.status().code(), 0));
      codec.encode(args.text, global.json, builder);
      st = builder.publish();
    } else {
      Result<RawLoan> loan = publisher.loan(args.text.size());
      if (!loan) throw Error(loan.code(), publisher.explain(loan.code(), args.text.size()));
      std::memcpy(loan->data().data(), args.text.data(), args.text.size());
      st = publisher.publish(std::move(loan.value()));
    }
    if (!st.ok()) throw Error(st.code(), "topic '" + topic.name() + "': publish failed: " + st.name());
    if (period.count() > 0) {
      next += std::chrono::duration_cast<std::chrono::steady_clock::duration>(period);
      std::this_thread::sleep_until(next);
    }
  }
}

}  // namespace

void add_stream_commands(CLI::App& app, const GlobalOptions& global) {
  auto e = std::make_shared<EchoArgs>();
  CLI::App* ec = app.add_subcommand("echo", "Print each message of a topic, decoded through its recorded schema");
  ec->add_option("TOPIC", e->topic, "Topic name or region file")->required();
  ec->add_option("-n,--count", e->count, "Stop after COUNT messages");
  ec->add_flag("--raw", e->raw, "Write message bytes (standard Cap'n Proto framing) to stdout");
  ec->add_option("--timeout", e->timeout_s, "Stop after this many seconds");
  ec->callback([e, &global] { echo(*e, global); });

  auto h = std::make_shared<HzArgs>();
  CLI::App* hc = app.add_subcommand("hz", "Message rate, bandwidth and losses, each second");
  hc->add_option("TOPIC", h->topic, "Topic name or region file")->required();
  hc->add_option("--duration", h->seconds, "Stop after this many seconds");
  hc->callback([h, &global] { hz(*h, global); });

  auto p = std::make_shared<PubArgs>();
  CLI::App* pc = app.add_subcommand("pub", "Publish a message given as Cap'n Proto text (or JSON with --json)");
  pc->add_option("TOPIC", p->topic, "Topic name or region file")->required();
  pc->add_option("TEXT", p->text, "Message in Cap'n Proto text format, or JSON with --json; raw topics: the bytes")->required();
  pc->add_option("--rate", p->rate, "Publish repeatedly at HZ messages per second");
  pc->add_option("-n,--count", p->count, "Number of messages");
  pc->callback([p, &global] { pub(*p, global); });
}

}  // namespace shmbus::cli
