#include "jetstream_nats.hpp"
#include "nats_incoming.hpp"

#include <nats/nats.h>

#include <condition_variable>
#include <mutex>
#include <stdexcept>

namespace shmbus::bridge {
namespace {

std::string reason(natsStatus s, jsErrCode code) {
  std::string r = natsStatus_GetText(s);
  const char* last = nats_GetLastError(nullptr);
  if (last != nullptr && *last != '\0') r += std::string(" (") + last + ")";
  if (code != 0) r += " [JetStream error " + std::to_string(static_cast<int>(code)) + "]";
  return r;
}

// An ordered consumer; its destructor returns once the last delivery has returned.
class NatsReplay final : public Replay {
 public:
  NatsReplay(jsCtx* js, const std::string& stream, const std::string& subject, ReplayStart start,
             PersistentStreams::ReplayHandler handler)
      : handler_(std::move(handler)), start_(start) {
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = stream.c_str();
    so.Ordered = true;
    if (start.sequence != 0) {
      so.Config.DeliverPolicy = js_DeliverByStartSequence;
      so.Config.OptStartSeq = start.sequence;
    } else if (start.time_ns != 0) {
      // cnats (3.4, and upstream still) writes the time's fraction without its leading zeros:
      // .020946040 s goes out as .20946040 s, so a start in the first tenth of a second began
      // up to 0.9 s late (the replay-from-a-time test lost its messages 1 run in 10). Ask from
      // the whole second then; deliver() skips what was stored before the start.
      const std::uint64_t fraction = start.time_ns % 1'000'000'000ull;
      so.Config.DeliverPolicy = js_DeliverByStartTime;
      so.Config.OptStartTime = static_cast<int64_t>(fraction < 100'000'000ull ? start.time_ns - fraction : start.time_ns);
    } else {
      so.Config.DeliverPolicy = js_DeliverAll;
    }
    jsErrCode code = static_cast<jsErrCode>(0);
    natsStatus s = js_Subscribe(&sub_, js, subject.c_str(), &NatsReplay::deliver, this, nullptr, &so, &code);
    if (s != NATS_OK) {
      throw std::runtime_error("JetStream: cannot replay stream '" + stream + "' subject '" + subject + "': " + reason(s, code));
    }
    natsSubscription_SetPendingLimits(sub_, 65536, 256 * 1024 * 1024);
    natsSubscription_SetOnCompleteCB(sub_, &NatsReplay::completed, this);
  }
  ~NatsReplay() override {
    if (natsSubscription_Unsubscribe(sub_) == NATS_OK) {
      std::unique_lock lock(mutex_);
      // Bounded: a closed connection completes the subscription itself.
      done_.wait_for(lock, std::chrono::seconds(5), [&] { return completed_; });
    }
    natsSubscription_Destroy(sub_);
  }

 private:
  static void deliver(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
    auto* self = static_cast<NatsReplay*>(closure);
    jsMsgMetaData* meta = nullptr;
    if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
      NatsIncoming m(msg);
      ReplayedMessage r{m, meta->Sequence.Stream, static_cast<std::uint64_t>(meta->Timestamp)};
      if (!self->before_start(r)) {
        try {
          self->handler_(r);
        } catch (...) {
          // Never into the client's thread.
        }
      }
      jsMsgMetaData_Destroy(meta);
    }
    natsMsg_Destroy(msg);
  }
  static void completed(void* closure) {
    auto* self = static_cast<NatsReplay*>(closure);
    std::lock_guard lock(self->mutex_);
    self->completed_ = true;
    self->done_.notify_all();
  }

  // True for a message before the replay's start: the whole second asked for above, or a
  // consumer the client reset before its first delivery (it then starts again from stream
  // sequence 1). Only until the first message delivered: from then on the client resumes
  // after it. On the delivery thread only.
  bool before_start(const ReplayedMessage& r) {
    if (started_) return false;
    if (r.stream_sequence < start_.sequence || r.time_ns < start_.time_ns) return true;
    started_ = true;
    return false;
  }

  PersistentStreams::ReplayHandler handler_;
  const ReplayStart start_;
  bool started_ = false;
  natsSubscription* sub_ = nullptr;
  std::mutex mutex_;
  std::condition_variable done_;
  bool completed_ = false;
};

class NatsPersistentStreams final : public PersistentStreams {
 public:
  NatsPersistentStreams(natsConnection* nc, const PersistentStreamsOptions& o)
      : on_ack_(o.on_ack), ack_timeout_ms_(o.ack_timeout.count()) {
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 5000;
    // The callers bound what they keep in flight themselves; this is only a backstop.
    jo.PublishAsync.MaxPending = 1 << 20;
    if (on_ack_) {
      jo.PublishAsync.AckHandler = &NatsPersistentStreams::acked;
      jo.PublishAsync.AckHandlerClosure = this;
    }
    natsStatus s = natsConnection_JetStream(&js_, nc, &jo);
    if (s != NATS_OK) throw std::runtime_error("JetStream: cannot create a context: " + reason(s, static_cast<jsErrCode>(0)));
  }
  ~NatsPersistentStreams() override {
    // Lets every publish still in flight resolve (each has its ack timeout), so that no ack
    // handler can be called on this object once it is gone.
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = ack_timeout_ms_ + 1000;
    if (on_ack_) js_PublishAsyncComplete(js_, &po);
    {
      std::lock_guard lock(ack_mutex_);
      on_ack_ = nullptr;  // acks still in flight are dropped: their messages are re-sent next run
    }
    jsCtx_Destroy(js_);
  }

  void ensure_stream(const StreamSpec& spec) override {
    jsStreamInfo* si = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    natsStatus s = js_GetStreamInfo(&si, js_, spec.name.c_str(), nullptr, &code);
    if (s == NATS_OK) {
      jsStreamInfo_Destroy(si);
      return;
    }
    if (s != NATS_NOT_FOUND && code != JSStreamNotFoundErr) {
      throw std::runtime_error("JetStream: cannot look up stream '" + spec.name + "': " + reason(s, code));
    }
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    cfg.Name = spec.name.c_str();
    std::vector<const char*> subjects;
    for (const std::string& subject : spec.subjects) subjects.push_back(subject.c_str());
    cfg.Subjects = subjects.data();
    cfg.SubjectsLen = static_cast<int>(subjects.size());
    cfg.Storage = js_FileStorage;
    cfg.Duplicates = std::chrono::duration_cast<std::chrono::nanoseconds>(spec.duplicate_window).count();
    code = static_cast<jsErrCode>(0);
    s = js_AddStream(&si, js_, &cfg, nullptr, &code);
    if (s != NATS_OK) throw std::runtime_error("JetStream: cannot create stream '" + spec.name + "': " + reason(s, code));
    jsStreamInfo_Destroy(si);
  }

  std::optional<std::string> last_header(const std::string& stream, const std::string& subject, const char* key) override {
    natsMsg* msg = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    natsStatus s = js_GetLastMsg(&msg, js_, stream.c_str(), subject.c_str(), nullptr, &code);
    if (s == NATS_NOT_FOUND || code == JSNoMessageFoundErr) return std::nullopt;
    if (s != NATS_OK) {
      throw std::runtime_error("JetStream: cannot read the newest message of '" + subject + "' in stream '" + stream + "': " + reason(s, code));
    }
    const char* v = nullptr;
    std::optional<std::string> out;
    if (natsMsgHeader_Get(msg, key, &v) == NATS_OK && v != nullptr) out = v;
    natsMsg_Destroy(msg);
    return out;
  }

  PublishOutcome publish(const std::string& subject, const Headers& headers, std::span<const std::byte> payload,
                         const std::string& msg_id) override {
    natsMsg* msg = nullptr;
    if (natsMsg_Create(&msg, subject.c_str(), nullptr, reinterpret_cast<const char*>(payload.data()),
                       static_cast<int>(payload.size())) != NATS_OK) {
      return PublishOutcome::failed;
    }
    for (const auto& [k, v] : headers) natsMsgHeader_Set(msg, k.c_str(), v.c_str());
    // The id also travels as a header of our own: the ack handler reads it from the message.
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MsgId = msg_id.c_str();
    po.MaxWait = ack_timeout_ms_;
    natsStatus s = js_PublishMsgAsync(js_, &msg, &po);
    if (msg != nullptr) natsMsg_Destroy(msg);  // not taken over: the publish failed
    if (s == NATS_OK) return PublishOutcome::sent;
    if (s == NATS_MAX_PAYLOAD) return PublishOutcome::too_large;
    if (s == NATS_CONNECTION_CLOSED || s == NATS_CONNECTION_DISCONNECTED || s == NATS_INSUFFICIENT_BUFFER ||
        s == NATS_NOT_YET_CONNECTED) {
      return PublishOutcome::disconnected;
    }
    return PublishOutcome::failed;
  }

  std::unique_ptr<Replay> replay(const std::string& stream, const std::string& subject, ReplayStart start,
                                 ReplayHandler handler) override {
    // ">" is "every subject of the stream"; the server takes a filter only within the stream's
    // subjects, so a stream of one subject pattern is asked for by that pattern.
    std::string filter = subject;
    if (filter == ">") {
      jsStreamInfo* si = nullptr;
      jsErrCode code = static_cast<jsErrCode>(0);
      natsStatus s = js_GetStreamInfo(&si, js_, stream.c_str(), nullptr, &code);
      if (s != NATS_OK) throw std::runtime_error("JetStream: cannot look up stream '" + stream + "': " + reason(s, code));
      if (si->Config != nullptr && si->Config->SubjectsLen == 1) filter = si->Config->Subjects[0];
      jsStreamInfo_Destroy(si);
    }
    return std::make_unique<NatsReplay>(js_, stream, filter, start, std::move(handler));
  }

 private:
  static void acked(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure) {
    auto* self = static_cast<NatsPersistentStreams*>(closure);
    {
      NatsIncoming m(msg);
      PersistentAck ack{m};
      if (pa != nullptr) {
        ack.stored = true;
        ack.duplicate = pa->Duplicate;
        ack.stream_sequence = pa->Sequence;
      } else if (pae != nullptr) {
        ack.error = reason(pae->Err, pae->ErrCode);
        if (pae->ErrText != nullptr) ack.error += std::string(": ") + pae->ErrText;
      }
      std::lock_guard lock(self->ack_mutex_);
      try {
        if (self->on_ack_) self->on_ack_(ack);
      } catch (...) {
        // Never into the client's thread.
      }
    }
    natsMsg_Destroy(msg);
  }

  std::mutex ack_mutex_;  // the handler against the destructor
  AckHandler on_ack_;
  std::int64_t ack_timeout_ms_;
  jsCtx* js_ = nullptr;
};

}  // namespace

std::unique_ptr<PersistentStreams> make_nats_persistent_streams(natsConnection* connection,
                                                                const PersistentStreamsOptions& options) {
  return std::make_unique<NatsPersistentStreams>(connection, options);
}

namespace {

class DeferredPersistentStreams final : public PersistentStreams {
 public:
  DeferredPersistentStreams(std::function<natsConnection*()> connection, const PersistentStreamsOptions& o)
      : connection_(std::move(connection)), options_(o) {}
  void ensure_stream(const StreamSpec& spec) override { real().ensure_stream(spec); }
  std::optional<std::string> last_header(const std::string& stream, const std::string& subject, const char* key) override {
    return real().last_header(stream, subject, key);
  }
  PublishOutcome publish(const std::string& subject, const Headers& headers, std::span<const std::byte> payload,
                         const std::string& msg_id) override {
    PersistentStreams* r = bound();
    return r ? r->publish(subject, headers, payload, msg_id) : PublishOutcome::disconnected;
  }
  std::unique_ptr<Replay> replay(const std::string& stream, const std::string& subject, ReplayStart start,
                                 ReplayHandler handler) override {
    return real().replay(stream, subject, start, std::move(handler));
  }

 private:
  PersistentStreams* bound() {
    std::lock_guard lock(mutex_);
    if (!real_) {
      if (natsConnection* nc = connection_()) real_ = make_nats_persistent_streams(nc, options_);
    }
    return real_.get();
  }
  PersistentStreams& real() {
    PersistentStreams* r = bound();
    if (!r) throw std::runtime_error("JetStream: NATS is not connected yet");
    return *r;
  }
  std::function<natsConnection*()> connection_;
  PersistentStreamsOptions options_;
  std::mutex mutex_;
  std::unique_ptr<PersistentStreams> real_;
};

}  // namespace

std::unique_ptr<PersistentStreams> make_deferred_persistent_streams(std::function<natsConnection*()> connection,
                                                                    const PersistentStreamsOptions& options) {
  return std::make_unique<DeferredPersistentStreams>(std::move(connection), options);
}

}  // namespace shmbus::bridge
