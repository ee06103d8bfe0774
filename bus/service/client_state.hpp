// detail::ClientState: what a ServiceClient and its PendingCalls share: the client's row, its
// request publisher and response subscriber, and per call index the responses taken for it.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <vector>

#include "service/service_region.hpp"
#include "shmbus/service.hpp"

namespace shmbus::detail {

struct ClientState {
  ClientState(const Service& service, std::shared_ptr<ServiceRegion> region, SubscriberOptions options);
  ~ClientState();

  struct Call {
    std::uint32_t generation = 0;  // 0: index free
    // Server row + 1 of an addressed call (service_layout.hpp rule 2a) and that row's
    // generation (low 16 bits); kAnyServerTarget for a shared call (rule 2b).
    std::uint32_t target = kAnyServerTarget;
    std::uint32_t target_generation = 0;
    bool done = false;             // the last response was received
    bool gone = false;             // server_gone was reported
    // Of the liveness check; {} until the first check is due (send() reads no clock).
    std::chrono::steady_clock::time_point next_check{};
    std::uint32_t empty_polls = 0;                        // receive()s that found nothing
    std::deque<ServiceResponse> responses;  // taken, not yet received
  };

  // PendingCall::receive() of call `index`; `check_clock_now`: judge the server's liveness if
  // due, without waiting for the 64th empty poll (receive_wait, after each wait slice).
  Result<ServiceResponse> receive(std::uint32_t index, bool check_clock_now) noexcept;
  // Takes the responses waiting in the topic, keeps those of our live calls, drops the rest,
  // until the topic is empty (no_data) or an error. Stops early, returning it, at a response
  // to call `wanted` whose queue is empty: the common case of one call at a time skips the
  // queue.
  Result<ServiceResponse> pump(std::uint32_t wanted) noexcept;
  // server_gone when no live server serves or could still take call `index`.
  bool server_gone(std::uint32_t index) const noexcept;
  // Ends call `index` in the call word (servers then see call_cancelled).
  void end_call(std::uint32_t index) noexcept;
  // Gives call `index` back (its PendingCall is gone).
  void release_call(std::uint32_t index) noexcept;
  // Records the calls in flight in our row, for tools.
  void note_calls_in_flight() noexcept;
  // Where send() sends a request for `server` (kAnyServer or a row): the server row + 1 and
  // its generation of an addressed call, or kAnyServerTarget. Nothing when no server could
  // take it.
  struct Target {
    std::uint32_t target = kAnyServerTarget;
    std::uint32_t generation = 0;
  };
  std::optional<Target> choose_target(std::uint32_t server) noexcept;
  // choose_target(kAnyServer)'s answer, valid while the header's server_rows_changed still
  // reads `at` (service_layout.hpp rule 4): a send then reads one word, not every row.
  struct AnyTarget {
    std::optional<Target> target;
    std::uint32_t at = 0;
    bool known = false;
  };

  std::shared_ptr<ServiceRegion> region;
  RawPublisher requests;
  RawSubscriber responses;
  std::uint32_t row = 0;
  AnyTarget any_target;
  std::vector<Call> calls;
  std::vector<std::uint32_t> free_calls;
  std::uint64_t malformed = 0;  // responses without a valid header
  // The ServiceClient and each PendingCall hold one; the last to go deletes the state (and
  // so frees the row). Not atomic: a client and its calls belong to one thread at a time.
  std::uint32_t holders = 1;
};

// Drops one holder's count of `state`; deletes it when that was the last.
inline void drop_holder(ClientState* state) noexcept {
  if (--state->holders == 0) delete state;
}

}  // namespace shmbus::detail
