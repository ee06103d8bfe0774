// shmbus::ServiceClient and PendingCall: sending requests, matching responses to calls,
// noticing dead servers (service_layout.hpp rules 2 and 3).
#include <cstring>

#include "service/client_state.hpp"

namespace shmbus {

using namespace detail;
using Clock = std::chrono::steady_clock;

namespace detail {

ClientState::ClientState(const Service& service, std::shared_ptr<ServiceRegion> r, SubscriberOptions options)
    : region(std::move(r)),
      requests(service.requests()),
      responses(service.responses(), [&] {
        options.with_history = false;  // responses published before we joined are not ours
        return options;
      }()),
      calls(region->calls_per_client()) {
  free_calls.reserve(calls.size());
  for (std::uint32_t i = static_cast<std::uint32_t>(calls.size()); i-- > 0;) free_calls.push_back(i);
  row = region->take_client_row();
}

ClientState::~ClientState() { region->free_client_row(row); }

Result<ServiceResponse> ClientState::pump(std::uint32_t wanted) noexcept {
  for (;;) {
    Result<RawSample> s = responses.take();
    if (!s) return s.code();
    std::span<const std::byte> bytes = s->data();
    ResponseHeader h;
    if (bytes.size() < sizeof h) {
      ++malformed;
      continue;
    }
    std::memcpy(&h, bytes.data(), sizeof h);
    if (h.magic != kResponseMagic) {
      ++malformed;
      continue;
    }
    if (h.client != row || h.call >= calls.size()) continue;  // another client's
    Call& c = calls[h.call];
    if (c.generation != h.generation || c.done) continue;  // a call dropped earlier
    // Built where it stays: every move of a sample costs (ServiceResponse is a RawSample).
    const bool last = (h.flags & kResponseLast) != 0;
    if (h.call == wanted && c.responses.empty()) return ServiceResponse(std::move(*s), last, h.server);
    c.responses.push_back(ServiceResponse(std::move(*s), last, h.server));
  }
}

std::optional<ClientState::Target> ClientState::choose_target(std::uint32_t server) noexcept {
  // Rows only, no /proc read: the send path makes no system call. A row of a dead server
  // passes here; the waiting client's liveness check then says server_gone. The rows' first
  // lines change only when servers come and go, so these loads hit the cache; and for an
  // unaddressed call they are read again only after one did (rule 4).
  auto active = [&](std::uint32_t i, std::uint32_t& generation16) {
    const ServerRow& r = region->server(i);
    // Acquire: pairs with the row's release store of kRowActive (rule 1), for generation.
    if (r.state.load(std::memory_order_acquire) != kRowActive) return false;
    generation16 = r.generation.load(std::memory_order_relaxed) & 0xFFFF;
    return true;
  };
  std::uint32_t generation16 = 0;
  if (server != kAnyServer) {
    if (!active(server, generation16)) return std::nullopt;
    return Target{server + 1, generation16};
  }
  // Acquire: pairs with the release bump after a server row's change (rule 4), so that the
  // rows read below are at least as new as the count.
  const std::uint32_t rows_changed = region->server_rows_changed().load(std::memory_order_acquire);
  if (any_target.known && any_target.at == rows_changed) return any_target.target;
  // One active server: address it (rule 2a), no claim. Several: the first to claim (2b).
  std::uint32_t found = 0, only = 0, only_generation16 = 0;
  for (std::uint32_t i = 0; i < region->max_servers() && found < 2; ++i) {
    if (!active(i, generation16)) continue;
    ++found;
    only = i;
    only_generation16 = generation16;
  }
  any_target.known = true;
  any_target.at = rows_changed;
  if (found == 0) any_target.target = std::nullopt;
  else if (found == 1) any_target.target = Target{only + 1, only_generation16};
  else any_target.target = Target{};
  return any_target.target;
}

bool ClientState::server_gone(std::uint32_t index) const noexcept {
  const Call& c = calls[index];
  if (c.target != kAnyServerTarget) return !region->server_alive(c.target - 1, c.target_generation, true);
  // Acquire: pairs with the winning server's acq_rel claim, so its row's state is read after.
  std::uint64_t w = region->call(row, index).load(std::memory_order_acquire);
  if (generation_of(w) != c.generation) return true;  // a reclaimer ended it: we were judged dead
  std::uint64_t claimant = claimant_of(w);
  if (claimant == kClaimPending) return !region->any_server_for(kAnyServerTarget, true);
  if (claimant == kClaimEnded) return false;
  return !region->server_alive(static_cast<std::uint32_t>(claimant - 1), server_generation_of(w));
}

void ClientState::end_call(std::uint32_t index) noexcept {
  // Release: pairs with the servers' acquire loads in cancelled().
  region->call(row, index).store(call_word(kClaimEnded, 0, calls[index].generation), std::memory_order_release);
}

void ClientState::release_call(std::uint32_t index) noexcept {
  Call& c = calls[index];
  if (!c.done) end_call(index);
  if (!c.responses.empty()) c.responses.clear();
  c.generation = 0;
  free_calls.push_back(index);
  note_calls_in_flight();
}

void ClientState::note_calls_in_flight() noexcept {
  // Relaxed, no read-modify-write: only this row's owner writes it, tools only read it.
  region->client(row).calls_in_flight.store(static_cast<std::uint32_t>(calls.size() - free_calls.size()),
                                            std::memory_order_relaxed);
}

}  // namespace detail

std::span<std::byte> RequestLoan::data() const noexcept { return loan_.data().subspan(sizeof(RequestHeader)); }
std::span<const std::byte> ServiceResponse::data() const noexcept { return sample_.data().subspan(sizeof(ResponseHeader)); }

ServiceClient::ServiceClient(const Service& service, SubscriberOptions options)
    : state_(new ClientState(service, service.region_, options)) {}
ServiceClient::~ServiceClient() {
  if (state_ != nullptr) drop_holder(state_);
}
ServiceClient::ServiceClient(ServiceClient&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
ServiceClient& ServiceClient::operator=(ServiceClient&& other) noexcept {
  if (this != &other) {
    if (state_ != nullptr) drop_holder(state_);
    state_ = std::exchange(other.state_, nullptr);
  }
  return *this;
}

std::uint32_t ServiceClient::id() const noexcept { return state_->row; }

std::uint32_t ServiceClient::calls_in_flight() const noexcept {
  return static_cast<std::uint32_t>(state_->calls.size() - state_->free_calls.size());
}

Result<RequestLoan> ServiceClient::loan(std::size_t size) noexcept {
  Result<RawLoan> l = state_->requests.loan(size + sizeof(RequestHeader));
  if (!l) return l.code();
  RequestLoan out;
  out.loan_ = std::move(*l);
  return out;
}

Result<PendingCall> ServiceClient::send(RequestLoan&& request, std::uint32_t server) noexcept {
  std::size_t used = request.valid() ? request.data().size() : 0;
  return send(std::move(request), used, server);
}

Result<PendingCall> ServiceClient::send(RequestLoan&& request, std::size_t used, std::uint32_t server) noexcept {
  ClientState& st = *state_;
  RawLoan loan = std::move(request.loan_);
  if (!loan.valid() || used > loan.data().size() - sizeof(RequestHeader)) return Errc::misuse;
  if (server != kAnyServer && server >= st.region->max_servers()) return Errc::misuse;
  const std::optional<ClientState::Target> to = st.choose_target(server);
  if (!to) return Errc::server_gone;
  if (st.free_calls.empty()) return Errc::too_many_calls;
  const std::uint32_t index = st.free_calls.back();
  ClientRow& me = st.region->client(st.row);
  // Relaxed, no read-modify-write: only this row's owner writes it; 0 means "no call".
  std::uint32_t gen = me.next_generation.load(std::memory_order_relaxed) + 1;
  if (gen == 0) gen = 1;
  me.next_generation.store(gen, std::memory_order_relaxed);

  ClientState::Call& c = st.calls[index];
  c.generation = gen;
  c.target = to->target;
  c.target_generation = to->generation;
  c.done = false;
  c.gone = false;
  c.next_check = {};
  c.empty_polls = 0;
  if (c.target == kAnyServerTarget) {
    // Release: pairs with the claiming server's acq_rel CAS (rule 2b); the request's publish
    // below orders it before the request too. An addressed call leaves the word alone (2a).
    st.region->call(st.row, index).store(call_word(kClaimPending, 0, gen), std::memory_order_release);
  }

  RequestHeader h{};
  h.magic = kRequestMagic;
  h.client = st.row;
  h.call = index;
  h.generation = gen;
  h.target = c.target;
  h.target_generation = c.target_generation;
  // Relaxed: our own row's generation, written when we took the row.
  h.client_generation = me.generation.load(std::memory_order_relaxed);
  std::memcpy(loan.data().data(), &h, sizeof h);
  if (Status s = st.requests.publish(std::move(loan), used + sizeof h); !s.ok()) {
    st.end_call(index);
    c.generation = 0;
    return s.code();
  }
  st.free_calls.pop_back();
  st.note_calls_in_flight();
  PendingCall call;
  ++st.holders;
  call.state_ = state_;
  call.call_ = index;
  call.generation_ = gen;
  return call;
}

void PendingCall::release() noexcept {
  state_->release_call(call_);
  drop_holder(std::exchange(state_, nullptr));
}

bool PendingCall::done() const noexcept { return state_ && state_->calls[call_].done; }

std::optional<std::uint32_t> PendingCall::server() const noexcept {
  if (!state_) return std::nullopt;
  const ClientState::Call& c = state_->calls[call_];
  if (c.target != kAnyServerTarget) return c.target - 1;  // addressed (rule 2a)
  // Relaxed: informational.
  std::uint64_t w = state_->region->call(state_->row, call_).load(std::memory_order_relaxed);
  std::uint64_t claimant = claimant_of(w);
  if (generation_of(w) != generation_ || claimant == kClaimPending || claimant == kClaimEnded) {
    return std::nullopt;
  }
  return static_cast<std::uint32_t>(claimant - 1);
}

Result<ServiceResponse> PendingCall::receive() noexcept {
  if (!state_) return Errc::misuse;
  return state_->receive(call_, false);
}

Result<ServiceResponse> detail::ClientState::receive(std::uint32_t index, bool check_clock_now) noexcept {
  Call& c = calls[index];
  // The call's response straight from the topic when nothing is queued for it: no
  // ServiceResponse is built before there is one, so an empty busy poll costs little more
  // than the topic's take.
  auto direct = [&]() -> Result<ServiceResponse> {
    if (!c.responses.empty()) {
      Result<ServiceResponse> r = std::move(c.responses.front());
      c.responses.pop_front();
      return r;
    }
    return pump(index);
  };
  if (c.responses.empty()) {
    if (c.done) return Errc::no_data;
    if (c.gone) return Errc::server_gone;
  }
  Result<ServiceResponse> r = direct();
  if (r.code() == Errc::no_data && !c.responses.empty()) r = direct();  // pump queued ours behind others'
  if (r.code() == Errc::no_data) {
    // A busy-polling caller reads the clock only every 64th empty poll (~40 ns a read on a VM).
    if ((++c.empty_polls & 63) != 0 && !check_clock_now) return r;
    const auto now = Clock::now();
    if (c.next_check == Clock::time_point{}) c.next_check = now + kLivenessPeriod;  // the first check
    if (now < c.next_check) return r;
    c.next_check = now + kLivenessPeriod;
    if (!server_gone(index)) return r;
    // What the server published before it died is in the ring already: take it first.
    r = direct();
    if (r.code() == Errc::no_data && !c.responses.empty()) r = direct();
    if (r.code() == Errc::no_data) {
      c.gone = true;
      return Errc::server_gone;
    }
  }
  if (r && r->last()) {
    c.done = true;
    // A shared call's word says "ended" for tools and late servers; an addressed call's
    // server sees no more of it (rule 2a), and the word stays untouched.
    if (c.target == kAnyServerTarget) end_call(index);
  }
  return r;
}

Result<ServiceResponse> PendingCall::receive_wait(std::chrono::nanoseconds timeout) noexcept {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (!state_) return Errc::misuse;
    Result<ServiceResponse> r = state_->receive(call_, true);  // after each wait slice: the liveness check may be due
    if (r.ok() || r.code() != Errc::no_data || done()) return r;
    const auto now = Clock::now();
    if (now >= deadline) return Errc::timeout;
    const auto slice = std::min<std::chrono::nanoseconds>(deadline - now, kLivenessPeriod);
    if (Status s = state_->responses.wait(slice); !s.ok() && s.code() != Errc::timeout) return s.code();
  }
}

}  // namespace shmbus
