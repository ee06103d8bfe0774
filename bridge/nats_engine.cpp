#include "nats_engine.hpp"

#include "jetstream_nats.hpp"
#include "nats_incoming.hpp"

#include <nats/nats.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>

#include <spdlog/spdlog.h>

namespace shmbus::bridge {
namespace {

void check(natsStatus s, const std::string& what) {
  if (s != NATS_OK) throw std::runtime_error("NATS: " + what + ": " + natsStatus_GetText(s));
}

// What the client's connection callbacks write. The client calls them on a thread of its own,
// in order, the closed callback last; so this outlives the engine until that one has run (a
// disconnected callback once wrote into a destroyed engine: ASan caught it).
struct ConnectionEvents {
  // Relaxed: each is a hint for the next publish (which the client checks again itself) or a
  // plain counter for the status; nothing else is published through them.
  std::atomic<std::uint64_t> disconnects{0}, reconnects{0}, async_errors{0};
  std::atomic<bool> connected{false};
  std::atomic<std::size_t> max_payload{0};
  std::mutex mutex;
  std::condition_variable closed_cv;
  bool closed = false;  // under mutex

  void now_connected(natsConnection* nc) {
    std::int64_t m = natsConnection_GetMaxPayload(nc);
    max_payload.store(m > 0 ? static_cast<std::size_t>(m) : 0, std::memory_order_relaxed);
    connected.store(true, std::memory_order_relaxed);
  }
  static void on_disconnected(natsConnection*, void* self) {
    auto* e = static_cast<ConnectionEvents*>(self);
    e->connected.store(false, std::memory_order_relaxed);
    e->disconnects.fetch_add(1, std::memory_order_relaxed);
  }
  static void on_reconnected(natsConnection* nc, void* self) {
    auto* e = static_cast<ConnectionEvents*>(self);
    e->now_connected(nc);
    e->reconnects.fetch_add(1, std::memory_order_relaxed);
  }
  static void on_error(natsConnection*, natsSubscription*, natsStatus, void* self) {
    static_cast<ConnectionEvents*>(self)->async_errors.fetch_add(1, std::memory_order_relaxed);
  }
  static void on_closed(natsConnection*, void* self) {
    auto* e = static_cast<ConnectionEvents*>(self);
    std::lock_guard lock(e->mutex);
    e->closed = true;
    e->closed_cv.notify_all();
  }
};

class NatsEngine final : public Engine {
 public:
  NatsEngine(const NatsSettings& s, const std::string& name) {
    check(natsOptions_Create(&opts_), "options");
    std::vector<const char*> urls;
    for (const std::string& u : s.servers) urls.push_back(u.c_str());
    check(natsOptions_SetServers(opts_, urls.data(), static_cast<int>(urls.size())), "servers");
    check(natsOptions_SetName(opts_, name.c_str()), "name");
    if (!s.user.empty()) check(natsOptions_SetUserInfo(opts_, s.user.c_str(), s.password.c_str()), "user");
    if (!s.token.empty()) check(natsOptions_SetToken(opts_, s.token.c_str()), "token");
    if (!s.credentials.empty()) check(natsOptions_SetUserCredentialsFromFiles(opts_, s.credentials.c_str(), nullptr), "credentials '" + s.credentials + "'");
    if (s.tls) check(natsOptions_SetSecure(opts_, true), "tls");
    if (!s.tls_ca.empty()) check(natsOptions_LoadCATrustedCertificates(opts_, s.tls_ca.c_str()), "tls_ca '" + s.tls_ca + "'");
    if (!s.tls_cert.empty()) check(natsOptions_LoadCertificatesChain(opts_, s.tls_cert.c_str(), s.tls_key.c_str()), "tls_cert/tls_key");
    if (s.tls_skip_verify) check(natsOptions_SkipServerVerification(opts_, true), "tls_skip_verify");
    check(natsOptions_SetMaxReconnect(opts_, -1), "max reconnect");
    check(natsOptions_SetReconnectWait(opts_, s.reconnect_wait_ms), "reconnect wait");
    wait_ms_ = std::max(s.reconnect_wait_ms, 10);
    check(natsOptions_SetReconnectBufSize(opts_, s.reconnect_buffer_bytes), "reconnect buffer");
    check(natsOptions_SetTimeout(opts_, s.connect_timeout_ms), "connect timeout");
    check(natsOptions_SetNoEcho(opts_, true), "no echo");
    // Incoming messages are validated and published locally one by one; let a subscription
    // queue up to 64 MiB before NATS counts it a slow consumer.
    check(natsOptions_SetMaxPendingMsgs(opts_, 65536), "max pending");
    ConnectionEvents* ev = events_.get();
    check(natsOptions_SetDisconnectedCB(opts_, &ConnectionEvents::on_disconnected, ev), "callbacks");
    check(natsOptions_SetReconnectedCB(opts_, &ConnectionEvents::on_reconnected, ev), "callbacks");
    check(natsOptions_SetClosedCB(opts_, &ConnectionEvents::on_closed, ev), "callbacks");
    check(natsOptions_SetErrorHandler(opts_, &ConnectionEvents::on_error, ev), "callbacks");
    // Not the client's retry on a failed first connect: in cnats 3.4 a first attempt that
    // reaches the server but fails after the TCP connect (TLS handshake, authentication)
    // leaves the client no current server, so its reconnect thread gives up at once and closes
    // the connection for good (fixed upstream in 3.12, "Reconnecting after _processConnInit
    // error on first connection"). The first connection is ours to retry; after it, the
    // client reconnects by itself.
    natsConnection* nc = nullptr;
    const natsStatus st = natsConnection_Connect(&nc, opts_);
    if (st == NATS_OK) {
      adopt(nc);
    } else {
      first_error_ = describe(st);
      connector_ = std::thread([this] { connect_until_connected(); });
    }
  }

  ~NatsEngine() override {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    stop_cv_.notify_all();
    if (connector_.joinable()) connector_.join();
    natsConnection* nc = connection();
    for (natsSubscription* sub : subs_) natsSubscription_Unsubscribe(sub);
    bool closed = nc == nullptr;
    if (nc) {
      natsConnection_Close(nc);
      std::unique_lock lock(events_->mutex);
      closed = events_->closed_cv.wait_for(lock, std::chrono::seconds(5), [&] { return events_->closed; });
    }
    for (natsSubscription* sub : subs_) natsSubscription_Destroy(sub);
    if (nc) natsConnection_Destroy(nc);
    natsOptions_Destroy(opts_);
    // A client that never said closed may still call back: leave it its target (a few bytes).
    if (!closed) (void)events_.release();
  }

  PublishOutcome publish(const std::string& subject, const Headers& headers,
                         std::span<const std::span<const std::byte>> segments) override {
    std::size_t total = 0;
    for (auto s : segments) total += s.size();
    // Both from the connection callbacks: no lock of the client's per message.
    const std::size_t max = events_->max_payload.load(std::memory_order_relaxed);
    if (max != 0 && total > max) return PublishOutcome::too_large;
    const bool was_connected = events_->connected.load(std::memory_order_relaxed);
    natsConnection* nc = connection();
    if (!nc) return PublishOutcome::disconnected;  // never connected yet: no reconnect buffer either
    // One copy before the client's own: the segments joined (the exporter's frame header and
    // the message), unless there is one segment, which the client copies from the sample in place.
    const char* data = segments.size() == 1 ? reinterpret_cast<const char*>(segments[0].data()) : nullptr;
    if (segments.size() > 1) {
      thread_local std::string joined;
      joined.clear();
      for (auto s : segments) joined.append(reinterpret_cast<const char*>(s.data()), s.size());
      data = joined.data();
    }
    natsStatus st;
    if (headers.empty()) {
      // No natsMsg: it would allocate and copy the payload once more.
      st = natsConnection_Publish(nc, subject.c_str(), data, static_cast<int>(total));
    } else {
      natsMsg* msg = nullptr;
      if (natsMsg_Create(&msg, subject.c_str(), nullptr, data, static_cast<int>(total)) != NATS_OK) return PublishOutcome::failed;
      for (const auto& [k, v] : headers) natsMsgHeader_Set(msg, k.c_str(), v.c_str());
      st = natsConnection_PublishMsg(nc, msg);
      natsMsg_Destroy(msg);
    }
    if (st == NATS_OK) return was_connected ? PublishOutcome::sent : PublishOutcome::buffered;
    if (st == NATS_MAX_PAYLOAD) return PublishOutcome::too_large;
    if (st == NATS_INSUFFICIENT_BUFFER || st == NATS_CONNECTION_DISCONNECTED || st == NATS_CONNECTION_CLOSED || st == NATS_NOT_YET_CONNECTED) {
      return PublishOutcome::disconnected;
    }
    return PublishOutcome::failed;
  }

  void subscribe(const std::string& pattern, Handler handler) override {
    std::lock_guard lock(mutex_);
    auto* h = handlers_.emplace_back(std::make_unique<Handler>(std::move(handler))).get();
    // Before the first connection the subscription waits for it (connect_until_connected).
    pending_.emplace_back(pattern, h);
    if (natsConnection* nc = connection()) subscribe_pending(nc);
  }

  void serve(const std::string& pattern, Responder responder) override {
    subscribe(pattern, [this, r = std::move(responder)](const IncomingMessage& m) {
      std::optional<std::string> reply = r(m);
      if (reply && !reply_to_.empty()) {
        natsConnection_Publish(connection(), reply_to_.c_str(), reply->data(), static_cast<int>(reply->size()));
      }
    });
  }

  std::optional<std::string> request(const std::string& subject, std::string_view payload, int timeout_ms) override {
    natsConnection* nc = connection();
    if (!nc) return std::nullopt;
    natsMsg* reply = nullptr;
    if (natsConnection_Request(&reply, nc, subject.c_str(), payload.data(), static_cast<int>(payload.size()), timeout_ms) != NATS_OK) {
      return std::nullopt;
    }
    std::string out(natsMsg_GetData(reply), static_cast<std::size_t>(natsMsg_GetDataLength(reply)));
    natsMsg_Destroy(reply);
    return out;
  }

  std::size_t max_payload() override {
    natsConnection* nc = connection();
    std::int64_t m = nc ? natsConnection_GetMaxPayload(nc) : 0;
    return m > 0 ? static_cast<std::size_t>(m) : 0;
  }

  std::unique_ptr<PersistentStreams> open_persistent_streams(const PersistentStreamsOptions& options) override {
    if (natsConnection* nc = connection()) return make_nats_persistent_streams(nc, options);
    return make_deferred_persistent_streams([this] { return connection(); }, options);
  }

  PublishOutcome publish_request(const std::string& subject, const std::string& reply_to, const Headers& headers,
                                 std::span<const std::byte> payload) override {
    natsConnection* nc = connection();
    if (!nc) return PublishOutcome::disconnected;
    natsMsg* msg = nullptr;
    if (natsMsg_Create(&msg, subject.c_str(), reply_to.c_str(), reinterpret_cast<const char*>(payload.data()),
                       static_cast<int>(payload.size())) != NATS_OK) {
      return PublishOutcome::failed;
    }
    for (const auto& [k, v] : headers) natsMsgHeader_Set(msg, k.c_str(), v.c_str());
    natsStatus st = natsConnection_PublishMsg(nc, msg);
    natsMsg_Destroy(msg);
    if (st == NATS_OK) return PublishOutcome::sent;
    return st == NATS_MAX_PAYLOAD ? PublishOutcome::too_large : PublishOutcome::disconnected;
  }

  std::string new_inbox() override {
    natsInbox* inbox = nullptr;
    check(natsInbox_Create(&inbox), "inbox");
    std::string out(inbox);
    natsInbox_Destroy(inbox);
    return out;
  }

  void subscribe_requests(const std::string& pattern, RequestHandler handler) override {
    subscribe(pattern, [h = std::move(handler)](const IncomingMessage& m) { h(m, reply_to_); });
  }

  EngineStats stats() override {
    EngineStats s;
    natsConnection* nc = connection();
    s.connected = nc && natsConnection_Status(nc) == NATS_CONN_STATUS_CONNECTED;
    s.disconnects = events_->disconnects.load(std::memory_order_relaxed);  // plain counters, no pairing
    s.reconnects = events_->reconnects.load(std::memory_order_relaxed);
    if (s.connected) {
      char url[512] = {};
      if (natsConnection_GetConnectedUrl(nc, url, sizeof url) == NATS_OK) s.server = url;
    }
    return s;
  }

 private:
  static void deliver(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
    auto* handler = static_cast<Handler*>(closure);
    NatsIncoming in(msg);
    const char* reply = natsMsg_GetReply(msg);
    // The responder (serve) reads the reply subject of the message being handled; one
    // delivery thread per subscription, so a thread-local is enough.
    reply_to_ = reply ? reply : "";
    try {
      (*handler)(in);
    } catch (...) {
      // A handler never lets an exception into the client's thread.
    }
    natsMsg_Destroy(msg);
  }
  // Acquire: pairs with adopt()'s release store, so a connection seen is a connection made.
  natsConnection* connection() const { return nc_.load(std::memory_order_acquire); }

  static std::string describe(natsStatus st) {
    std::string text = natsStatus_GetText(st);
    if (const char* last = nats_GetLastError(nullptr); last && *last && text != last) text += std::string(": ") + last;
    return text;
  }

  // The first connection, made: publish it and subscribe what waited for it. Under mutex_
  // when called by the connector (the constructor runs before anyone else can subscribe).
  void adopt(natsConnection* nc) {
    events_->now_connected(nc);
    nc_.store(nc, std::memory_order_release);
    subscribe_pending(nc);
  }

  // Subscriptions made before the first connection. Under mutex_.
  void subscribe_pending(natsConnection* nc) {
    for (auto& [pattern, h] : pending_) {
      natsSubscription* sub = nullptr;
      check(natsConnection_Subscribe(&sub, nc, pattern.c_str(), &NatsEngine::deliver, h), "subscribe '" + pattern + "'");
      check(natsSubscription_SetPendingLimits(sub, 65536, 256 * 1024 * 1024), "pending limits");
      subs_.push_back(sub);
    }
    pending_.clear();
  }

  // Tries the first connection every reconnect wait until it is made or the engine goes.
  void connect_until_connected() {
    spdlog::warn("NATS: cannot connect yet ({}); trying again every {} ms", first_error_, wait_ms_);
    std::unique_lock lock(mutex_);
    std::string last = first_error_;
    while (!stop_cv_.wait_for(lock, std::chrono::milliseconds(wait_ms_), [&] { return stopping_; })) {
      lock.unlock();
      natsConnection* nc = nullptr;
      const natsStatus st = natsConnection_Connect(&nc, opts_);
      lock.lock();
      if (st == NATS_OK) {
        if (stopping_) {
          natsConnection_Destroy(nc);
          return;
        }
        try {
          adopt(nc);
        } catch (const std::exception& e) {
          spdlog::error("{}", e.what());
        }
        return;
      }
      if (std::string now = describe(st); now != last) {
        spdlog::warn("NATS: cannot connect yet ({})", now);
        last = now;
      }
    }
  }

  static thread_local std::string reply_to_;
  natsOptions* opts_ = nullptr;
  std::atomic<natsConnection*> nc_{nullptr};  // set once, by adopt()
  int wait_ms_ = 200;
  std::string first_error_;
  std::mutex mutex_;  // subscriptions and the first connection
  std::condition_variable stop_cv_;
  bool stopping_ = false;  // under mutex_
  std::thread connector_;
  std::vector<std::pair<std::string, Handler*>> pending_;  // under mutex_
  std::vector<natsSubscription*> subs_;
  std::vector<std::unique_ptr<Handler>> handlers_;
  std::unique_ptr<ConnectionEvents> events_ = std::make_unique<ConnectionEvents>();
};

thread_local std::string NatsEngine::reply_to_;

}  // namespace

std::unique_ptr<Engine> make_nats_engine(const NatsSettings& settings, const std::string& name) {
  return std::make_unique<NatsEngine>(settings, name);
}

}  // namespace shmbus::bridge
