// shmbus_bench: shmbus and its non-iceoryx peers under the harness in common.hpp.
//
//   shmbus_bench MODE TRANSPORT [options]      (see --help of parse_args)
//
// Transports:
//   floor         two processes ping-ponging an atomic word in shared memory (lat, probe)
//   floor_memcpy  the same, the sender copying the payload into shared memory first (lat)
//   floor_line    the same, the payload in a cache line of its own that the word names (lat)
//   futex         a raw FUTEX_WAIT/FUTEX_WAKE between processes (lat --wait block, wake, fanout)
//   ring          a raw single-producer single-consumer ring in shared memory (tput)
//   shmbus        RawPublisher::loan/publish + RawSubscriber::take / take_wait
//   c             the same through the C API (include/shmbus/shmbus.h; loops in c_peer.c) (lat, tput)
//   service       ServiceClient::send/receive + ServiceServer::take/respond: one call per round trip (lat),
//                 or 16 calls in flight, counted at the server (tput)
//   uds           AF_UNIX SOCK_STREAM socketpair, blocking or MSG_DONTWAIT busy-poll
//   boostmq       boost::interprocess::message_queue, receive() or try_receive() busy-poll
#include <linux/futex.h>
#include <sys/socket.h>

#include <climits>
#include <optional>
#include <stdexcept>

#include "common.hpp"
#include "prefetch.hpp"  // bus/: the library's own write prefetch, for the floor+line peer
#include "shmbus/shmbus.hpp"

#ifdef SHMBUS_BENCH_HAVE_BOOST
#include <boost/interprocess/ipc/message_queue.hpp>
#endif
#ifdef SHMBUS_BENCH_HAVE_C_API
#include "c_peer.h"
#endif

using namespace bench;

namespace {

// ------------------------------------------------------------------ floor and futex

struct alignas(64) Word {
  std::atomic<std::uint64_t> v{0};
  char pad[56];
};
struct alignas(64) Word32 {
  std::atomic<std::uint32_t> v{0};
  std::uint32_t pad0;
  std::atomic<std::uint64_t> stamp{0};
  char pad[48];
};

long futex(std::atomic<std::uint32_t>* w, int op, std::uint32_t val) {
  return syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(w), op, val, nullptr, nullptr, 0);
}

class FloorPingPong : public PingPong {
 public:
  FloorPingPong(Word* out, Word* in, void* out_buf, std::size_t size)
      : out_(out), in_(in), out_buf_(out_buf), size_(size) {
    if (out_buf_) {
      src_.resize(size_);
      std::memset(src_.data(), 1, size_);
    }
  }
  void send(std::uint64_t seq) override {
    if (out_buf_) {
      put_seq(src_.data(), size_, seq);
      std::memcpy(out_buf_, src_.data(), size_);
    }
    out_->v.store(seq + 1, std::memory_order_release);
  }
  std::uint64_t recv() override {
    std::uint64_t v;
    while ((v = in_->v.load(std::memory_order_acquire)) == last_) _mm_pause();
    last_ = v;
    return v - 1;
  }

 private:
  Word* out_;
  Word* in_;
  void* out_buf_;
  std::size_t size_;
  std::vector<char> src_;
  std::uint64_t last_ = 0;
};

// The floor of any transport that does not put the payload in the cache line it signals
// with, zero-copy ones among them: the sender writes the message into one of 16 payload lines
// (in turn, as a pool hands out chunks), then the word; the receiver reads the word, then the
// line the word names, which it can only ask for once the word has arrived. After sending,
// the sender asks for its next line for writing, as shmbus's publisher does.
class FloorLinePingPong : public PingPong {
 public:
  static constexpr std::uint64_t kLines = 16;
  FloorLinePingPong(Word* out, Word* in, Word* out_lines, Word* in_lines)
      : out_(out), in_(in), out_lines_(out_lines), in_lines_(in_lines) {}
  void send(std::uint64_t seq) override {
    out_lines_[seq % kLines].v.store(seq, std::memory_order_relaxed);  // relaxed: published by the word
    out_->v.store(seq + 1, std::memory_order_release);  // release: publishes the line's store
    shmbus::detail::prefetch_for_write(&out_lines_[(seq + 1) % kLines]);
  }
  std::uint64_t recv() override {
    std::uint64_t v;
    while ((v = in_->v.load(std::memory_order_acquire)) == last_) _mm_pause();
    last_ = v;
    // Relaxed: ordered by the word's acquire above; its address depends on v.
    return in_lines_[(v - 1) % kLines].v.load(std::memory_order_relaxed);
  }

 private:
  Word* out_;
  Word* in_;
  Word* out_lines_;
  Word* in_lines_;
  std::uint64_t last_ = 0;
};

class FutexPingPong : public PingPong {
 public:
  FutexPingPong(Word32* out, Word32* in) : out_(out), in_(in) {}
  void send(std::uint64_t seq) override {
    out_->v.store(static_cast<std::uint32_t>(seq + 1), std::memory_order_release);
    futex(&out_->v, FUTEX_WAKE, 1);
  }
  std::uint64_t recv() override {
    std::uint32_t v;
    while ((v = in_->v.load(std::memory_order_acquire)) == last_) futex(&in_->v, FUTEX_WAIT, last_);
    last_ = v;
    return v == 0 ? kStop : v - 1;
  }

 private:
  Word32* out_;
  Word32* in_;
  std::uint32_t last_ = 0;
};

class FutexSender : public Sender {
 public:
  explicit FutexSender(Word32* w) : w_(w) {}
  void send(std::uint64_t value) override {
    w_->stamp.store(value, std::memory_order_relaxed);
    w_->v.fetch_add(1, std::memory_order_release);
    futex(&w_->v, FUTEX_WAKE, INT_MAX);
  }

 private:
  Word32* w_;
};
class FutexReceiver : public Receiver {
 public:
  explicit FutexReceiver(Word32* w) : w_(w), last_(w->v.load()) {}
  std::uint64_t recv() override {
    std::uint32_t v;
    while ((v = w_->v.load(std::memory_order_acquire)) == last_) futex(&w_->v, FUTEX_WAIT, last_);
    last_ = v;
    return w_->stamp.load(std::memory_order_relaxed);
  }

 private:
  Word32* w_;
  std::uint32_t last_;
};

// ------------------------------------------------------------------ raw SPSC ring

struct RingHdr {
  alignas(64) std::atomic<std::uint64_t> head{0};
  alignas(64) std::atomic<std::uint64_t> tail{0};
  alignas(64) std::uint64_t slots = 0;
  std::uint64_t size = 0;
};
struct Ring {
  RingHdr* h;
  char* data;
  char* slot(std::uint64_t i) const { return data + (i % h->slots) * h->size; }
};
Ring make_ring(std::uint64_t slots, std::uint64_t size) {
  Ring r;
  r.h = shared_new<RingHdr>();
  r.h->slots = slots;
  r.h->size = size;
  r.data = static_cast<char*>(shared_bytes(slots * size));
  return r;
}
class RingProducer : public Producer {
 public:
  explicit RingProducer(Ring r) : r_(r) {}
  void send(std::uint64_t seq) override {
    // The tail is re-read only when the ring looks full (a cached copy otherwise).
    while (head_ - tail_ >= r_.h->slots) {
      tail_ = r_.h->tail.load(std::memory_order_acquire);
      if (head_ - tail_ >= r_.h->slots) _mm_pause();
    }
    fill_bytes(r_.slot(head_), r_.h->size, seq);
    r_.h->head.store(++head_, std::memory_order_release);
  }

 private:
  Ring r_;
  std::uint64_t head_ = 0, tail_ = 0;
};
class RingConsumer : public Consumer {
 public:
  explicit RingConsumer(Ring r) : r_(r) {}
  bool try_recv(std::uint64_t& sum) override {
    // The head is re-read only when the cached copy says empty.
    if (tail_ == head_) {
      head_ = r_.h->head.load(std::memory_order_acquire);
      if (tail_ == head_) return false;
    }
    sum += sum_bytes(r_.slot(tail_), r_.h->size);
    r_.h->tail.store(++tail_, std::memory_order_release);
    return true;
  }

 private:
  Ring r_;
  std::uint64_t head_ = 0, tail_ = 0;
};

// ------------------------------------------------------------------ shmbus

shmbus::WaitMode wait_mode(const std::string& w) {
  if (w == "block") return shmbus::WaitMode::block;
  if (w == "adaptive") return shmbus::WaitMode::adaptive;
  return shmbus::WaitMode::busy_poll;
}

shmbus::SlowSubscriberPolicy policy_or(const Args& a, shmbus::SlowSubscriberPolicy fallback) {
  if (a.policy.empty()) return fallback;
  if (a.policy == "block") return shmbus::SlowSubscriberPolicy::block;
  if (a.policy == "drop_oldest") return shmbus::SlowSubscriberPolicy::drop_oldest;
  throw std::runtime_error("--policy must be drop_oldest or block, not '" + a.policy + "'");
}

shmbus::Topic make_topic(const std::string& name, std::size_t size, std::uint32_t queue, std::uint32_t chunks,
                         shmbus::SlowSubscriberPolicy policy = shmbus::SlowSubscriberPolicy::drop_oldest) {
  shmbus::TopicConfig c;
  c.name = name;
  c.size_classes = {{std::max<std::uint64_t>(size, 64), chunks}};
  c.queue_depth = queue;
  c.policy = policy;
  c.block_timeout = std::chrono::seconds(10);
  return shmbus::Topic::create(c);
}

shmbus::RawSample take_one(shmbus::RawSubscriber& sub, bool busy) {
  if (busy) {
    for (std::uint32_t i = 1;; ++i) {
      auto s = sub.take();
      if (s) return std::move(s.value());
      if (s.code() != shmbus::Errc::no_data) throw std::runtime_error(std::string("take: ") + s.name());
      _mm_pause();
      if ((i & 0xfffff) == 0 && !sub.wait(std::chrono::seconds(10)).ok()) throw std::runtime_error("take: nothing for 10 s");
    }
  }
  auto s = sub.take_wait(std::chrono::seconds(10));
  if (!s) throw std::runtime_error(std::string("take_wait: ") + s.name());
  return std::move(s.value());
}

void publish_seq(shmbus::RawPublisher& pub, std::size_t size, std::uint64_t seq, bool fill) {
  auto loan = pub.loan(size);
  if (!loan) throw std::runtime_error(std::string("loan: ") + loan.name());
  if (fill) fill_bytes(loan->data().data(), size, seq);
  else put_seq(loan->data().data(), size, seq);
  if (auto st = pub.publish(std::move(loan.value())); !st.ok()) throw std::runtime_error(std::string("publish: ") + st.name());
}

class ShmbusPingPong : public PingPong {
 public:
  ShmbusPingPong(const shmbus::Topic& out, const shmbus::Topic& in, const Args& a)
      : pub_(out), sub_(in, opts(a)), size_(a.size), busy_(a.wait == "busy") {}
  static shmbus::SubscriberOptions opts(const Args& a) {
    shmbus::SubscriberOptions o;
    o.wait_mode = wait_mode(a.wait);
    o.with_history = false;
    return o;
  }
  void send(std::uint64_t seq) override {
    publish_seq(pub_, size_, seq, false);
    request_ = {};  // released once the reply is out (PingPong)
  }
  std::uint64_t recv() override {
    request_ = take_one(sub_, busy_);
    return get_seq(request_.data().data(), request_.data().size());
  }

 private:
  shmbus::RawPublisher pub_;
  shmbus::RawSubscriber sub_;
  shmbus::RawSample request_;
  std::size_t size_;
  bool busy_;
};

// Request/response (include/shmbus/service.hpp): the pinger is a ServiceClient whose every
// send is a call, the ponger a ServiceServer answering each with one response. Compare with
// `lat shmbus`, the same exchange as two pub/sub hops.
class ServicePingPong : public PingPong {
 public:
  ServicePingPong(const shmbus::Service& svc, int role, const Args& a) : size_(a.size), busy_(a.wait == "busy") {
    if (role == 0) client_.emplace(svc, ShmbusPingPong::opts(a));
    else server_.emplace(svc, ShmbusPingPong::opts(a));
  }
  void send(std::uint64_t seq) override {
    if (client_) {
      auto loan = client_->loan(size_);
      if (!loan) throw std::runtime_error(std::string("loan: ") + loan.name());
      put_seq(loan->data().data(), size_, seq);
      for (;;) {
        auto c = client_->send(std::move(*loan));
        if (c) {
          // The previous call and its response are released once the next request is out,
          // as `lat shmbus` releases its previous sample after publishing.
          call_ = std::move(*c);
          response_ = {};
          return;
        }
        if (c.code() != shmbus::Errc::server_gone) throw std::runtime_error(std::string("send: ") + c.name());
        loan = client_->loan(size_);  // not yet: the server registers before the start barrier
        if (!loan) throw std::runtime_error(std::string("loan: ") + loan.name());
        put_seq(loan->data().data(), size_, seq);
      }
    }
    auto out = server_->loan(size_);
    if (!out) throw std::runtime_error(std::string("loan: ") + out.name());
    put_seq(out->data().data(), size_, seq);
    if (auto st = server_->respond(request_, std::move(*out)); !st.ok()) throw std::runtime_error(std::string("respond: ") + st.name());
    request_ = {};
  }
  std::uint64_t recv() override {
    if (client_) {
      for (;;) {
        auto r = busy_ ? call_.receive() : call_.receive_wait(std::chrono::seconds(10));
        if (r) {
          response_ = std::move(*r);
          return get_seq(response_.data().data(), response_.data().size());
        }
        if (r.code() != shmbus::Errc::no_data) throw std::runtime_error(std::string("receive: ") + r.name());
        _mm_pause();  // as take_one() spins
      }
    }
    for (;;) {
      auto r = busy_ ? server_->take() : server_->take_wait(std::chrono::seconds(10));
      if (r) {
        request_ = std::move(*r);
        return get_seq(request_.data().data(), request_.data().size());
      }
      if (r.code() != shmbus::Errc::no_data) throw std::runtime_error(std::string("take: ") + r.name());
      _mm_pause();
    }
  }

 private:
  std::optional<shmbus::ServiceClient> client_;
  std::optional<shmbus::ServiceServer> server_;
  shmbus::PendingCall call_;
  shmbus::ServiceResponse response_;
  shmbus::ServiceRequest request_;
  std::size_t size_;
  bool busy_;
};

// Calls in flight (`tput service`): the client keeps kServiceWindow calls outstanding,
// receiving the oldest one's response before it sends anew; the server answers each request
// at once. The harness counts at the server: calls served per second.
constexpr std::uint32_t kServiceWindow = 16;

class ServiceCaller : public Producer {
 public:
  ServiceCaller(const shmbus::Service& svc, std::size_t size) : client_(svc, no_history()), size_(size), calls_(kServiceWindow) {}
  static shmbus::SubscriberOptions no_history() {
    shmbus::SubscriberOptions o;
    o.with_history = false;
    return o;
  }
  void send(std::uint64_t seq) override {
    shmbus::PendingCall& oldest = calls_[seq % calls_.size()];
    while (oldest.valid()) {
      auto r = oldest.receive();
      if (r) oldest = {};
      else if (r.code() == shmbus::Errc::no_data) _mm_pause();
      else throw std::runtime_error(std::string("receive: ") + r.name());
    }
    auto loan = client_.loan(size_);
    if (!loan) throw std::runtime_error(std::string("loan: ") + loan.name());
    put_seq(loan->data().data(), size_, seq);
    auto c = client_.send(std::move(*loan));
    if (!c) throw std::runtime_error(std::string("send: ") + c.name());
    oldest = std::move(*c);
  }

 private:
  shmbus::ServiceClient client_;
  std::size_t size_;
  std::vector<shmbus::PendingCall> calls_;
};

class ServiceAnswerer : public Consumer {
 public:
  ServiceAnswerer(const shmbus::Service& svc, std::size_t size) : server_(svc, ServiceCaller::no_history()), size_(size) {}
  bool try_recv(std::uint64_t& sum) override {
    auto req = server_.take();
    if (!req) {
      if (req.code() == shmbus::Errc::no_data) return false;
      throw std::runtime_error(std::string("take: ") + req.name());
    }
    sum += get_seq(req->data().data(), req->data().size());
    auto out = server_.loan(size_);
    if (!out) throw std::runtime_error(std::string("loan: ") + out.name());
    put_seq(out->data().data(), size_, sum);
    // call_cancelled: the caller dropped its calls in flight when its time was up.
    if (auto st = server_.respond(*req, std::move(*out)); !st.ok() && st.code() != shmbus::Errc::call_cancelled) {
      throw std::runtime_error(std::string("respond: ") + st.name());
    }
    return true;
  }

 private:
  shmbus::ServiceServer server_;
  std::size_t size_;
};

class ShmbusProducer : public Producer {
 public:
  ShmbusProducer(const shmbus::Topic& t, std::size_t size) : pub_(t), size_(size) {}
  void send(std::uint64_t seq) override { publish_seq(pub_, size_, seq, true); }

 private:
  shmbus::RawPublisher pub_;
  std::size_t size_;
};
class ShmbusConsumer : public Consumer {
 public:
  explicit ShmbusConsumer(const shmbus::Topic& t) : sub_(t, ShmbusPingPong::opts(Args{})) {}
  bool try_recv(std::uint64_t& sum) override {
    auto s = sub_.take();
    if (!s) {
      if (s.code() != shmbus::Errc::no_data) throw std::runtime_error(std::string("take: ") + s.name());
      return false;
    }
    sum += sum_bytes(s->data().data(), s->data().size());
    return true;
  }

 private:
  shmbus::RawSubscriber sub_;
};

class ShmbusSender : public Sender {
 public:
  explicit ShmbusSender(const shmbus::Topic& t) : pub_(t) {}
  void send(std::uint64_t v) override { publish_seq(pub_, 64, v, false); }

 private:
  shmbus::RawPublisher pub_;
};
class ShmbusReceiver : public Receiver {
 public:
  ShmbusReceiver(const shmbus::Topic& t, const Args& a) : sub_(t, ShmbusPingPong::opts(a)), busy_(a.wait == "busy") {}
  std::uint64_t recv() override {
    shmbus::RawSample s = take_one(sub_, busy_);
    return get_seq(s.data().data(), s.data().size());
  }
  shmbus::RawSubscriber& sub() { return sub_; }

 private:
  shmbus::RawSubscriber sub_;
  bool busy_;
};

#ifdef SHMBUS_BENCH_HAVE_C_API
// ------------------------------------------------------------------ the C API ("c")
// The shmbus peer's messages through include/shmbus/shmbus.h: the topics are the same regions
// (opened by fd), the per-message calls are C (c_peer.c).

void c_check(shmbus_errc e, const char* what) {
  if (e != shmbus_errc_ok) throw std::runtime_error(std::string(what) + ": " + shmbus_last_error_message());
}

struct CTopic {
  shmbus_topic_t* t = nullptr;
  explicit CTopic(const shmbus::Topic& topic) { c_check(shmbus_topic_open_fd(topic.fd(), &t), "shmbus_topic_open_fd"); }
  ~CTopic() { shmbus_topic_free(&t); }
  CTopic(const CTopic&) = delete;
  CTopic& operator=(const CTopic&) = delete;
};

shmbus_publisher_t* c_publisher(const CTopic& topic) {
  shmbus_publisher_t* p = nullptr;
  c_check(shmbus_publisher_create(topic.t, &p), "shmbus_publisher_create");
  return p;
}

shmbus_subscriber_t* c_subscriber(const CTopic& topic, const Args& a) {
  shmbus_subscriber_options o;
  shmbus_subscriber_options_init(&o);
  o.wait_mode = a.wait == "block" ? shmbus_wait_block : a.wait == "adaptive" ? shmbus_wait_adaptive : shmbus_wait_busy_poll;
  o.with_history = 0;
  shmbus_subscriber_t* s = nullptr;
  c_check(shmbus_subscriber_create(topic.t, &o, &s), "shmbus_subscriber_create");
  return s;
}

class CPingPong : public PingPong {
 public:
  CPingPong(const shmbus::Topic& out, const shmbus::Topic& in, const Args& a)
      : out_(out), in_(in), pub_(c_publisher(out_)), sub_(c_subscriber(in_, a)), size_(a.size), busy_(a.wait == "busy") {}
  ~CPingPong() override {
    if (request_ != nullptr) shmbus_sample_release(&request_);
    shmbus_subscriber_free(&sub_);
    shmbus_publisher_free(&pub_);
  }
  void send(std::uint64_t seq) override {
    c_check(c_peer_publish_seq(pub_, size_, seq, 0), "publish");
    if (request_ != nullptr) shmbus_sample_release(&request_);  // once the reply is out, as ShmbusPingPong
  }
  std::uint64_t recv() override {
    std::uint64_t seq = 0;
    c_check(c_peer_take_one(sub_, busy_, &request_, &seq), "take");
    return seq;
  }

 private:
  CTopic out_, in_;
  shmbus_publisher_t* pub_;
  shmbus_subscriber_t* sub_;
  shmbus_sample_t* request_ = nullptr;
  std::size_t size_;
  int busy_;
};

class CProducer : public Producer {
 public:
  CProducer(const shmbus::Topic& t, std::size_t size) : topic_(t), pub_(c_publisher(topic_)), size_(size) {}
  ~CProducer() override { shmbus_publisher_free(&pub_); }
  void send(std::uint64_t seq) override { c_check(c_peer_publish_seq(pub_, size_, seq, 1), "publish"); }

 private:
  CTopic topic_;
  shmbus_publisher_t* pub_;
  std::size_t size_;
};

class CConsumer : public Consumer {
 public:
  explicit CConsumer(const shmbus::Topic& t) : topic_(t), sub_(c_subscriber(topic_, Args{})) {}
  ~CConsumer() override { shmbus_subscriber_free(&sub_); }
  bool try_recv(std::uint64_t& sum) override {
    shmbus_errc e = c_peer_try_take_sum(sub_, &sum);
    if (e == shmbus_errc_no_data) return false;
    c_check(e, "take");
    return true;
  }

 private:
  CTopic topic_;
  shmbus_subscriber_t* sub_;
};
#endif  // SHMBUS_BENCH_HAVE_C_API

// ------------------------------------------------------------------ Unix domain sockets

void write_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(std::string("write: ") + std::strerror(errno));
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

// Reads one message of `size` bytes into buf, possibly over several calls when nonblocking.
class UdsReader {
 public:
  UdsReader(int fd, std::size_t size, bool busy) : fd_(fd), buf_(size), busy_(busy) {}
  // busy: returns false when no complete message yet (never blocks).
  bool step() {
    while (off_ < buf_.size()) {
      ssize_t r = ::recv(fd_, buf_.data() + off_, buf_.size() - off_, busy_ ? MSG_DONTWAIT : 0);
      if (r < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
        if (errno == EINTR) continue;
        throw std::runtime_error(std::string("recv: ") + std::strerror(errno));
      }
      if (r == 0) throw std::runtime_error("recv: peer closed");
      off_ += static_cast<std::size_t>(r);
    }
    off_ = 0;
    return true;
  }
  void get() {
    while (!step()) _mm_pause();
  }
  const char* data() const { return buf_.data(); }
  std::size_t size() const { return buf_.size(); }

 private:
  int fd_;
  std::vector<char> buf_;
  std::size_t off_ = 0;
  bool busy_;
};

class UdsPingPong : public PingPong {
 public:
  UdsPingPong(int fd, const Args& a) : fd_(fd), out_(a.size, 1), in_(fd, a.size, a.wait == "busy") {}
  void send(std::uint64_t seq) override {
    put_seq(out_.data(), out_.size(), seq);
    write_all(fd_, out_.data(), out_.size());
  }
  std::uint64_t recv() override {
    in_.get();
    return get_seq(in_.data(), in_.size());
  }

 private:
  int fd_;
  std::vector<char> out_;
  UdsReader in_;
};

class UdsProducer : public Producer {
 public:
  UdsProducer(int fd, std::size_t size) : fd_(fd), buf_(size) {}
  void send(std::uint64_t seq) override {
    fill_bytes(buf_.data(), buf_.size(), seq);
    write_all(fd_, buf_.data(), buf_.size());
  }

 private:
  int fd_;
  std::vector<char> buf_;
};
class UdsConsumer : public Consumer {
 public:
  UdsConsumer(int fd, std::size_t size) : in_(fd, size, true) {}
  bool try_recv(std::uint64_t& sum) override {
    if (!in_.step()) return false;
    sum += sum_bytes(in_.data(), in_.size());
    return true;
  }

 private:
  UdsReader in_;
};

class UdsSender : public Sender {
 public:
  explicit UdsSender(std::vector<int> fds) : fds_(std::move(fds)), buf_(64, 0) {}
  void send(std::uint64_t v) override {
    put_seq(buf_.data(), buf_.size(), v);
    for (int fd : fds_) write_all(fd, buf_.data(), buf_.size());
  }

 private:
  std::vector<int> fds_;
  std::vector<char> buf_;
};
class UdsReceiver : public Receiver {
 public:
  UdsReceiver(int fd, bool busy) : in_(fd, 64, busy) {}
  std::uint64_t recv() override {
    in_.get();
    return get_seq(in_.data(), in_.size());
  }

 private:
  UdsReader in_;
};

void socket_pair(int sv[2]) {
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) throw std::runtime_error("socketpair");
  int big = 4 << 20;
  for (int i = 0; i < 2; ++i) {
    setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  }
}

// ------------------------------------------------------------------ Boost.Interprocess

#ifdef SHMBUS_BENCH_HAVE_BOOST
namespace bip = boost::interprocess;

class MqPingPong : public PingPong {
 public:
  MqPingPong(const std::string& out, const std::string& in, const Args& a)
      : out_(bip::open_only, out.c_str()), in_(bip::open_only, in.c_str()), buf_(a.size, 1), rbuf_(a.size),
        busy_(a.wait == "busy") {}
  void send(std::uint64_t seq) override {
    put_seq(buf_.data(), buf_.size(), seq);
    out_.send(buf_.data(), buf_.size(), 0);
  }
  std::uint64_t recv() override {
    std::size_t got = 0;
    unsigned prio = 0;
    if (busy_) {
      while (!in_.try_receive(rbuf_.data(), rbuf_.size(), got, prio)) _mm_pause();
    } else {
      in_.receive(rbuf_.data(), rbuf_.size(), got, prio);
    }
    return get_seq(rbuf_.data(), got);
  }

 private:
  bip::message_queue out_, in_;
  std::vector<char> buf_, rbuf_;
  bool busy_;
};

class MqProducer : public Producer {
 public:
  MqProducer(const std::string& name, std::size_t size) : q_(bip::open_only, name.c_str()), buf_(size) {}
  void send(std::uint64_t seq) override {
    fill_bytes(buf_.data(), buf_.size(), seq);
    q_.send(buf_.data(), buf_.size(), 0);
  }

 private:
  bip::message_queue q_;
  std::vector<char> buf_;
};
class MqConsumer : public Consumer {
 public:
  MqConsumer(const std::string& name, std::size_t size) : q_(bip::open_only, name.c_str()), buf_(size) {}
  bool try_recv(std::uint64_t& sum) override {
    std::size_t got = 0;
    unsigned prio = 0;
    if (!q_.try_receive(buf_.data(), buf_.size(), got, prio)) return false;
    sum += sum_bytes(buf_.data(), got);
    return true;
  }

 private:
  bip::message_queue q_;
  std::vector<char> buf_;
};
class MqSender : public Sender {
 public:
  explicit MqSender(const std::string& name) : q_(bip::open_only, name.c_str()), buf_(64, 0) {}
  void send(std::uint64_t v) override {
    put_seq(buf_.data(), buf_.size(), v);
    q_.send(buf_.data(), buf_.size(), 0);
  }

 private:
  bip::message_queue q_;
  std::vector<char> buf_;
};
class MqReceiver : public Receiver {
 public:
  explicit MqReceiver(const std::string& name) : q_(bip::open_only, name.c_str()), buf_(64) {}
  std::uint64_t recv() override {
    std::size_t got = 0;
    unsigned prio = 0;
    q_.receive(buf_.data(), buf_.size(), got, prio);
    return get_seq(buf_.data(), got);
  }

 private:
  bip::message_queue q_;
  std::vector<char> buf_;
};

struct MqNames {
  std::vector<std::string> names;
  ~MqNames() {
    for (auto& n : names) bip::message_queue::remove(n.c_str());
  }
  std::string make(const std::string& tag, std::size_t msgs, std::size_t size) {
    std::string n = "shmbus_bench_" + std::to_string(getpid()) + "_" + tag;
    bip::message_queue::remove(n.c_str());
    bip::message_queue q(bip::create_only, n.c_str(), msgs, size);
    names.push_back(n);
    return n;
  }
};
#endif

[[noreturn]] void unsupported(const Args& a) {
  head(a).str("error", "unsupported combination").print();
  std::exit(1);
}

int run(const Args& a) {
  const std::string& t = a.transport;
  const std::size_t S = a.size;

  if (a.mode == "lat") {
    if (t == "floor" || t == "floor_memcpy") {
      Word* w = shared_new<Word>(2);
      void* bufs[2] = {nullptr, nullptr};
      if (t == "floor_memcpy") {
        bufs[0] = shared_bytes(S);
        bufs[1] = shared_bytes(S);
      }
      return case_latency(a, [&](int role) -> std::unique_ptr<PingPong> {
        return std::make_unique<FloorPingPong>(&w[role], &w[1 - role], bufs[role], S);
      });
    }
    if (t == "floor_line") {
      Word* w = shared_new<Word>(2);
      Word* lines = shared_new<Word>(2 * FloorLinePingPong::kLines);
      return case_latency(a, [&](int role) -> std::unique_ptr<PingPong> {
        return std::make_unique<FloorLinePingPong>(&w[role], &w[1 - role], lines + role * FloorLinePingPong::kLines,
                                                   lines + (1 - role) * FloorLinePingPong::kLines);
      });
    }
    if (t == "futex") {
      Word32* w = shared_new<Word32>(2);
      return case_latency(a, [&](int role) -> std::unique_ptr<PingPong> {
        return std::make_unique<FutexPingPong>(&w[role], &w[1 - role]);
      });
    }
    if (t == "shmbus") {
      // The ring keeps a reference to each of the last `queue` messages: chunks = queue +
      // loans + held + slack. 16 MiB chunks are fallocated in the memfd, so keep them few; but
      // the same queue at every size, so that sizes differ in nothing else. A publisher
      // re-reads its subscriber's cursor once a lap (block: to respect it; drop-oldest: to
      // know whether it may pin what is overwritten), which with 4 slots cost 10-15 % of the
      // median, 2 slots more (bench/NOTES.md); 8 slots are still short of the default 64.
      const std::uint32_t queue = 8, chunks = S >= (8u << 20) ? 12 : 16;
      const shmbus::SlowSubscriberPolicy policy = policy_or(a, shmbus::SlowSubscriberPolicy::drop_oldest);
      shmbus::Topic topics[2] = {make_topic("ping", S, queue, chunks, policy), make_topic("pong", S, queue, chunks, policy)};
      return case_latency(a, [&](int role) -> std::unique_ptr<PingPong> {
        return std::make_unique<ShmbusPingPong>(topics[role], topics[1 - role], a);
      });
    }
#ifdef SHMBUS_BENCH_HAVE_C_API
    if (t == "c") {  // exactly the shmbus case above, through the C API
      const std::uint32_t queue = 8, chunks = S >= (8u << 20) ? 12 : 16;
      const shmbus::SlowSubscriberPolicy policy = policy_or(a, shmbus::SlowSubscriberPolicy::drop_oldest);
      shmbus::Topic topics[2] = {make_topic("ping", S, queue, chunks, policy), make_topic("pong", S, queue, chunks, policy)};
      return case_latency(a, [&](int role) -> std::unique_ptr<PingPong> {
        return std::make_unique<CPingPong>(topics[role], topics[1 - role], a);
      });
    }
#endif
    if (t == "service") {
      shmbus::ServiceConfig c;
      c.name = "bench-service-" + std::to_string(getpid());
      c.request_classes = {{S, 16}};
      c.response_classes = {{S, 16}};
      c.request_queue_depth = c.response_queue_depth = 8;  // as `lat shmbus`
      c.request_policy = c.response_policy = policy_or(a, shmbus::SlowSubscriberPolicy::drop_oldest);
      c.max_servers = 1;
      c.max_clients = 1;
      c.max_calls_per_client = 4;
      shmbus::Service svc = shmbus::Service::create(c);
      return case_latency(a, [&](int role) -> std::unique_ptr<PingPong> { return std::make_unique<ServicePingPong>(svc, role, a); });
    }
    if (t == "uds") {
      int sv[2];
      socket_pair(sv);
      return case_latency(a, [&](int role) -> std::unique_ptr<PingPong> { return std::make_unique<UdsPingPong>(sv[role], a); });
    }
#ifdef SHMBUS_BENCH_HAVE_BOOST
    if (t == "boostmq") {
      MqNames names;
      std::string q[2] = {names.make("ping", 4, S), names.make("pong", 4, S)};
      return case_latency(a, [&](int role) -> std::unique_ptr<PingPong> {
        return std::make_unique<MqPingPong>(q[role], q[1 - role], a);
      });
    }
#endif
    unsupported(a);
  }

  if (a.mode == "tput") {
    const std::uint32_t queue = S >= (1u << 20) ? 16 : 64;
    if (t == "ring") {
      Ring r = make_ring(queue, S);
      return case_throughput(a, [&] { return std::make_unique<RingProducer>(r); },
                             [&] { return std::make_unique<RingConsumer>(r); });
    }
    if (t == "shmbus") {
      shmbus::Topic topic = make_topic("tput", S, queue, queue + 16, policy_or(a, shmbus::SlowSubscriberPolicy::block));
      return case_throughput(a, [&] { return std::make_unique<ShmbusProducer>(topic, S); },
                             [&] { return std::make_unique<ShmbusConsumer>(topic); });
    }
#ifdef SHMBUS_BENCH_HAVE_C_API
    if (t == "c") {
      shmbus::Topic topic = make_topic("tput", S, queue, queue + 16, policy_or(a, shmbus::SlowSubscriberPolicy::block));
      return case_throughput(a, [&] { return std::make_unique<CProducer>(topic, S); },
                             [&] { return std::make_unique<CConsumer>(topic); });
    }
#endif
    if (t == "service") {
      shmbus::ServiceConfig c;
      c.name = "bench-service-tput-" + std::to_string(getpid());
      c.request_queue_depth = c.response_queue_depth = 64;
      c.request_classes = {{S, 64 + kServiceWindow + 16}};
      c.response_classes = {{S, 64 + kServiceWindow + 16}};
      c.max_servers = 1;
      c.max_clients = 1;
      c.max_calls_per_client = kServiceWindow;
      shmbus::Service svc = shmbus::Service::create(c);
      return case_throughput(a, [&] { return std::make_unique<ServiceCaller>(svc, S); },
                             [&] { return std::make_unique<ServiceAnswerer>(svc, S); });
    }
    if (t == "uds") {
      int sv[2];
      socket_pair(sv);
      return case_throughput(a, [&] { return std::make_unique<UdsProducer>(sv[0], S); },
                             [&] { return std::make_unique<UdsConsumer>(sv[1], S); });
    }
#ifdef SHMBUS_BENCH_HAVE_BOOST
    if (t == "boostmq") {
      MqNames names;
      std::string q = names.make("tput", queue, S);
      return case_throughput(a, [&] { return std::make_unique<MqProducer>(q, S); },
                             [&] { return std::make_unique<MqConsumer>(q, S); });
    }
#endif
    unsupported(a);
  }

  if (a.mode == "wake" || a.mode == "stream" || a.mode == "fanout" || a.mode == "idle") {
    const int subs = a.mode == "fanout" ? a.subs : 1;
    if (t == "futex" || t == "futex_sliced") {
      Word32* w = shared_new<Word32>();
      if (a.mode == "idle") {
        // futex: one FUTEX_WAIT for the whole time; futex_sliced: 100 ms slices, as shmbus does.
        const bool sliced = t == "futex_sliced";
        return case_idle(a, [&](int) { return std::make_unique<FutexReceiver>(w); },
                         [sliced, w](Receiver&, double secs) {
                           std::uint64_t end = mono_ns() + static_cast<std::uint64_t>(secs * 1e9);
                           for (std::uint64_t now; (now = mono_ns()) < end;) {
                             std::uint64_t left = std::min<std::uint64_t>(end - now, sliced ? 100'000'000 : ~0ULL);
                             timespec ts{static_cast<time_t>(left / 1'000'000'000), static_cast<long>(left % 1'000'000'000)};
                             syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&w->v), FUTEX_WAIT, 0, &ts, nullptr, 0);
                           }
                           return false;
                         });
      }
      return case_oneway(a, [&] { return std::make_unique<FutexSender>(w); },
                         [&](int) { return std::make_unique<FutexReceiver>(w); });
    }
    if (t == "shmbus") {
      // A stream's subscriber may be descheduled for milliseconds: a queue deep enough that
      // nothing is dropped (every message is measured).
      const std::uint32_t queue = a.mode == "stream" ? 8192 : 8;
      shmbus::Topic topic = make_topic("oneway", 64, queue, queue + 16 + 2 * static_cast<std::uint32_t>(subs));
      if (a.mode == "idle") {
        return case_idle(a, [&](int) { return std::make_unique<ShmbusReceiver>(topic, a); },
                         [](Receiver& r, double secs) {
                           auto& sub = static_cast<ShmbusReceiver&>(r).sub();
                           return sub.take_wait(std::chrono::nanoseconds(static_cast<long>(secs * 1e9))).ok();
                         });
      }
      return case_oneway(a, [&] { return std::make_unique<ShmbusSender>(topic); },
                         [&](int) { return std::make_unique<ShmbusReceiver>(topic, a); });
    }
    if (t == "uds") {
      std::vector<int> senders, receivers;
      for (int i = 0; i < subs; ++i) {
        int sv[2];
        socket_pair(sv);
        senders.push_back(sv[0]);
        receivers.push_back(sv[1]);
      }
      return case_oneway(a, [&] { return std::make_unique<UdsSender>(senders); },
                         [&](int role) { return std::make_unique<UdsReceiver>(receivers[role - 1], a.wait == "busy"); });
    }
#ifdef SHMBUS_BENCH_HAVE_BOOST
    if (t == "boostmq" && subs == 1) {
      MqNames names;
      std::string q = names.make("oneway", 64, 64);
      return case_oneway(a, [&] { return std::make_unique<MqSender>(q); },
                         [&](int) { return std::make_unique<MqReceiver>(q); });
    }
#endif
    unsupported(a);
  }
  unsupported(a);
}

}  // namespace

int main(int argc, char** argv) {
  Args a = parse_args(argc, argv);
  try {
    return run(a);
  } catch (const std::exception& e) {
    head(a).str("error", e.what()).print();
    return 1;
  }
}
