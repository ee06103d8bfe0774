#include "jetstream_importer.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <optional>
#include <spdlog/spdlog.h>

#include "jetstream_exporter.hpp"
#include "shmbus/durable.hpp"
#include "subjects.hpp"

namespace shmbus::bridge {

struct JetStreamImporter::Rule {
  const JetStreamImportRule* config = nullptr;
  std::filesystem::path state_file;
  std::unique_ptr<Replay> replay;       // null until started
  std::optional<DurableAppender> appender;  // opened at the first message (its type id)
  int state_fd = -1;
  using Counter = std::atomic<std::uint64_t>;  // relaxed tallies for the status file
  Counter appended{0}, refused{0}, last_stream_sequence{0};
  ~Rule() {
    replay.reset();  // no delivery runs once this returns
    if (state_fd >= 0) ::close(state_fd);
  }
};

namespace {

// The resume record of `file`, nullopt when there is none; throws naming the file when it is
// not one of ours.
std::optional<JetStreamImportState> read_state(const std::filesystem::path& file) {
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  JetStreamImportState st{};
  const ssize_t n = pread(fd, &st, sizeof st, 0);
  ::close(fd);
  if (n != static_cast<ssize_t>(sizeof st)) throw std::runtime_error(file.string() + ": shorter than a JetStream import state");
  if (std::memcmp(st.magic, kJetStreamImportStateMagic, sizeof st.magic) != 0) {
    throw std::runtime_error(file.string() + ": not a JetStream import state (wrong magic)");
  }
  if (st.layout_version != kJetStreamImportStateVersion) {
    throw std::runtime_error(file.string() + ": JetStream import state of layout version " + std::to_string(st.layout_version) +
                             ", this bridge reads " + std::to_string(kJetStreamImportStateVersion));
  }
  return st;
}

// Whether record `sequence` of the log was committed (not a tombstone, not missing).
bool committed(const std::filesystem::path& directory, const std::string& topic, std::uint64_t sequence) {
  try {
    DurableReader r = DurableReader::at_sequence(directory, topic, sequence);
    Result<DurableSample> s = r.next();
    return s && s->sequence == sequence;
  } catch (const Error&) {
    return false;  // no log yet
  }
}

}  // namespace

JetStreamImporter::JetStreamImporter(Engine& engine, const BridgeConfig& config, LogLimiter& log)
    : engine_(engine), config_(config), log_(log) {
  for (const JetStreamImportRule& c : config_.jetstream_imports) {
    auto r = std::make_unique<Rule>();
    r->config = &c;
    r->state_file = c.directory / c.topic / "jetstream-import.state";
    rules_.push_back(std::move(r));
  }
}

JetStreamImporter::~JetStreamImporter() {
  rules_.clear();  // replays stop before the context goes
  js_.reset();
}

void JetStreamImporter::tick() {
  if (rules_.empty()) return;
  if (!js_) {
    js_ = engine_.open_persistent_streams({});
    if (!js_) throw std::runtime_error("[[jetstream_import]]: this engine has no persistent streams");
  }
  for (auto& r : rules_) {
    if (!r->replay) start(*r);
  }
}

bool JetStreamImporter::start(Rule& r) {
  const JetStreamImportRule& c = *r.config;
  try {
    ReplayStart from{c.start_sequence, c.start_time_ns};
    if (std::optional<JetStreamImportState> st = read_state(r.state_file)) {
      const bool done = committed(c.directory, c.topic, st->log_sequence);
      from = {done ? st->stream_sequence + 1 : st->stream_sequence, 0};
    }
    r.replay = js_->replay(c.stream, c.subject, from, [this, &r](const ReplayedMessage& m) { on_message(r, m); });
    spdlog::info("replaying JetStream stream '{}' ({}) into durable log '{}' of {} from {}", c.stream, c.subject, c.topic,
                 c.directory.string(), from.sequence ? "stream sequence " + std::to_string(from.sequence)
                                       : from.time_ns ? "time " + std::to_string(from.time_ns) + " ns" : std::string("the oldest message"));
    return true;
  } catch (const std::exception& e) {
    log_.warn("jetstream_import/" + c.topic, std::string("JetStream import into '") + c.topic + "': " + e.what());
    return false;
  }
}

void JetStreamImporter::on_message(Rule& r, const ReplayedMessage& m) {
  const JetStreamImportRule& c = *r.config;
  auto refuse = [&](const std::string& why) {
    Rule::Counter& n = r.refused;
    n.fetch_add(1, std::memory_order_relaxed);
    log_.warn("jetstream_import/" + c.topic + "/refused", "JetStream import into '" + c.topic + "': stream message " +
                                                              std::to_string(m.stream_sequence) + " not appended: " + why);
  };
  if (!r.appender) {
    std::optional<std::string_view> type = m.message.header(kHeaderType);
    std::optional<std::uint64_t> type_id = std::uint64_t{0};
    if (type) type_id = parse_u64(*type);
    if (!type_id) return refuse("malformed " + std::string(kHeaderType) + " header");
    try {
      r.appender.emplace(DurableConfig{.directory = c.directory, .topic = c.topic, .segment_size = c.segment_size, .type_id = *type_id});
      r.state_fd = ::open(r.state_file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
      if (r.state_fd < 0) throw std::runtime_error(r.state_file.string() + ": " + std::strerror(errno));
    } catch (const std::exception& e) {
      r.appender.reset();
      return refuse(e.what());
    }
  }
  std::span<const std::byte> payload = m.message.payload();
  Result<DurableLoan> loan = r.appender->loan(payload.size());
  if (!loan) return refuse(r.appender->last_error().empty() ? std::string(errc_name(loan.code())) : r.appender->last_error());
  // Recorded before the commit: a restart finds out whether this record made it.
  JetStreamImportState st{};
  std::memcpy(st.magic, kJetStreamImportStateMagic, sizeof st.magic);
  st.layout_version = kJetStreamImportStateVersion;
  st.stream_sequence = m.stream_sequence;
  st.log_sequence = loan->sequence();
  if (pwrite(r.state_fd, &st, sizeof st, 0) != static_cast<ssize_t>(sizeof st)) {
    return refuse(r.state_file.string() + ": cannot record the import position");  // the loan becomes a tombstone
  }
  std::memcpy(loan->data().data(), payload.data(), payload.size());
  if (!r.appender->publish(*loan)) return refuse(r.appender->last_error());
  r.appended.fetch_add(1, std::memory_order_relaxed);
  r.last_stream_sequence.store(m.stream_sequence, std::memory_order_relaxed);
}

nlohmann::json JetStreamImporter::status() const {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& r : rules_) {
    auto v = [](const Rule::Counter& c) { return c.load(std::memory_order_relaxed); };
    out[r->config->topic] = {{"stream", r->config->stream}, {"replaying", r->replay != nullptr}, {"appended", v(r->appended)},
                             {"refused", v(r->refused)}, {"last_stream_sequence", v(r->last_stream_sequence)}};
  }
  return out;
}

}  // namespace shmbus::bridge
