// Typed services: requests of Cap'n Proto type Req and responses of type Resp, built and read
// in place in shared memory, as typed topics are (shmbus/typed.hpp).
//
//   shmbus::Service svc = shmbus::Service::create(shmbus::typed_service<Resize, Resized>("resize"));
//
//   // server process                                 // client process
//   shmbus::TypedServiceServer<Resize, Resized> s(svc); shmbus::TypedServiceClient<Resize, Resized> c(svc);
//   auto req = s.take_wait(1s);                        auto loan = c.loan();   // check loan.status()
//   Resize::Reader in = req->root();    // in place    loan.init().setWidth(640);  // built in place
//   auto out = s.loan();                               auto call = c.send(loan);
//   out.init().setOk(in.getWidth() > 0);               auto resp = call->receive_wait(100ms);
//   s.respond(*req, out);                              Resized::Reader r = resp->root();  // in place
//
// typed_service<Req, Resp>() records both type ids and schemas (in the service region and its
// two topics' regions), so that `shmbus call NAME '(text)'` builds a request from text and
// decodes the responses with no generated headers, and `shmbus service info` names the types.
//
// On the wire a typed request or response is one Cap'n Proto message in flat-array form (a
// segment table, then the segments: what capnp::messageToFlatArray writes and `shmbus call`
// writes and reads). The library builds it with a single segment directly in the loaned
// payload: loan(bytes) loans `bytes` (default: the pool's smallest class), zeroes them, and a
// message that outgrows them throws kj::Exception naming the size (loan more). Readers accept
// any segment count.
//
// Validation: a taken request or response is validated once (segment table, then a full
// traversal within ReaderOptions limits scaled to the topic's max message size) before its
// root() is handed out; reading stays bounds-checked afterwards (Cap'n Proto throws rather than
// read out of bounds). A malformed request is Errc::malformed_message for the server's take(),
// counted in its request subscriber's `malformed` counter, and its call is answered at once
// with an empty last response, so the client's call ends (its receive says no_data, done() is
// true) instead of waiting for a timeout. A malformed response is Errc::malformed_message for
// the client's receive() and counted in its response subscriber's `malformed` counter.
// An empty last response (end_stream()) ends a stream: receive() says no_data and done().
//
// Threads, failure, cancellation and limits: as for the raw classes (shmbus/service.hpp),
// which raw() gives.
#pragma once

#include <capnp/generated-header-support.h>
#include <capnp/message.h>
#include <capnp/schema.h>

#include <algorithm>
#include <optional>
#include <string>

#include "shmbus/detail/chunk_message.hpp"
#include "shmbus/detail/flat_message.hpp"
#include "shmbus/service.hpp"

namespace shmbus {

template <typename Req, typename Resp>
ServiceConfig typed_service(std::string name) {
  ServiceConfig c;
  c.name = std::move(name);
  c.request_type_id = capnp::typeId<Req>();
  c.response_type_id = capnp::typeId<Resp>();
  c.request_schema = detail::serialize_schema(capnp::Schema::from<Req>());
  c.response_schema = detail::serialize_schema(capnp::Schema::from<Resp>());
  return c;
}

namespace detail {

// A flat-array message read in place: the segment table and the reader over it. Movable (the
// reader points into the table, so a move rebuilds it; the segments stay where they are).
class InPlaceMessage {
 public:
  InPlaceMessage() = default;
  InPlaceMessage(InPlaceMessage&& o) noexcept { *this = std::move(o); }
  InPlaceMessage& operator=(InPlaceMessage&& o) noexcept {
    if (this != &o) {
      reader_.reset();
      table_ = o.table_;
      options_ = o.options_;
      if (o.reader_) reader_.emplace(table_.array(), options_);
      o.reader_.reset();
    }
    return *this;
  }
  // Parses and validates `bytes` in place; false when malformed.
  bool read(std::span<const std::byte> bytes, const capnp::ReaderOptions& options) noexcept {
    reader_.reset();
    if (!read_flat_segments(bytes, table_)) return false;
    options_ = options;
    reader_.emplace(table_.array(), options_);
    if (validate_message(*reader_)) return true;
    reader_.reset();
    return false;
  }
  capnp::MessageReader& reader() const { return *reader_; }
  unsigned segment_count() const noexcept { return table_.count; }

 private:
  SegmentTable table_;
  capnp::ReaderOptions options_;
  mutable std::optional<capnp::SegmentArrayMessageReader> reader_;
};

// A message under construction in a loaned payload (a request's or a response's).
template <typename Loan>
class FlatLoan {
 protected:
  explicit FlatLoan(Result<Loan>&& loan) noexcept
      : status_(loan.code()),
        raw_(loan.ok() ? std::move(*loan) : Loan{}),
        builder_(raw_.valid() ? raw_.data() : std::span<std::byte>{}) {
    if (status_.ok() && !prepare_flat_payload(raw_.data())) status_ = Errc::message_too_large;
  }
  Status status_;
  Loan raw_;
  SpanMessageBuilder builder_;
};

inline void check_service_type(const Service& svc, std::uint64_t recorded, std::uint64_t wanted, const char* what) {
  if (recorded != 0 && recorded != wanted) {
    throw Error(Errc::type_mismatch, "service '" + svc.name() + "' carries " + what + " type id " +
                                         std::to_string(recorded) + ", not " + std::to_string(wanted));
  }
}

template <typename Req, typename Resp>
void check_service_types(const Service& s) {
  check_service_type(s, s.request_type_id(), capnp::typeId<Req>(), "request");
  check_service_type(s, s.response_type_id(), capnp::typeId<Resp>(), "response");
}

inline std::size_t smallest_class(const std::vector<SizeClass>& classes) {
  std::size_t smallest = 0;
  for (const SizeClass& c : classes) {
    if (smallest == 0 || c.chunk_size < smallest) smallest = c.chunk_size;
  }
  return smallest;
}

// A loan size for a flat message of at least `bytes`: whole words, room for the table.
inline std::size_t flat_loan_bytes(std::size_t bytes, std::size_t fallback) noexcept {
  if (bytes == 0) bytes = fallback;
  bytes = std::max<std::size_t>(bytes, kFlatTableBytes + sizeof(capnp::word));
  return bytes / sizeof(capnp::word) * sizeof(capnp::word);
}

}  // namespace detail

// ---- requests, responses and their loans ----

// A request under construction in a loaned chunk. Not movable: returned by value and sent with
// TypedServiceClient::send(loan). Destroying an unsent loan gives its chunk back.
template <typename Req>
class RequestMessage : detail::FlatLoan<RequestLoan> {
 public:
  RequestMessage(const RequestMessage&) = delete;
  RequestMessage& operator=(const RequestMessage&) = delete;
  bool ok() const noexcept { return status_.ok(); }
  explicit operator bool() const noexcept { return ok(); }
  Status status() const noexcept { return status_; }
  // Initialises the root struct (once) and returns its builder, in shared memory.
  typename Req::Builder init() { return builder_.template initRoot<Req>(); }
  typename Req::Builder root() { return builder_.template getRoot<Req>(); }
  capnp::MessageBuilder& builder() noexcept { return builder_; }
  // The loaned payload the message is built in (segment table, then the segment).
  std::span<const std::byte> data() const noexcept { return raw_.valid() ? std::span<const std::byte>(raw_.data()) : std::span<const std::byte>{}; }

 private:
  template <typename, typename>
  friend class TypedServiceClient;
  explicit RequestMessage(Result<RequestLoan>&& loan) noexcept : detail::FlatLoan<RequestLoan>(std::move(loan)) {}
};

// A response under construction in a loaned chunk; as RequestMessage.
template <typename Resp>
class ResponseMessage : detail::FlatLoan<ResponseLoan> {
 public:
  ResponseMessage(const ResponseMessage&) = delete;
  ResponseMessage& operator=(const ResponseMessage&) = delete;
  bool ok() const noexcept { return status_.ok(); }
  explicit operator bool() const noexcept { return ok(); }
  Status status() const noexcept { return status_; }
  typename Resp::Builder init() { return builder_.template initRoot<Resp>(); }
  typename Resp::Builder root() { return builder_.template getRoot<Resp>(); }
  capnp::MessageBuilder& builder() noexcept { return builder_; }
  // The loaned payload the message is built in (segment table, then the segment).
  std::span<const std::byte> data() const noexcept { return raw_.valid() ? std::span<const std::byte>(raw_.data()) : std::span<const std::byte>{}; }

 private:
  template <typename, typename>
  friend class TypedServiceServer;
  explicit ResponseMessage(Result<ResponseLoan>&& loan) noexcept : detail::FlatLoan<ResponseLoan>(std::move(loan)) {}
};

// A request taken by a server, validated and read in place. Keep it until the call is answered.
template <typename Req>
class TypedRequest {
 public:
  TypedRequest() = default;
  typename Req::Reader root() const { return message_.reader().template getRoot<Req>(); }
  capnp::MessageReader& reader() const { return message_.reader(); }
  std::uint32_t client() const noexcept { return raw_.client(); }
  const ServiceRequest& raw() const noexcept { return raw_; }
  unsigned segment_count() const noexcept { return message_.segment_count(); }

 private:
  template <typename, typename>
  friend class TypedServiceServer;
  ServiceRequest raw_;
  detail::InPlaceMessage message_;
};

// One response of a typed call, validated and read in place.
template <typename Resp>
class TypedResponse {
 public:
  TypedResponse() = default;
  typename Resp::Reader root() const { return message_.reader().template getRoot<Resp>(); }
  capnp::MessageReader& reader() const { return message_.reader(); }
  bool last() const noexcept { return raw_.last(); }
  std::uint32_t server() const noexcept { return raw_.server(); }
  const ServiceResponse& raw() const noexcept { return raw_; }
  unsigned segment_count() const noexcept { return message_.segment_count(); }

 private:
  template <typename>
  friend class TypedCall;
  ServiceResponse raw_;
  detail::InPlaceMessage message_;
};

// A typed call in flight (PendingCall): dropping it before the last response cancels the call.
template <typename Resp>
class TypedCall {
 public:
  TypedCall() = default;
  // The next response, or no_data (none yet; or the stream ended with an empty last
  // response: done() then). malformed_message: a response that failed validation (counted;
  // the next receive goes on). server_gone and the rest: as PendingCall::receive().
  Result<TypedResponse<Resp>> receive() noexcept { return typed(raw_.receive()); }
  // Waits up to `timeout`: timeout, or as receive().
  Result<TypedResponse<Resp>> receive_wait(std::chrono::nanoseconds timeout) noexcept {
    return typed(raw_.receive_wait(timeout));
  }
  bool done() const noexcept { return raw_.done(); }
  bool valid() const noexcept { return raw_.valid(); }
  std::optional<std::uint32_t> server() const noexcept { return raw_.server(); }
  PendingCall& raw() noexcept { return raw_; }

 private:
  template <typename, typename>
  friend class TypedServiceClient;
  TypedCall(PendingCall&& raw, const capnp::ReaderOptions& options) noexcept : raw_(std::move(raw)), options_(options) {}
  Result<TypedResponse<Resp>> typed(Result<ServiceResponse>&& r) noexcept {
    if (!r) return r.code();
    if (r->data().empty() && r->last()) return Errc::no_data;  // end_stream(): the stream ended
    TypedResponse<Resp> out;
    out.raw_ = std::move(*r);
    if (!out.message_.read(out.raw_.data(), options_)) {
      detail::count_malformed(out.raw_);
      return Errc::malformed_message;
    }
    return Result<TypedResponse<Resp>>(std::move(out));
  }
  PendingCall raw_;
  capnp::ReaderOptions options_;
};

// ---- the client and the server ----

template <typename Req, typename Resp>
class TypedServiceClient {
 public:
  // Registers a client (ServiceClient). Throws Error(type_mismatch) when the service records
  // other non-zero type ids.
  explicit TypedServiceClient(const Service& service, SubscriberOptions options = {})
      : raw_((detail::check_service_types<Req, Resp>(service), service), options),
        options_(detail::reader_options(service.responses())),
        default_bytes_(detail::smallest_class(service.config().request_classes)) {}

  // Loans `bytes` of payload for a request (default: the request pool's smallest class) and
  // zeroes them. Check status(): as ServiceClient::loan().
  RequestMessage<Req> loan(std::size_t bytes = 0) noexcept {
    return RequestMessage<Req>(raw_.loan(detail::flat_loan_bytes(bytes, default_bytes_)));
  }
  // Sends the request (the bytes its message uses) to any server, or to server `server`.
  // Errors: those of the loan, malformed_message (the message is not one segment of its loan,
  // e.g. its builder threw), and those of ServiceClient::send().
  Result<TypedCall<Resp>> send(RequestMessage<Req>& request, std::uint32_t server = kAnyServer) noexcept {
    if (!request.status_.ok()) return request.status_.code();
    std::size_t used = request.builder_.finish();
    if (used == 0) return Errc::malformed_message;
    Result<PendingCall> call = raw_.send(std::move(request.raw_), used, server);
    request.status_ = Errc::misuse;  // spent
    if (!call) return call.code();
    return TypedCall<Resp>(std::move(*call), options_);
  }
  std::uint32_t id() const noexcept { return raw_.id(); }
  std::uint32_t calls_in_flight() const noexcept { return raw_.calls_in_flight(); }
  ServiceClient& raw() noexcept { return raw_; }

 private:
  ServiceClient raw_;
  capnp::ReaderOptions options_;
  std::size_t default_bytes_;
};

template <typename Req, typename Resp>
class TypedServiceServer {
 public:
  // Registers a server (ServiceServer). Throws Error(type_mismatch) as TypedServiceClient.
  explicit TypedServiceServer(const Service& service, SubscriberOptions options = {})
      : raw_((detail::check_service_types<Req, Resp>(service), service), options),
        options_(detail::reader_options(service.requests())),
        default_bytes_(detail::smallest_class(service.config().response_classes)) {}

  std::uint32_t id() const noexcept { return raw_.id(); }
  // The next request this server claimed, validated. Errors: malformed_message (counted, its
  // call answered with an empty last response; the next take goes on), and those of
  // ServiceServer::take().
  Result<TypedRequest<Req>> take() noexcept { return typed(raw_.take()); }
  Result<TypedRequest<Req>> take_wait(std::chrono::nanoseconds timeout) noexcept {
    return typed(raw_.take_wait(timeout));
  }
  Status wait(std::chrono::nanoseconds timeout) noexcept { return raw_.wait(timeout); }
  int event_fd() { return raw_.event_fd(); }

  // Loans `bytes` of payload for a response (default: the response pool's smallest class).
  ResponseMessage<Resp> loan(std::size_t bytes = 0) noexcept {
    return ResponseMessage<Resp>(raw_.loan(detail::flat_loan_bytes(bytes, default_bytes_)));
  }
  // Sends the response to the caller of `request`; `last` ends the call's stream. Errors: those
  // of the loan, malformed_message (as TypedServiceClient::send), and those of
  // ServiceServer::respond() (call_cancelled: the client dropped the call).
  Status respond(const TypedRequest<Req>& request, ResponseMessage<Resp>& response, bool last = true) noexcept {
    if (!response.status_.ok()) return response.status_;
    std::size_t used = response.builder_.finish();
    if (used == 0) return Errc::malformed_message;
    response.status_ = Errc::misuse;  // spent
    return raw_.respond(request.raw_, std::move(response.raw_), used, last);
  }
  // Ends the stream with an empty last response.
  Status end_stream(const TypedRequest<Req>& request) noexcept { return raw_.end_stream(request.raw_); }
  bool cancelled(const TypedRequest<Req>& request) const noexcept { return raw_.cancelled(request.raw_); }
  ServiceServer& raw() noexcept { return raw_; }

 private:
  Result<TypedRequest<Req>> typed(Result<ServiceRequest>&& r) noexcept {
    if (!r) return r.code();
    TypedRequest<Req> out;
    out.raw_ = std::move(*r);
    if (!out.message_.read(out.raw_.data(), options_)) {
      detail::count_malformed(out.raw_);
      (void)raw_.end_stream(out.raw_);  // its client's call ends now, not at its timeout
      return Errc::malformed_message;
    }
    return Result<TypedRequest<Req>>(std::move(out));
  }
  ServiceServer raw_;
  capnp::ReaderOptions options_;
  std::size_t default_bytes_;
};

}  // namespace shmbus
