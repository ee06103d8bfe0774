#include "shmbus/error.hpp"

namespace shmbus {

const char* errc_name(Errc code) noexcept {
  switch (code) {
    case Errc::ok: return "ok";
    case Errc::pool_exhausted: return "pool exhausted";
    case Errc::message_too_large: return "message too large";
    case Errc::too_many_segments: return "too many segments";
    case Errc::too_many_loans: return "too many loans";
    case Errc::too_many_held: return "too many samples held";
    case Errc::no_data: return "no data";
    case Errc::timeout: return "timeout";
    case Errc::subscriber_queue_full: return "subscriber queue full";
    case Errc::malformed_message: return "malformed message";
    case Errc::type_mismatch: return "type mismatch";
    case Errc::invalid_config: return "invalid config";
    case Errc::too_many_publishers: return "too many publishers";
    case Errc::too_many_subscribers: return "too many subscribers";
    case Errc::access_denied: return "access denied";
    case Errc::not_a_region: return "not a shmbus region";
    case Errc::unknown_layout_version: return "unknown layout version";
    case Errc::abi_mismatch: return "ABI mismatch";
    case Errc::region_too_short: return "region too short";
    case Errc::region_corrupt: return "region corrupt";
    case Errc::region_unsealed: return "region unsealed";
    case Errc::region_lost:
      return "region lost: its file was truncated, or the bus daemon revoked it because another process opened "
             "it for writing or truncated it";
    case Errc::no_space: return "no space";
    case Errc::system_error: return "system error";
    case Errc::rate_limited: return "rate limited";
    case Errc::lease_held: return "file lease not released";
    case Errc::no_such_topic: return "no such topic";
    case Errc::lost_history: return "lost history: retention removed messages not read yet";
    case Errc::misuse: return "call not allowed here";
    case Errc::server_gone: return "server gone";
    case Errc::call_cancelled: return "call cancelled";
    case Errc::too_many_calls: return "too many calls in flight";
  }
  return "unknown error";
}

namespace {
class Category : public std::error_category {
 public:
  const char* name() const noexcept override { return "shmbus"; }
  std::string message(int ev) const override { return errc_name(static_cast<Errc>(ev)); }
};
}  // namespace

const std::error_category& shmbus_category() noexcept {
  static const Category category;
  return category;
}

}  // namespace shmbus
