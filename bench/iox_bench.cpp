// shmbus_bench_iox: iceoryx 2.x (Debian's iceoryx packages) under the same harness as
// shmbus_bench. Needs RouDi running (`iox-roudi -c bench/roudi.toml`; the driver starts it).
//
//   shmbus_bench_iox lat iceoryx --wait busy|waitset --size N
//   shmbus_bench_iox lat iceoryx_service --wait busy|waitset --size N
//   shmbus_bench_iox tput iceoryx --size N
//   shmbus_bench_iox wake|stream|fanout iceoryx --wait busy|waitset [--subs N]
//
// Untyped publisher/subscriber: loan(size) -> write -> publish; take() -> read -> release().
// busy: spin on take(); waitset: WaitSet::wait() on SubscriberState::HAS_DATA, then take().
// iceoryx_service: untyped client/server (popo::UntypedClient/UntypedServer), one request and
// one response per round trip; the client matches the response's sequence id to its request,
// as iceoryx users must (compare with `shmbus_bench lat service`).
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <utility>

#include "common.hpp"
#include "iceoryx_hoofs/log/logmanager.hpp"
#include "iceoryx_posh/mepoo/chunk_header.hpp"
#include "iceoryx_posh/popo/rpc_header.hpp"
#include "iceoryx_posh/popo/untyped_client.hpp"
#include "iceoryx_posh/popo/untyped_publisher.hpp"
#include "iceoryx_posh/popo/untyped_server.hpp"
#include "iceoryx_posh/popo/untyped_subscriber.hpp"
#include "iceoryx_posh/popo/wait_set.hpp"
#include "iceoryx_posh/runtime/posh_runtime.hpp"

using namespace bench;

namespace {

std::string g_tag;  // unique per run: the parent's pid

void init_runtime(const std::string& role) {
  iox::log::LogManager::GetLogManager().SetDefaultLogLevel(iox::log::LogLevel::kWarn,
                                                          iox::log::LogLevelOutput::kHideLogLevel);
  std::string name = "shmbus_bench_" + g_tag + "_" + role + "_" + std::to_string(getpid());
  iox::runtime::PoshRuntime::initRuntime(iox::RuntimeName_t(iox::cxx::TruncateToCapacity, name.c_str()));
}

iox::capro::ServiceDescription service(const std::string& event) {
  return {iox::capro::IdString_t(iox::cxx::TruncateToCapacity, "shmbus_bench"),
          iox::capro::IdString_t(iox::cxx::TruncateToCapacity, g_tag.c_str()),
          iox::capro::IdString_t(iox::cxx::TruncateToCapacity, event.c_str())};
}

iox::popo::PublisherOptions pub_options(bool lossless) {
  iox::popo::PublisherOptions o;
  o.historyCapacity = 0;
  if (lossless) o.subscriberTooSlowPolicy = iox::popo::ConsumerTooSlowPolicy::WAIT_FOR_CONSUMER;
  return o;
}
iox::popo::SubscriberOptions sub_options(std::uint64_t queue, bool lossless) {
  iox::popo::SubscriberOptions o;
  o.queueCapacity = queue;
  o.historyRequest = 0;
  if (lossless) o.queueFullPolicy = iox::popo::QueueFullPolicy::BLOCK_PRODUCER;
  return o;
}

void* loan(iox::popo::UntypedPublisher& pub, std::size_t size) {
  for (int tries = 0;; ++tries) {
    auto r = pub.loan(static_cast<std::uint32_t>(size));
    if (!r.has_error()) return r.value();
    if (tries > 1'000'000) throw std::runtime_error("iceoryx loan failed (mempool exhausted or too small for " + std::to_string(size) + " bytes)");
    _mm_pause();
  }
}

// One end of a connection with a subscriber: takes in the requested waiting style.
class IoxIn {
 public:
  IoxIn(const std::string& event, std::uint64_t queue, bool lossless, bool waitset)
      : sub_(service(event), sub_options(queue, lossless)) {
    if (waitset) {
      ws_.emplace();
      if (ws_->attachState(sub_, iox::popo::SubscriberState::HAS_DATA).has_error())
        throw std::runtime_error("WaitSet::attachState failed");
    }
  }
  bool subscribed() const { return sub_.getSubscriptionState() == iox::SubscribeState::SUBSCRIBED; }
  // Returns the payload (release it with release()), waiting as configured.
  const void* take_blocking() {
    for (;;) {
      auto r = sub_.take();
      if (!r.has_error()) return r.value();
      if (ws_) (void)ws_->wait();
      else _mm_pause();
    }
  }
  const void* try_take() {
    auto r = sub_.take();
    return r.has_error() ? nullptr : r.value();
  }
  void release(const void* p) { sub_.release(p); }
  static std::size_t size_of(const void* p) { return iox::mepoo::ChunkHeader::fromUserPayload(p)->userPayloadSize(); }

 private:
  iox::popo::UntypedSubscriber sub_;
  iox::cxx::optional<iox::popo::WaitSet<>> ws_;
};

void wait_connected(const std::function<bool()>& ok) {
  std::uint64_t deadline = mono_ns() + 10'000'000'000ULL;
  while (!ok()) {
    if (mono_ns() > deadline) throw std::runtime_error("iceoryx: publisher/subscriber did not connect within 10 s (RouDi running?)");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

class IoxPingPong : public PingPong {
 public:
  IoxPingPong(int role, const Args& a)
      : pub_(service(role == 0 ? "ping" : "pong"), pub_options(false)),
        in_(role == 0 ? "pong" : "ping", a.size >= (1u << 20) ? 4 : 16, false, a.wait == "waitset"), size_(a.size) {}
  ~IoxPingPong() override {
    if (request_ != nullptr) in_.release(request_);
  }
  void connect() override {
    wait_connected([&] { return in_.subscribed() && pub_.hasSubscribers(); });
  }
  void send(std::uint64_t seq) override {
    void* p = loan(pub_, size_);
    put_seq(p, size_, seq);
    pub_.publish(p);
    if (request_ != nullptr) in_.release(std::exchange(request_, nullptr));  // once the reply is out (PingPong)
  }
  std::uint64_t recv() override {
    request_ = in_.take_blocking();
    return get_seq(request_, IoxIn::size_of(request_));
  }

 private:
  iox::popo::UntypedPublisher pub_;
  IoxIn in_;
  const void* request_ = nullptr;
  std::size_t size_;
};

// Request/response: the pinger is an UntypedClient, the ponger an UntypedServer.
class IoxServicePingPong : public PingPong {
 public:
  IoxServicePingPong(int role, const Args& a) : size_(a.size) {
    if (role == 0) {
      iox::popo::ClientOptions o;
      o.responseQueueCapacity = 16;
      client_.emplace(service("call"), o);
      if (a.wait == "waitset" && ws_.emplace().attachState(*client_, iox::popo::ClientState::HAS_RESPONSE).has_error())
        throw std::runtime_error("WaitSet::attachState(client) failed");
    } else {
      iox::popo::ServerOptions o;
      o.requestQueueCapacity = 16;
      server_.emplace(service("call"), o);
      if (a.wait == "waitset" && ws_.emplace().attachState(*server_, iox::popo::ServerState::HAS_REQUEST).has_error())
        throw std::runtime_error("WaitSet::attachState(server) failed");
    }
  }
  ~IoxServicePingPong() override {
    if (request_ != nullptr) server_->releaseRequest(request_);
    ws_.reset();  // detaches before the client or server goes
  }
  void connect() override {
    if (client_) wait_connected([&] { return client_->getConnectionState() == iox::ConnectionState::CONNECTED; });
    else wait_connected([&] { return server_->hasClients(); });
  }
  void send(std::uint64_t seq) override {
    if (client_) {
      void* p = loan_with([&] { return client_->loan(static_cast<std::uint32_t>(size_), alignof(std::uint64_t)); });
      put_seq(p, size_, seq);
      iox::popo::RequestHeader::fromPayload(p)->setSequenceId(static_cast<std::int64_t>(seq));
      if (client_->send(p).has_error()) throw std::runtime_error("iceoryx client send failed");
      expected_ = static_cast<std::int64_t>(seq);
      return;
    }
    const auto* header = iox::popo::RequestHeader::fromPayload(request_);
    void* p = loan_with([&] { return server_->loan(header, static_cast<std::uint32_t>(size_), alignof(std::uint64_t)); });
    put_seq(p, size_, seq);
    if (server_->send(p).has_error()) throw std::runtime_error("iceoryx server send failed");
    server_->releaseRequest(std::exchange(request_, nullptr));
  }
  std::uint64_t recv() override {
    for (;;) {
      if (client_) {
        auto r = client_->take();
        if (!r.has_error()) {
          const void* p = r.value();
          // The user's correlation: a response to an earlier call is dropped.
          const bool ours = iox::popo::ResponseHeader::fromPayload(p)->getSequenceId() == expected_;
          const std::uint64_t s = get_seq(p, IoxIn::size_of(p));
          client_->releaseResponse(p);
          if (ours) return s;
          continue;
        }
      } else {
        auto r = server_->take();
        if (!r.has_error()) {
          request_ = r.value();
          return get_seq(request_, IoxIn::size_of(request_));
        }
      }
      if (ws_) (void)ws_->wait();
      else _mm_pause();
    }
  }

 private:
  template <typename Loan>
  static void* loan_with(Loan&& loan) {
    for (int tries = 0;; ++tries) {
      auto r = loan();
      if (!r.has_error()) return r.value();
      if (tries > 1'000'000) throw std::runtime_error("iceoryx loan failed (mempool exhausted?)");
      _mm_pause();
    }
  }
  std::size_t size_;
  std::optional<iox::popo::UntypedClient> client_;
  std::optional<iox::popo::UntypedServer> server_;
  std::optional<iox::popo::WaitSet<>> ws_;
  const void* request_ = nullptr;
  std::int64_t expected_ = -1;
};

class IoxProducer : public Producer {
 public:
  explicit IoxProducer(const Args& a) : pub_(service("tput"), pub_options(true)), size_(a.size) {}
  void connect() override {
    wait_connected([&] { return pub_.hasSubscribers(); });
  }
  void send(std::uint64_t seq) override {
    void* p = loan(pub_, size_);
    fill_bytes(p, size_, seq);
    pub_.publish(p);
  }

 private:
  iox::popo::UntypedPublisher pub_;
  std::size_t size_;
};
class IoxConsumer : public Consumer {
 public:
  explicit IoxConsumer(const Args& a) : in_("tput", a.size >= (1u << 20) ? 16 : 64, true, false) {}
  void connect() override {
    wait_connected([&] { return in_.subscribed(); });
  }
  bool try_recv(std::uint64_t& sum) override {
    const void* p = in_.try_take();
    if (!p) return false;
    sum += sum_bytes(p, IoxIn::size_of(p));
    in_.release(p);
    return true;
  }

 private:
  IoxIn in_;
};

class IoxSender : public Sender {
 public:
  explicit IoxSender(int subs) : pub_(service("oneway"), pub_options(false)), subs_(subs) {}
  void connect() override {
    // hasSubscribers() turns true with the first; give the others time to match too.
    wait_connected([&] { return pub_.hasSubscribers(); });
    std::this_thread::sleep_for(std::chrono::milliseconds(200 + 50 * subs_));
  }
  void send(std::uint64_t v) override {
    void* p = loan(pub_, 64);
    put_seq(p, 64, v);
    pub_.publish(p);
  }

 private:
  iox::popo::UntypedPublisher pub_;
  int subs_;
};
class IoxReceiver : public Receiver {
 public:
  explicit IoxReceiver(const Args& a) : in_("oneway", 16, false, a.wait == "waitset") {}
  void connect() override {
    wait_connected([&] { return in_.subscribed(); });
  }
  std::uint64_t recv() override {
    const void* p = in_.take_blocking();
    std::uint64_t s = get_seq(p, IoxIn::size_of(p));
    in_.release(p);
    return s;
  }

 private:
  IoxIn in_;
};

int run(const Args& a) {
  if (a.transport != "iceoryx" && a.transport != "iceoryx_service") {
    head(a).str("error", "shmbus_bench_iox only knows transports 'iceoryx' and 'iceoryx_service'").print();
    return 1;
  }
  g_tag = std::to_string(getpid());
  if (a.transport == "iceoryx_service") {
    if (a.mode != "lat") {
      head(a).str("error", "iceoryx_service measures lat only").print();
      return 1;
    }
    return case_latency(a, [&](int role) -> std::unique_ptr<PingPong> {
      init_runtime(role == 0 ? "client" : "server");
      return std::make_unique<IoxServicePingPong>(role, a);
    });
  }
  if (a.mode == "lat") {
    return case_latency(a, [&](int role) -> std::unique_ptr<PingPong> {
      init_runtime(role == 0 ? "pinger" : "ponger");
      return std::make_unique<IoxPingPong>(role, a);
    });
  }
  if (a.mode == "tput") {
    return case_throughput(
        a,
        [&] {
          init_runtime("producer");
          return std::make_unique<IoxProducer>(a);
        },
        [&] {
          init_runtime("consumer");
          return std::make_unique<IoxConsumer>(a);
        });
  }
  if (a.mode == "wake" || a.mode == "stream" || a.mode == "fanout") {
    return case_oneway(
        a,
        [&] {
          init_runtime("sender");
          return std::make_unique<IoxSender>(a.mode == "fanout" ? a.subs : 1);
        },
        [&](int role) {
          init_runtime("receiver" + std::to_string(role));
          return std::make_unique<IoxReceiver>(a);
        });
  }
  head(a).str("error", "unsupported mode").print();
  return 1;
}

}  // namespace

// The children end with _exit, so iceoryx never removes their runtimes' socket and lock files
// (/tmp/<runtime name>, /tmp/<runtime name>.lock): the parent does, once they are gone. Its own
// runtime (name ending in its pid, the tag) iceoryx removes itself at exit.
static void remove_children_runtime_files() noexcept {
  const std::string prefix = "shmbus_bench_" + g_tag + "_";
  const std::string own = "_" + g_tag;
  auto ends_with = [](const std::string& s, const std::string& end) {  // this file is C++17
    return s.size() >= end.size() && s.compare(s.size() - end.size(), end.size(), end) == 0;
  };
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/tmp", ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (ends_with(name, ".lock")) name.resize(name.size() - 5);
    if (name.rfind(prefix, 0) == 0 && !ends_with(name, own)) std::filesystem::remove(it->path(), ec);
  }
}

int main(int argc, char** argv) {
  Args a = parse_args(argc, argv);
  int rc = 1;
  try {
    rc = run(a);
  } catch (const std::exception& e) {
    head(a).str("error", e.what()).print();
  }
  if (!g_tag.empty()) remove_children_runtime_files();
  return rc;
}
