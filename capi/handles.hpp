// The C API's handles and the helpers every capi/*.cpp shares: what each opaque pointer of
// include/shmbus/shmbus.h is, how a bad one is told from a good one, and how errors become an
// shmbus_errc plus this thread's message (capi/errors.cpp).
#pragma once

#include <cstdint>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <utility>

#include "shmbus/client.hpp"
#include "shmbus/raw.hpp"
#include "shmbus/shmbus.h"
#include "shmbus/topic.hpp"

namespace shmbus::capi {

// Each handle starts with a tag naming its type, cleared when it is freed: a NULL pointer, a
// handle of another type or (usually) one already freed is refused as misuse instead of being
// used. Tags are ASCII so that they read well in a debugger.
enum class Tag : std::uint32_t {
  dead = 0,
  client = 0x434c4e54,      // "CLNT"
  topic = 0x544f5043,       // "TOPC"
  publisher = 0x5055424c,   // "PUBL"
  subscriber = 0x53554253,  // "SUBS"
  loan = 0x4c4f414e,        // "LOAN"
  sample = 0x534d504c,      // "SMPL"
};

// ---- errors (capi/errors.cpp) ----

// shmbus::Errc and shmbus_errc have the same values (static_asserts in errors.cpp).
inline shmbus_errc to_c(Errc code) noexcept { return static_cast<shmbus_errc>(code); }

// Records this thread's last error: `where` (the C function, a string literal) and the code;
// the message is formed only when shmbus_last_error_message() asks. Cheap enough for the hot
// path's expected outcomes (no_data, timeout): two thread-local stores.
shmbus_errc fail(const char* where, shmbus_errc code) noexcept;
inline shmbus_errc fail(const char* where, Errc code) noexcept { return fail(where, to_c(code)); }
// The same with a message naming what was wrong (allocates: failure paths off the hot loop).
shmbus_errc fail(const char* where, shmbus_errc code, const char* detail) noexcept;
shmbus_errc fail_misuse(const char* where, const char* what) noexcept;

// Runs a set-up call that may throw; any exception becomes a code and message. Nothing leaves.
template <typename F>
shmbus_errc guarded(const char* where, F&& body) noexcept {
  try {
    return body();
  } catch (const Error& e) {
    return fail(where, to_c(e.code()), e.what());
  } catch (const std::bad_alloc&) {
    return fail(where, shmbus_errc_system_error, "out of memory");
  } catch (const std::exception& e) {
    return fail(where, shmbus_errc_system_error, e.what());
  } catch (...) {
    return fail(where, shmbus_errc_system_error, "unknown exception");
  }
}

// ---- the handles ----

}  // namespace shmbus::capi

struct shmbus_client {
  shmbus::capi::Tag tag = shmbus::capi::Tag::client;
  shmbus::Client client;
  explicit shmbus_client(shmbus::ClientOptions o) : client(std::move(o)) {}
};

struct shmbus_topic {
  shmbus::capi::Tag tag = shmbus::capi::Tag::topic;
  shmbus::Topic topic;
};

struct shmbus_publisher {
  shmbus::capi::Tag tag = shmbus::capi::Tag::publisher;
  shmbus::RawPublisher pub;
};

struct shmbus_subscriber {
  shmbus::capi::Tag tag = shmbus::capi::Tag::subscriber;
  shmbus::RawSubscriber sub;
};

struct shmbus_loan {
  shmbus::capi::Tag tag = shmbus::capi::Tag::loan;
  shmbus::RawLoan loan;
};

struct shmbus_sample {
  shmbus::capi::Tag tag = shmbus::capi::Tag::sample;
  shmbus::RawSample sample;
};

namespace shmbus::capi {

template <typename H>
inline bool alive(const H* h, Tag tag) noexcept {
  return h != nullptr && h->tag == tag;
}

// Loan and sample handles are made and given back once per message: each thread keeps one
// spare of each, so a steady loop (loan, publish; take, release) never calls the allocator.
// capi/handle_cache.cpp.
shmbus_loan* new_loan_handle() noexcept;       // nullptr when out of memory
void recycle(shmbus_loan* h) noexcept;         // its RawLoan must be empty
shmbus_sample* new_sample_handle() noexcept;
void recycle(shmbus_sample* h) noexcept;       // its RawSample must be empty

// shmbus_topic_config -> TopicConfig: an error (recorded) for a config that
// shmbus_topic_config_init() did not prepare or that names no topic. capi/topic.cpp.
shmbus_errc to_cpp(const shmbus_topic_config* c, TopicConfig& out, const char* where) noexcept;
// NULL options: the defaults. capi/subscriber.cpp.
shmbus_errc to_cpp(const shmbus_subscriber_options* c, SubscriberOptions& out, const char* where) noexcept;

// The value a C caller stored in an enum field, read as the int it is in C. Reading it through
// the C++ enum type would be undefined behaviour (and a UBSan error) for a value outside the
// enumerators, which is exactly what a bad caller passes and we must refuse.
template <typename E>
inline int enum_field(const E& field) noexcept {
  static_assert(sizeof(E) == sizeof(int), "C enums are int-sized");
  int v;
  std::memcpy(&v, &field, sizeof v);
  return v;
}

// Whether a struct of the caller's `struct_size` has `field`: older callers have fewer fields.
#define SHMBUS_CAPI_HAS(ptr, type, field) ((ptr)->struct_size >= offsetof(type, field) + sizeof((ptr)->field))

}  // namespace shmbus::capi
