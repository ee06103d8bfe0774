// The bus daemon's client in the C API: connect, open topics through the daemon (which then
// gives back what this process held when it dies), and registered publishers/subscribers
// (capi/publisher.cpp, capi/subscriber.cpp).
#include "handles.hpp"

using namespace shmbus;
using namespace shmbus::capi;

namespace {

shmbus_errc hand_out(Topic topic, shmbus_topic_t** out, const char* where) {
  auto* h = new (std::nothrow) shmbus_topic{Tag::topic, std::move(topic)};
  if (h == nullptr) return fail(where, shmbus_errc_system_error, "out of memory");
  *out = h;
  return shmbus_errc_ok;
}

// The caller's role as the int it is in C (enum_field: a bad value must be refused, not read
// through the C++ enum type).
Role to_cpp(int role) { return role == shmbus_role_publisher ? Role::publisher : Role::subscriber; }
bool valid(int role) { return role == shmbus_role_publisher || role == shmbus_role_subscriber; }

}  // namespace

extern "C" {

void shmbus_client_options_init(shmbus_client_options* o) {
  if (o == nullptr) return;
  const ClientOptions d;
  *o = shmbus_client_options{};
  o->struct_size = sizeof *o;
  o->bus = "default";
  o->timeout_ms = d.timeout.count();
  o->reconnect = d.reconnect ? 1 : 0;
}

shmbus_errc shmbus_client_create(const shmbus_client_options* options, shmbus_client_t** out) {
  static constexpr const char* where = "shmbus_client_create";
  if (out == nullptr) return fail_misuse(where, "the client output pointer is NULL");
  return guarded(where, [&] {
    ClientOptions o;
    if (options != nullptr) {
      if (!SHMBUS_CAPI_HAS(options, shmbus_client_options, bus))
        return fail_misuse(where, "options.struct_size is not set: fill the options with shmbus_client_options_init()");
      if (options->bus != nullptr) o.bus = options->bus;
      if (SHMBUS_CAPI_HAS(options, shmbus_client_options, socket) && options->socket != nullptr)
        o.socket = options->socket;
      if (SHMBUS_CAPI_HAS(options, shmbus_client_options, name) && options->name != nullptr) o.name = options->name;
      if (SHMBUS_CAPI_HAS(options, shmbus_client_options, timeout_ms))
        o.timeout = std::chrono::milliseconds(options->timeout_ms);
      if (SHMBUS_CAPI_HAS(options, shmbus_client_options, reconnect)) o.reconnect = options->reconnect != 0;
    }
    auto* h = new shmbus_client(std::move(o));
    *out = h;
    return shmbus_errc_ok;
  });
}

void shmbus_client_free(shmbus_client_t** client) {
  if (client == nullptr || !alive(*client, Tag::client)) return;
  (*client)->tag = Tag::dead;
  try {
    delete *client;
  } catch (...) {  // ~Client() is noexcept in effect; nothing may cross into C
  }
  *client = nullptr;
}

shmbus_errc shmbus_client_open_topic(shmbus_client_t* client, const shmbus_topic_config* config, shmbus_role role,
                                     shmbus_topic_t** out) {
  static constexpr const char* where = "shmbus_client_open_topic";
  if (!alive(client, Tag::client)) return fail_misuse(where, "NULL or invalid client handle");
  if (out == nullptr) return fail_misuse(where, "the topic output pointer is NULL");
  const int r = enum_field(role);
  if (!valid(r)) return fail_misuse(where, "role is not a shmbus_role_*");
  return guarded(where, [&] {
    TopicConfig t;
    if (shmbus_errc e = capi::to_cpp(config, t, where); e != shmbus_errc_ok) return e;
    return hand_out(client->client.open_topic(t, ::to_cpp(r)), out, where);
  });
}

shmbus_errc shmbus_client_open_existing_topic(shmbus_client_t* client, const char* name, shmbus_role role,
                                              shmbus_topic_t** out) {
  static constexpr const char* where = "shmbus_client_open_existing_topic";
  if (!alive(client, Tag::client)) return fail_misuse(where, "NULL or invalid client handle");
  if (out == nullptr) return fail_misuse(where, "the topic output pointer is NULL");
  if (name == nullptr) return fail_misuse(where, "name is NULL");
  const int r = enum_field(role);
  if (!valid(r)) return fail_misuse(where, "role is not a shmbus_role_*");
  return guarded(where, [&] { return hand_out(client->client.open_existing_topic(name, ::to_cpp(r)), out, where); });
}

}  // extern "C"
