// Topics of the C API: configuration structs, daemonless create/open, and what a C program
// may ask of a topic.
#include <cstddef>

#include "handles.hpp"

using namespace shmbus;
using namespace shmbus::capi;

namespace shmbus::capi {

shmbus_errc to_cpp(const shmbus_topic_config* c, TopicConfig& out, const char* where) noexcept {
  if (c == nullptr) return fail_misuse(where, "config is NULL");
  if (!SHMBUS_CAPI_HAS(c, shmbus_topic_config, name))
    return fail_misuse(where, "config.struct_size is not set: fill the config with shmbus_topic_config_init()");
  if (c->name == nullptr) return fail(where, shmbus_errc_invalid_config, "config.name is NULL");
  try {
    TopicConfig t;
    t.name = c->name;
    if (SHMBUS_CAPI_HAS(c, shmbus_topic_config, size_class_count) && c->size_class_count != 0) {
      if (c->size_classes == nullptr)
        return fail(where, shmbus_errc_invalid_config, "config.size_classes is NULL but size_class_count is not 0");
      t.size_classes.clear();
      for (std::size_t i = 0; i < c->size_class_count; ++i)
        t.size_classes.push_back({c->size_classes[i].chunk_size, c->size_classes[i].count});
    }
    if (SHMBUS_CAPI_HAS(c, shmbus_topic_config, queue_depth)) t.queue_depth = c->queue_depth;
    if (SHMBUS_CAPI_HAS(c, shmbus_topic_config, history_depth)) t.history_depth = c->history_depth;
    if (SHMBUS_CAPI_HAS(c, shmbus_topic_config, policy)) {
      switch (enum_field(c->policy)) {
        case shmbus_policy_block: t.policy = SlowSubscriberPolicy::block; break;
        case shmbus_policy_drop_oldest: t.policy = SlowSubscriberPolicy::drop_oldest; break;
        case shmbus_policy_fail_publish: t.policy = SlowSubscriberPolicy::fail_publish; break;
        default: return fail(where, shmbus_errc_invalid_config, "config.policy is not a shmbus_policy_*");
      }
    }
    if (SHMBUS_CAPI_HAS(c, shmbus_topic_config, block_timeout_ns))
      t.block_timeout = std::chrono::nanoseconds(c->block_timeout_ns);
    if (SHMBUS_CAPI_HAS(c, shmbus_topic_config, max_publishers)) t.max_publishers = c->max_publishers;
    if (SHMBUS_CAPI_HAS(c, shmbus_topic_config, max_subscribers)) t.max_subscribers = c->max_subscribers;
    if (SHMBUS_CAPI_HAS(c, shmbus_topic_config, max_loans_per_publisher))
      t.max_loans_per_publisher = c->max_loans_per_publisher;
    if (SHMBUS_CAPI_HAS(c, shmbus_topic_config, max_held_per_subscriber))
      t.max_held_per_subscriber = c->max_held_per_subscriber;
    if (SHMBUS_CAPI_HAS(c, shmbus_topic_config, max_message_size)) t.max_message_size = c->max_message_size;
    if (SHMBUS_CAPI_HAS(c, shmbus_topic_config, stamp_publish_time)) t.stamp_publish_time = c->stamp_publish_time != 0;
    out = std::move(t);
    return shmbus_errc_ok;
  } catch (...) {
    return fail(where, shmbus_errc_system_error, "out of memory");
  }
}

}  // namespace shmbus::capi

namespace {

shmbus_errc hand_out(Topic topic, shmbus_topic_t** out, const char* where) {
  auto* h = new (std::nothrow) shmbus_topic{Tag::topic, std::move(topic)};
  if (h == nullptr) return fail(where, shmbus_errc_system_error, "out of memory");
  *out = h;
  return shmbus_errc_ok;
}

}  // namespace

extern "C" {

void shmbus_topic_config_init(shmbus_topic_config* c) {
  if (c == nullptr) return;
  const TopicConfig d;
  *c = shmbus_topic_config{};
  c->struct_size = sizeof *c;
  c->queue_depth = d.queue_depth;
  c->history_depth = d.history_depth;
  c->policy = shmbus_policy_drop_oldest;
  c->block_timeout_ns = static_cast<int64_t>(d.block_timeout.count());
  c->max_publishers = d.max_publishers;
  c->max_subscribers = d.max_subscribers;
  c->max_loans_per_publisher = d.max_loans_per_publisher;
  c->max_held_per_subscriber = d.max_held_per_subscriber;
  c->max_message_size = d.max_message_size;
  c->stamp_publish_time = d.stamp_publish_time ? 1 : 0;
}

void shmbus_region_options_init(shmbus_region_options* o) {
  if (o == nullptr) return;
  *o = shmbus_region_options{};
  o->struct_size = sizeof *o;
  o->bus_name = "default";
  o->file_mode = 0600;
}

shmbus_errc shmbus_topic_create(const shmbus_topic_config* config, const shmbus_region_options* options,
                                shmbus_topic_t** out) {
  static constexpr const char* where = "shmbus_topic_create";
  if (out == nullptr) return fail_misuse(where, "the topic output pointer is NULL");
  return guarded(where, [&] {
    TopicConfig t;
    if (shmbus_errc e = to_cpp(config, t, where); e != shmbus_errc_ok) return e;
    RegionOptions r;
    if (options != nullptr) {
      if (!SHMBUS_CAPI_HAS(options, shmbus_region_options, file_backed))
        return fail_misuse(where, "options.struct_size is not set: fill the options with shmbus_region_options_init()");
      if (options->file_backed) {
        if (!SHMBUS_CAPI_HAS(options, shmbus_region_options, directory) || options->directory == nullptr)
          return fail(where, shmbus_errc_invalid_config, "options.file_backed without options.directory");
        r.backing = RegionOptions::Backing::file;
        r.directory = options->directory;
      }
      if (SHMBUS_CAPI_HAS(options, shmbus_region_options, bus_name) && options->bus_name != nullptr)
        r.bus_name = options->bus_name;
      if (SHMBUS_CAPI_HAS(options, shmbus_region_options, file_mode)) r.file_mode = options->file_mode;
      if (SHMBUS_CAPI_HAS(options, shmbus_region_options, payload_in_region))
        r.payload_in_region = options->payload_in_region != 0;
    }
    return hand_out(Topic::create(t, r), out, where);
  });
}

shmbus_errc shmbus_topic_open_fd(int fd, shmbus_topic_t** out) {
  static constexpr const char* where = "shmbus_topic_open_fd";
  if (out == nullptr) return fail_misuse(where, "the topic output pointer is NULL");
  return guarded(where, [&] { return hand_out(Topic::open_fd(fd), out, where); });
}

shmbus_errc shmbus_topic_open_file(const char* path, shmbus_topic_t** out) {
  static constexpr const char* where = "shmbus_topic_open_file";
  if (out == nullptr) return fail_misuse(where, "the topic output pointer is NULL");
  if (path == nullptr) return fail_misuse(where, "path is NULL");
  return guarded(where, [&] { return hand_out(Topic::open_file(path), out, where); });
}

void shmbus_topic_free(shmbus_topic_t** topic) {
  if (topic == nullptr || !alive(*topic, Tag::topic)) return;
  (*topic)->tag = Tag::dead;
  delete *topic;
  *topic = nullptr;
}

shmbus_errc shmbus_topic_name(const shmbus_topic_t* topic, const char** name) {
  static constexpr const char* where = "shmbus_topic_name";
  if (!alive(topic, Tag::topic)) return fail_misuse(where, "NULL or invalid topic handle");
  if (name == nullptr) return fail_misuse(where, "the name output pointer is NULL");
  *name = topic->topic.name().c_str();
  return shmbus_errc_ok;
}

shmbus_errc shmbus_topic_fd(const shmbus_topic_t* topic, int* fd) {
  static constexpr const char* where = "shmbus_topic_fd";
  if (!alive(topic, Tag::topic)) return fail_misuse(where, "NULL or invalid topic handle");
  if (fd == nullptr) return fail_misuse(where, "the fd output pointer is NULL");
  *fd = topic->topic.fd();
  return shmbus_errc_ok;
}

shmbus_errc shmbus_topic_free_chunks(const shmbus_topic_t* topic, uint32_t* free_chunks, uint32_t* total_chunks) {
  static constexpr const char* where = "shmbus_topic_free_chunks";
  if (!alive(topic, Tag::topic)) return fail_misuse(where, "NULL or invalid topic handle");
  if (free_chunks == nullptr || total_chunks == nullptr) return fail_misuse(where, "an output pointer is NULL");
  return guarded(where, [&] {
    std::uint32_t free = 0, total = 0;
    for (const SizeClassUsage& c : topic->topic.stats().classes) {
      free += c.free;
      total += c.total;
    }
    *free_chunks = free;
    *total_chunks = total;
    return shmbus_errc_ok;
  });
}

shmbus_errc shmbus_topic_subscriber_count(const shmbus_topic_t* topic, uint32_t* subscribers) {
  static constexpr const char* where = "shmbus_topic_subscriber_count";
  if (!alive(topic, Tag::topic)) return fail_misuse(where, "NULL or invalid topic handle");
  if (subscribers == nullptr) return fail_misuse(where, "the subscribers output pointer is NULL");
  return guarded(where, [&] {
    std::uint32_t n = 0;
    for (const ClientSlotInfo& c : topic->topic.stats().clients) n += c.role == ClientSlotInfo::Role::subscriber;
    *subscribers = n;
    return shmbus_errc_ok;
  });
}

shmbus_errc shmbus_topic_reclaim_dead_owners(shmbus_topic_t* topic, size_t* reclaimed) {
  static constexpr const char* where = "shmbus_topic_reclaim_dead_owners";
  if (!alive(topic, Tag::topic)) return fail_misuse(where, "NULL or invalid topic handle");
  return guarded(where, [&] {
    std::size_t n = topic->topic.reclaim_dead_owners();
    if (reclaimed != nullptr) *reclaimed = n;
    return shmbus_errc_ok;
  });
}

}  // extern "C"
