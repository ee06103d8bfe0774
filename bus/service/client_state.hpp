// detail::ClientState: what a ServiceClient and its PendingCalls share: the client's row, its
// request publisher and response subscriber, and per call index the responses taken for it.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "service/service_region.hpp"
#include "shmbus/service.hpp"

namespace shmbus::detail {

struct ClientState {
  ClientState(const Service& service, std::shared_ptr<ServiceRegion> region, SubscriberOptions options);
  ~ClientState();

  struct Call {
    std::uint32_t generation = 0;  // 0: index free
    std::uint32_t target = kAnyServerTarget;
    bool done = false;             // the last response was received
    bool gone = false;             // server_gone was reported
    std::chrono::steady_clock::time_point next_check{};  // of the liveness check
    std::uint32_t empty_polls = 0;                        // receive()s that found nothing
    std::deque<ServiceResponse> responses;  // taken, not yet received
  };

  // PendingCall::receive() of call `index`; `check_clock_now`: judge the server's liveness if
  // due, without waiting for the 64th empty poll (receive_wait, after each wait slice).
  Result<ServiceResponse> receive(std::uint32_t index, bool check_clock_now) noexcept;
  // Takes every response waiting in the topic, keeps those of our live calls, drops the rest.
  Errc pump() noexcept;
  // server_gone when no live server serves or could still take call `index`.
  bool server_gone(std::uint32_t index) const noexcept;
  // Ends call `index` in the call word (servers then see call_cancelled).
  void end_call(std::uint32_t index) noexcept;
  // Gives call `index` back (its PendingCall is gone).
  void release_call(std::uint32_t index) noexcept;

  std::shared_ptr<ServiceRegion> region;
  RawPublisher requests;
  RawSubscriber responses;
  std::uint32_t row = 0;
  std::vector<Call> calls;
  std::vector<std::uint32_t> free_calls;
  std::uint64_t malformed = 0;  // responses without a valid header
};

}  // namespace shmbus::detail
