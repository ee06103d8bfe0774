// shmbus_errc: shmbus::Errc value for value, and this thread's last error message.
#include <string>

#include "handles.hpp"

namespace shmbus::capi {

// The last code of both enums: new codes are appended to both, and this names the newest.
constexpr shmbus_errc kLastCode = shmbus_errc_lost_history;

namespace {

// Every Errc has its C twin here: a code added to shmbus::Errc without one fails the build
// (-Wswitch made an error), and a twin with another value fails the static_assert below.
#pragma GCC diagnostic push
#pragma GCC diagnostic error "-Wswitch"
constexpr shmbus_errc twin(Errc code) {
  switch (code) {
    case Errc::ok: return shmbus_errc_ok;
    case Errc::pool_exhausted: return shmbus_errc_pool_exhausted;
    case Errc::message_too_large: return shmbus_errc_message_too_large;
    case Errc::too_many_segments: return shmbus_errc_too_many_segments;
    case Errc::too_many_loans: return shmbus_errc_too_many_loans;
    case Errc::too_many_held: return shmbus_errc_too_many_held;
    case Errc::no_data: return shmbus_errc_no_data;
    case Errc::timeout: return shmbus_errc_timeout;
    case Errc::subscriber_queue_full: return shmbus_errc_subscriber_queue_full;
    case Errc::malformed_message: return shmbus_errc_malformed_message;
    case Errc::type_mismatch: return shmbus_errc_type_mismatch;
    case Errc::invalid_config: return shmbus_errc_invalid_config;
    case Errc::too_many_publishers: return shmbus_errc_too_many_publishers;
    case Errc::too_many_subscribers: return shmbus_errc_too_many_subscribers;
    case Errc::access_denied: return shmbus_errc_access_denied;
    case Errc::not_a_region: return shmbus_errc_not_a_region;
    case Errc::unknown_layout_version: return shmbus_errc_unknown_layout_version;
    case Errc::abi_mismatch: return shmbus_errc_abi_mismatch;
    case Errc::region_too_short: return shmbus_errc_region_too_short;
    case Errc::region_corrupt: return shmbus_errc_region_corrupt;
    case Errc::region_unsealed: return shmbus_errc_region_unsealed;
    case Errc::region_lost: return shmbus_errc_region_lost;
    case Errc::no_space: return shmbus_errc_no_space;
    case Errc::system_error: return shmbus_errc_system_error;
    case Errc::rate_limited: return shmbus_errc_rate_limited;
    case Errc::lease_held: return shmbus_errc_lease_held;
    case Errc::no_such_topic: return shmbus_errc_no_such_topic;
    case Errc::misuse: return shmbus_errc_misuse;
    case Errc::server_gone: return shmbus_errc_server_gone;
    case Errc::call_cancelled: return shmbus_errc_call_cancelled;
    case Errc::too_many_calls: return shmbus_errc_too_many_calls;
    case Errc::lost_history: return shmbus_errc_lost_history;
  }
  return shmbus_errc_system_error;
}
#pragma GCC diagnostic pop

constexpr bool twins_have_equal_values() {
  for (int v = 0; v <= static_cast<int>(kLastCode); ++v)
    if (static_cast<int>(twin(static_cast<Errc>(v))) != v) return false;
  return true;
}
static_assert(twins_have_equal_values(), "shmbus_errc must equal shmbus::Errc value for value (to_c casts)");
static_assert(static_cast<int>(kLastCode) == static_cast<int>(kLastErrc),
              "shmbus_errc has a code shmbus::Errc lacks");

// This thread's last failure. The message is formed on demand, from `where` and the code
// unless a call gave a detail. What the hot path writes (no_data, timeout) is plain
// thread_local data, one %fs-relative store each; the strings, whose destructor would put a
// TLS wrapper call on every access, are touched only on the detailed (slow) paths.
thread_local const char* last_where = nullptr;
thread_local shmbus_errc last_code = shmbus_errc_ok;
thread_local bool last_has_detail = false;
struct LastMessage {
  std::string detail;
  std::string message;  // what shmbus_last_error_message() returned last
};
thread_local LastMessage last_message;

}  // namespace

shmbus_errc fail(const char* where, shmbus_errc code) noexcept {
  last_where = where;
  last_code = code;
  last_has_detail = false;
  return code;
}

shmbus_errc fail(const char* where, shmbus_errc code, const char* detail) noexcept {
  fail(where, code);
  try {
    last_message.detail = detail;
    last_has_detail = true;
  } catch (...) {  // out of memory: the code's name will do
  }
  return code;
}

shmbus_errc fail_misuse(const char* where, const char* what) noexcept {
  return fail(where, shmbus_errc_misuse, what);
}

}  // namespace shmbus::capi

extern "C" {

const char* shmbus_errc_name(shmbus_errc code) {
  const int v = shmbus::capi::enum_field(code);  // any int a C caller passes
  if (v < 0 || v > static_cast<int>(shmbus::capi::kLastCode)) return "unknown error";
  return shmbus::errc_name(static_cast<shmbus::Errc>(v));
}

const char* shmbus_last_error_message(void) {
  using namespace shmbus::capi;
  if (last_where == nullptr) return "";
  try {
    LastMessage& m = last_message;
    m.message = last_where;
    m.message += ": ";
    m.message += last_has_detail ? m.detail : std::string(shmbus_errc_name(last_code));
    return m.message.c_str();
  } catch (...) {
    return shmbus_errc_name(last_code);
  }
}

}  // extern "C"
