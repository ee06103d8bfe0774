// shmbus::ServiceServer: claiming requests (service_layout.hpp rule 2) and sending responses.
#include <cstring>

#include "service/service_region.hpp"
#include "shmbus/service.hpp"

namespace shmbus {

using namespace detail;

std::span<const std::byte> ServiceRequest::data() const noexcept { return sample_.data().subspan(sizeof(RequestHeader)); }
std::span<std::byte> ResponseLoan::data() const noexcept { return loan_.data().subspan(sizeof(ResponseHeader)); }

ServiceServer::ServiceServer(const Service& service, SubscriberOptions options)
    : region_(service.region_),
      requests_(service.requests(), [&] {
        options.with_history = false;  // a request published before we served is another server's
        return options;
      }()),
      responses_(service.responses()) {
  // The row last: once it is active, clients may address us and judge us alive.
  row_ = region_->take_server_row();
  generation16_ = region_->server(row_).generation.load(std::memory_order_relaxed) & 0xFFFF;
}

ServiceServer::~ServiceServer() {
  if (region_) region_->free_server_row(row_);
}

ServiceServer::ServiceServer(ServiceServer&&) noexcept = default;

ServiceServer& ServiceServer::operator=(ServiceServer&& other) noexcept {
  if (this == &other) return *this;
  if (region_) region_->free_server_row(row_);
  region_ = std::move(other.region_);
  requests_ = std::move(other.requests_);
  responses_ = std::move(other.responses_);
  row_ = other.row_;
  generation16_ = other.generation16_;
  return *this;
}

Result<ServiceRequest> ServiceServer::take() noexcept {
  for (;;) {
    Result<RawSample> s = requests_.take();
    if (!s) return s.code();
    std::span<const std::byte> bytes = s->data();
    RequestHeader h;
    if (bytes.size() < sizeof h) return Errc::malformed_message;
    std::memcpy(&h, bytes.data(), sizeof h);
    if (h.magic != kRequestMagic || h.client >= region_->max_clients() || h.call >= region_->calls_per_client() ||
        h.generation == 0 || h.target > region_->max_servers()) {
      return Errc::malformed_message;
    }
    const bool addressed = h.target != kAnyServerTarget;
    if (addressed) {
      // Rule 2a: ours alone, no claim; unless addressed to another server or to an earlier
      // owner of our row, or dropped by its client already.
      if (h.target != row_ + 1 || (h.target_generation & 0xFFFF) != generation16_ ||
          addressed_call_ended(h.client, h.call, h.generation, h.client_generation)) {
        continue;
      }
    } else {
      std::uint64_t expected = call_word(kClaimPending, 0, h.generation);
      // Acq_rel: exactly one server's CAS wins the call (rule 2b); the release orders our
      // claim before the responses the client then reads (their publish/take pair orders
      // them too), the acquire pairs with the client's release store of the pending word.
      if (!region_->call(h.client, h.call)
               .compare_exchange_strong(expected, call_word(row_ + 1, generation16_, h.generation),
                                        std::memory_order_acq_rel, std::memory_order_relaxed)) {
        continue;  // claimed by another server, or the client already dropped the call
      }
    }
    ServerRow& me = region_->server(row_);
    // Relaxed, and no read-modify-write: only this row's owner writes the count (tools read
    // it), on the row's second line (rule 1).
    me.claimed.store(me.claimed.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    // Built in place from the sample: no default-constructed request to fill in.
    return ServiceRequest(std::move(*s), h.client, h.call, h.generation, h.client_generation, addressed);
  }
}

Result<ServiceRequest> ServiceServer::take_wait(std::chrono::nanoseconds timeout) noexcept {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    Result<ServiceRequest> r = take();
    if (r.ok() || r.code() != Errc::no_data) return r;
    auto left = deadline - std::chrono::steady_clock::now();
    if (left <= std::chrono::nanoseconds::zero()) return Errc::timeout;
    if (Status st = requests_.wait(left); !st.ok()) return st.code();
  }
}

Status ServiceServer::wait(std::chrono::nanoseconds timeout) noexcept { return requests_.wait(timeout); }

int ServiceServer::event_fd() { return requests_.event_fd(); }

Result<ResponseLoan> ServiceServer::loan(std::size_t size) noexcept {
  Result<RawLoan> l = responses_.loan(size + sizeof(ResponseHeader));
  if (!l) return l.code();
  ResponseLoan out;
  out.loan_ = std::move(*l);
  return out;
}

bool ServiceServer::addressed_call_ended(std::uint32_t client, std::uint32_t call, std::uint32_t generation,
                                         std::uint32_t client_generation) const noexcept {
  // Acquire: pairs with the client's release store of kClaimEnded. Only the client writes
  // the word of an addressed call, and only to drop it: while the call lives this line
  // stays in our cache.
  const std::uint64_t w = region_->call(client, call).load(std::memory_order_acquire);
  // The client ended this call, or used the index for a later one (it reuses an index only
  // after its call ended); generations increase, compared as serial numbers; 0: never used.
  const auto later = static_cast<std::int32_t>(generation_of(w) - generation);
  if (generation_of(w) != 0 && (later > 0 || (later == 0 && claimant_of(w) == kClaimEnded))) return true;
  // A client that died (its row reclaimed, perhaps retaken) never ends its calls itself.
  const ClientRow& c = region_->client(client);
  // Acquire: pairs with the release store of kRowActive (rule 1), for generation.
  return c.state.load(std::memory_order_acquire) != kRowActive ||
         c.generation.load(std::memory_order_relaxed) != client_generation;
}

bool ServiceServer::cancelled(const ServiceRequest& request) const noexcept {
  if (!request.valid() || request.answered_) return true;  // answered_: we sent its last response
  if (request.addressed_) {
    return addressed_call_ended(request.client_, request.call_, request.generation_, request.client_generation_);
  }
  // Acquire: pairs with the client's release store of kClaimEnded (and the reclaimer's).
  std::uint64_t w = region_->call(request.client_, request.call_).load(std::memory_order_acquire);
  return w != call_word(row_ + 1, generation16_, request.generation_);
}

Status ServiceServer::respond(const ServiceRequest& request, ResponseLoan&& response, bool last) noexcept {
  return respond(request, std::move(response), response.data().size(), last);
}

Status ServiceServer::respond(const ServiceRequest& request, ResponseLoan&& response, std::size_t used,
                              bool last) noexcept {
  RawLoan loan = std::move(response.loan_);
  if (!request.valid() || !loan.valid() || used > loan.data().size() - sizeof(ResponseHeader)) return Errc::misuse;
  if (cancelled(request)) return Errc::call_cancelled;  // `loan` goes back to the pool
  ResponseHeader h{};
  h.magic = kResponseMagic;
  h.client = request.client_;
  h.call = request.call_;
  h.generation = request.generation_;
  h.flags = last ? kResponseLast : 0;
  h.server = row_;
  std::memcpy(loan.data().data(), &h, sizeof h);
  Status st = responses_.publish(std::move(loan), used + sizeof h);
  if (st.ok() && last) request.answered_ = true;
  return st;
}

Status ServiceServer::end_stream(const ServiceRequest& request) noexcept {
  Result<ResponseLoan> l = loan(0);
  if (!l) return l.code();
  return respond(request, std::move(*l), 0, true);
}

}  // namespace shmbus
