// detail::Reopener: how a publisher or subscriber made or registered through a shmbus::Client
// follows its topic to the fresh region the bus daemon serves after revoking the old one
// (docs/usage.md, "Revocation and resumption"). The Client implements it (bus/control/
// client.cpp, "Following revoked topics"); RawPublisher/RawSubscriber (bus/raw.cpp) call it
// only after their core reported region_lost, so the hot path never sees it.
#pragma once

#include <cstdint>
#include <optional>

#include "shmbus/topic.hpp"

namespace shmbus::detail {

class Reopener {
 public:
  virtual ~Reopener() = default;
  // Opens the topic of `lost` again, with its configuration, as publisher or subscriber, and
  // returns the fresh region; nullopt when there is none to be had now: the Client is gone or
  // disconnected, the daemon refused, or it still serves the lost region. Never throws; makes
  // one control request at most.
  virtual std::optional<Topic> reopen(const Topic& lost, bool publisher) noexcept = 0;
  // Registers slot `slot` of `fresh` with the daemon, as Client::register_publisher/
  // register_subscriber do. A failure is not reported: the daemon's sweep still reclaims
  // the slot of a dead process.
  virtual void register_slot(const Topic& fresh, bool publisher, std::uint32_t slot) noexcept = 0;
  // False once the Client is gone: region_lost is final from then on.
  virtual bool alive() const noexcept = 0;
};

}  // namespace shmbus::detail
