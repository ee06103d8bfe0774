// Errors of the shmbus API.
//
// Set-up calls (creating or opening a topic, registering a publisher or subscriber) throw
// shmbus::Error. Hot-path calls (loan, publish, take) are noexcept and return a Result or a
// Status carrying an Errc; formatting a message allocates only on the failure path.
#pragma once

#include <new>
#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

namespace shmbus {

// Every code has a row in docs/usage.md's error table (cli/tests/docs_error_table_test.cpp
// fails naming a code without one).
enum class Errc {
  ok = 0,
  // Data path
  pool_exhausted,        // no free chunk of a size class that fits; see Topic::describe_pool()
  message_too_large,     // larger than the topic's largest chunk or max message size; a typed
                         // message outgrowing them while built throws kj::Exception (one line:
                         // topic, size, largest chunk) and its loan's status() is this code
  too_many_segments,     // a typed message needed more chunks than the topic allows
  too_many_loans,        // this publisher already holds max_loans_per_publisher chunks
  too_many_held,         // this subscriber already holds max_held_per_subscriber samples
  no_data,               // take(): nothing new
  timeout,               // a wait ran out of time
  subscriber_queue_full, // fail-publish policy: a subscriber has not taken the oldest message
  malformed_message,     // a message in shared memory failed validation
  type_mismatch,         // Publisher<T>/Subscriber<T> on a topic recorded with another type
  // Set-up
  invalid_config,
  too_many_publishers,
  too_many_subscribers,
  access_denied,         // the bus daemon's access rules refused (the message names the rule)
  not_a_region,          // foreign file: wrong magic
  unknown_layout_version,
  abi_mismatch,
  region_too_short,      // shorter than its header or than the size the header claims
  region_corrupt,        // header or section table inconsistent
  region_unsealed,       // anonymous region without the seals that prevent truncation
  region_lost,           // backing file truncated, or revoked by the daemon (Topic::region_info().revoked);
                         // the region is unusable
  no_space,              // the filesystem cannot hold the region
  system_error,
  rate_limited,          // the bus daemon refused a control request: too many from this connection
  lease_held,            // opening a region file: a file lease holder (a killed bus daemon) does not let go
  no_such_topic,         // the bus daemon has no such topic (Client::open_existing_topic)
  // Caller misuse. New codes go at the end, after every other: codes keep their values (the
  // C API, include/shmbus/shmbus.h, repeats them number for number).
  misuse,                // the call is not allowed here: a loan of another publisher, a loan
                         // already published, an empty sample, a read-only topic for a
                         // publisher or subscriber, a slot index out of range
  // Request/response services (include/shmbus/service.hpp)
  server_gone,           // the server serving a call (or every server that could) is gone
  call_cancelled,        // the client dropped the call: responding to it is pointless
  too_many_calls,        // this client already has max_calls_per_client calls in flight
  // Durable topics (include/shmbus/durable.hpp)
  lost_history,          // a durable reader's next messages were removed by retention
                         // (DurableReader::lost() counts them; it goes on from the oldest kept)
};
// The newest code: the bindings' tables (capi/errors.cpp, python/src/errors.cpp) are checked
// against it at compile time, so a code appended above must be named here too.
inline constexpr Errc kLastErrc = Errc::lost_history;

const char* errc_name(Errc code) noexcept;
const std::error_category& shmbus_category() noexcept;
inline std::error_code make_error_code(Errc e) noexcept {
  return {static_cast<int>(e), shmbus_category()};
}

// Exception for set-up failures: a code plus a message naming what was wrong.
class Error : public std::runtime_error {
 public:
  Error(Errc code, const std::string& what) : std::runtime_error(what), code_(code) {}
  Errc code() const noexcept { return code_; }

 private:
  Errc code_;
};

// Outcome of a hot-path call that returns nothing else.
class [[nodiscard]] Status {
 public:
  Status() noexcept = default;
  Status(Errc code) noexcept : code_(code) {}  // NOLINT: implicit by design
  bool ok() const noexcept { return code_ == Errc::ok; }
  explicit operator bool() const noexcept { return ok(); }
  Errc code() const noexcept { return code_; }
  const char* name() const noexcept { return errc_name(code_); }

 private:
  Errc code_ = Errc::ok;
};

// A value or an Errc; the hot-path replacement for exceptions (std::expected is C++23).
// A tagged union rather than std::variant: ok() is one flag and a move or destruction is the
// value's own inline one, so a Result passed up through the library's layers (take() ->
// ServiceServer::take() -> the user) costs no dispatch and no out-of-line call per layer.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T&& value) noexcept(std::is_nothrow_move_constructible_v<T>) : has_value_(true) {  // NOLINT: implicit by design
    ::new (static_cast<void*>(&value_)) T(std::move(value));
  }
  Result(const T& value) : has_value_(true) { ::new (static_cast<void*>(&value_)) T(value); }  // NOLINT
  // Result(Errc::ok) holds no value: ok() is false, code() says ok (as it always has).
  Result(Errc code) noexcept : code_(code) {}  // NOLINT: implicit by design
  Result(const Result& o) requires std::is_copy_constructible_v<T> : code_(o.code_), has_value_(o.has_value_) {
    if (has_value_) ::new (static_cast<void*>(&value_)) T(o.value_);
  }
  Result(Result&& o) noexcept(std::is_nothrow_move_constructible_v<T>) : code_(o.code_), has_value_(o.has_value_) {
    if (has_value_) ::new (static_cast<void*>(&value_)) T(std::move(o.value_));
  }
  Result& operator=(const Result& o) requires std::is_copy_constructible_v<T> {
    if (this != &o) {
      reset();
      code_ = o.code_;
      if (o.has_value_) ::new (static_cast<void*>(&value_)) T(o.value_);
      has_value_ = o.has_value_;
    }
    return *this;
  }
  Result& operator=(Result&& o) noexcept(std::is_nothrow_move_constructible_v<T>) {
    if (this != &o) {
      reset();
      code_ = o.code_;
      if (o.has_value_) ::new (static_cast<void*>(&value_)) T(std::move(o.value_));
      has_value_ = o.has_value_;
    }
    return *this;
  }
  ~Result() { reset(); }

  bool ok() const noexcept { return has_value_; }
  explicit operator bool() const noexcept { return ok(); }
  Errc code() const noexcept { return has_value_ ? Errc::ok : code_; }
  const char* name() const noexcept { return errc_name(code()); }
  T& value() & { return checked(); }
  T&& value() && { return std::move(checked()); }
  T* operator->() { return &checked(); }
  T& operator*() & { return checked(); }

 private:
  // As std::get did: reaching for a value that is not there throws.
  T& checked() {
    if (!has_value_) [[unlikely]] throw std::bad_variant_access();
    return value_;
  }
  void reset() noexcept {
    if (has_value_) {
      value_.~T();
      has_value_ = false;
    }
  }
  union {
    T value_;
  };
  Errc code_ = Errc::ok;
  bool has_value_ = false;
};

}  // namespace shmbus

template <>
struct std::is_error_code_enum<shmbus::Errc> : std::true_type {};
