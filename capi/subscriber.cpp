// Subscribers and samples of the C API: take / take_wait -> read in place -> release.
#include "handles.hpp"

using namespace shmbus;
using namespace shmbus::capi;

namespace shmbus::capi {

shmbus_errc to_cpp(const shmbus_subscriber_options* c, SubscriberOptions& out, const char* where) noexcept {
  out = SubscriberOptions{};
  if (c == nullptr) return shmbus_errc_ok;
  if (!SHMBUS_CAPI_HAS(c, shmbus_subscriber_options, wait_mode))
    return fail_misuse(where, "options.struct_size is not set: fill the options with shmbus_subscriber_options_init()");
  switch (enum_field(c->wait_mode)) {
    case shmbus_wait_busy_poll: out.wait_mode = WaitMode::busy_poll; break;
    case shmbus_wait_block: out.wait_mode = WaitMode::block; break;
    case shmbus_wait_adaptive: out.wait_mode = WaitMode::adaptive; break;
    default: return fail(where, shmbus_errc_invalid_config, "options.wait_mode is not a shmbus_wait_*");
  }
  if (SHMBUS_CAPI_HAS(c, shmbus_subscriber_options, spin_time_ns))
    out.spin_time = std::chrono::nanoseconds(c->spin_time_ns);
  if (SHMBUS_CAPI_HAS(c, shmbus_subscriber_options, with_history)) out.with_history = c->with_history != 0;
  return shmbus_errc_ok;
}

}  // namespace shmbus::capi

namespace {

shmbus_errc hand_out(shmbus_subscriber_t** out, RawSubscriber sub, const char* where) {
  auto* h = new (std::nothrow) shmbus_subscriber{Tag::subscriber, std::move(sub)};
  if (h == nullptr) return fail(where, shmbus_errc_system_error, "out of memory");
  *out = h;
  return shmbus_errc_ok;
}

// The common end of take and take_wait: a handle for the sample, or the error.
shmbus_errc hand_out(Result<RawSample>&& r, shmbus_sample_t** sample, const char* where) noexcept {
  if (!r) return fail(where, r.code());
  shmbus_sample* h = new_sample_handle();
  if (h == nullptr) [[unlikely]]
    return fail(where, shmbus_errc_system_error, "out of memory");  // r's destructor releases it
  // A handle's sample is empty here (new, or recycled after release), and destroying an empty
  // one does nothing: construct over it rather than move-assign (two destructor calls fewer).
  new (&h->sample) RawSample(std::move(r.value()));
  *sample = h;
  return shmbus_errc_ok;
}

}  // namespace

extern "C" {

void shmbus_subscriber_options_init(shmbus_subscriber_options* o) {
  if (o == nullptr) return;
  const SubscriberOptions d;
  *o = shmbus_subscriber_options{};
  o->struct_size = sizeof *o;
  o->wait_mode = shmbus_wait_adaptive;
  o->spin_time_ns = static_cast<int64_t>(d.spin_time.count());
  o->with_history = d.with_history ? 1 : 0;
}

shmbus_errc shmbus_subscriber_create(shmbus_topic_t* topic, const shmbus_subscriber_options* options,
                                     shmbus_subscriber_t** out) {
  static constexpr const char* where = "shmbus_subscriber_create";
  if (!alive(topic, Tag::topic)) return fail_misuse(where, "NULL or invalid topic handle");
  if (out == nullptr) return fail_misuse(where, "the subscriber output pointer is NULL");
  SubscriberOptions o;
  if (shmbus_errc e = to_cpp(options, o, where); e != shmbus_errc_ok) return e;
  return guarded(where, [&] { return hand_out(out, RawSubscriber(topic->topic, o), where); });
}

shmbus_errc shmbus_client_subscriber(shmbus_client_t* client, shmbus_topic_t* topic,
                                     const shmbus_subscriber_options* options, shmbus_subscriber_t** out) {
  static constexpr const char* where = "shmbus_client_subscriber";
  if (!alive(client, Tag::client)) return fail_misuse(where, "NULL or invalid client handle");
  if (!alive(topic, Tag::topic)) return fail_misuse(where, "NULL or invalid topic handle");
  if (out == nullptr) return fail_misuse(where, "the subscriber output pointer is NULL");
  SubscriberOptions o;
  if (shmbus_errc e = to_cpp(options, o, where); e != shmbus_errc_ok) return e;
  return guarded(where, [&] { return hand_out(out, client->client.subscriber(topic->topic, o), where); });
}

void shmbus_subscriber_free(shmbus_subscriber_t** subscriber) {
  if (subscriber == nullptr || !alive(*subscriber, Tag::subscriber)) return;
  (*subscriber)->tag = Tag::dead;
  delete *subscriber;
  *subscriber = nullptr;
}

shmbus_errc shmbus_subscriber_take(shmbus_subscriber_t* subscriber, shmbus_sample_t** sample) {
  static constexpr const char* where = "shmbus_subscriber_take";
  if (!alive(subscriber, Tag::subscriber) || sample == nullptr) [[unlikely]]
    return fail_misuse(where, "NULL or invalid subscriber handle, or NULL sample pointer");
  return hand_out(subscriber->sub.take(), sample, where);
}

shmbus_errc shmbus_subscriber_take_wait(shmbus_subscriber_t* subscriber, int64_t timeout_ns, shmbus_sample_t** sample) {
  static constexpr const char* where = "shmbus_subscriber_take_wait";
  if (!alive(subscriber, Tag::subscriber) || sample == nullptr) [[unlikely]]
    return fail_misuse(where, "NULL or invalid subscriber handle, or NULL sample pointer");
  return hand_out(subscriber->sub.take_wait(std::chrono::nanoseconds(timeout_ns)), sample, where);
}

shmbus_errc shmbus_subscriber_wait(shmbus_subscriber_t* subscriber, int64_t timeout_ns) {
  static constexpr const char* where = "shmbus_subscriber_wait";
  if (!alive(subscriber, Tag::subscriber)) return fail_misuse(where, "NULL or invalid subscriber handle");
  Status st = subscriber->sub.wait(std::chrono::nanoseconds(timeout_ns));
  return st ? shmbus_errc_ok : fail(where, st.code());
}

shmbus_errc shmbus_subscriber_has_data(const shmbus_subscriber_t* subscriber, int* has_data) {
  static constexpr const char* where = "shmbus_subscriber_has_data";
  if (!alive(subscriber, Tag::subscriber)) return fail_misuse(where, "NULL or invalid subscriber handle");
  if (has_data == nullptr) return fail_misuse(where, "the has_data output pointer is NULL");
  *has_data = subscriber->sub.has_data() ? 1 : 0;
  return shmbus_errc_ok;
}

shmbus_errc shmbus_subscriber_event_fd(shmbus_subscriber_t* subscriber, int* fd) {
  static constexpr const char* where = "shmbus_subscriber_event_fd";
  if (!alive(subscriber, Tag::subscriber)) return fail_misuse(where, "NULL or invalid subscriber handle");
  if (fd == nullptr) return fail_misuse(where, "the fd output pointer is NULL");
  return guarded(where, [&] {
    *fd = subscriber->sub.event_fd();
    return shmbus_errc_ok;
  });
}

shmbus_errc shmbus_subscriber_lost(const shmbus_subscriber_t* subscriber, uint64_t* lost) {
  static constexpr const char* where = "shmbus_subscriber_lost";
  if (!alive(subscriber, Tag::subscriber)) return fail_misuse(where, "NULL or invalid subscriber handle");
  if (lost == nullptr) return fail_misuse(where, "the lost output pointer is NULL");
  *lost = subscriber->sub.lost();
  return shmbus_errc_ok;
}

shmbus_errc shmbus_sample_data(const shmbus_sample_t* sample, const void** data, size_t* size) {
  static constexpr const char* where = "shmbus_sample_data";
  if (!alive(sample, Tag::sample) || data == nullptr || size == nullptr) [[unlikely]]
    return fail_misuse(where, "NULL or invalid sample handle, or NULL output pointer");
  std::span<const std::byte> bytes = sample->sample.data();
  *data = bytes.data();
  *size = bytes.size();
  return shmbus_errc_ok;
}

shmbus_errc shmbus_sample_get_info(const shmbus_sample_t* sample, shmbus_sample_info* info) {
  static constexpr const char* where = "shmbus_sample_get_info";
  if (!alive(sample, Tag::sample) || info == nullptr)
    return fail_misuse(where, "NULL or invalid sample handle, or NULL info pointer");
  info->sequence = sample->sample.sequence();
  info->lost_before = sample->sample.lost_before();
  info->publish_time_ns = sample->sample.publish_time_ns();
  return shmbus_errc_ok;
}

shmbus_errc shmbus_sample_release(shmbus_sample_t** sample) {
  static constexpr const char* where = "shmbus_sample_release";
  if (sample == nullptr || !alive(*sample, Tag::sample)) [[unlikely]]
    return fail_misuse(where, "NULL or invalid sample handle (a sample is released once)");
  shmbus_sample* h = *sample;
  h->sample.~RawSample();  // releases the hold
  new (&h->sample) RawSample();
  recycle(h);
  *sample = nullptr;
  return shmbus_errc_ok;
}

}  // extern "C"
