/* shmbus.h: the C API of shmbus, for C99 programs and other languages' FFIs.
 *
 * The same zero-copy bus as the C++ API (include/shmbus/raw.hpp, client.hpp), raw bytes only:
 *
 *   shmbus_topic_t* topic;   shmbus_topic_config cfg;
 *   shmbus_topic_config_init(&cfg);  cfg.name = "sensors";
 *   shmbus_topic_create(&cfg, NULL, &topic);                 (or through the daemon, below)
 *   shmbus_publisher_t* pub;  shmbus_publisher_create(topic, &pub);
 *   shmbus_loan_t* loan;  void* data;  size_t cap;
 *   shmbus_publisher_loan(pub, 64, &loan, &data, &cap);      write up to `cap` bytes at `data`
 *   shmbus_publisher_publish(pub, &loan, 64);                loan is NULL afterwards
 *
 *   shmbus_subscriber_t* sub;  shmbus_subscriber_create(topic, NULL, &sub);
 *   shmbus_sample_t* s;  const void* bytes;  size_t size;
 *   if (shmbus_subscriber_take_wait(sub, 1000000000, &s) == shmbus_errc_ok) {
 *     shmbus_sample_data(s, &bytes, &size);                  read in place, in shared memory
 *     shmbus_sample_release(&s);                             s is NULL afterwards
 *   }
 *
 * Errors. Every function but the *_free ones, shmbus_errc_name() and
 * shmbus_last_error_message() returns an shmbus_errc; shmbus_errc_ok (0) is success. Output
 * parameters are written only on success. The codes are shmbus::Errc's, value for value
 * (docs/usage.md has the table). shmbus_last_error_message() tells what was wrong in one line.
 * A NULL or foreign handle, or a NULL output pointer, is shmbus_errc_misuse, never a crash.
 * No C++ exception ever leaves a function of this header (out of memory is
 * shmbus_errc_system_error).
 *
 * Handles. Every handle is an opaque pointer owned by the caller, made by one function and
 * given back by one: *_free(&handle), shmbus_publisher_publish(pub, &loan, ...) or
 * shmbus_sample_release(&sample). Those take the address of your handle and set it to NULL,
 * so that using it again through the same variable is shmbus_errc_misuse (publishing a loan
 * twice, say) or, for *_free, nothing at all. Freeing a handle through a *copy* of an already
 * freed pointer is the caller's bug, as with free(); it is often, but not always, caught as
 * shmbus_errc_misuse.
 *
 * Lifetimes. A topic handle may be freed while publishers, subscribers, loans and samples of it
 * live on (they keep the mapping). A sample stays valid, its bytes unchanged, until released,
 * even after its subscriber is freed. A loan must not outlive its publisher: free or publish
 * every loan before freeing the publisher. Free publishers and subscribers made by a client
 * before the client.
 *
 * Threads. A publisher or subscriber is used by one thread at a time; loans and samples may be
 * published, released or freed from any thread; topic and client functions are thread-safe.
 * shmbus_last_error_message() is per thread.
 *
 * Hot path. loan, publish, take and release make no system call (but publish's one futex wake
 * when a subscriber sleeps) and take no lock, as in C++. Handles of loans and samples are
 * recycled per thread, so a steady loop allocates nothing.
 *
 * Linking: `pkg-config --cflags --libs shmbus-c` (the library is C++: the .pc file brings the
 * C++ runtime), or CMake: find_package(shmbus) and link shmbus::shmbus_c. See docs/c-api.md.
 */
#ifndef SHMBUS_SHMBUS_H
#define SHMBUS_SHMBUS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Errors ----------------------------------------------------------------------------- */

/* shmbus::Errc, value for value (the library fails to build when they differ). */
typedef enum shmbus_errc {
  shmbus_errc_ok = 0,
  /* Data path */
  shmbus_errc_pool_exhausted,        /* no free chunk of a size class that fits */
  shmbus_errc_message_too_large,     /* larger than the topic's largest chunk or max message size */
  shmbus_errc_too_many_segments,
  shmbus_errc_too_many_loans,        /* this publisher holds max_loans_per_publisher chunks */
  shmbus_errc_too_many_held,         /* this subscriber holds max_held_per_subscriber samples */
  shmbus_errc_no_data,               /* take: nothing new */
  shmbus_errc_timeout,               /* a wait ran out of time */
  shmbus_errc_subscriber_queue_full, /* fail-publish policy: a subscriber is a queue behind */
  shmbus_errc_malformed_message,
  shmbus_errc_type_mismatch,
  /* Set-up */
  shmbus_errc_invalid_config,
  shmbus_errc_too_many_publishers,
  shmbus_errc_too_many_subscribers,
  shmbus_errc_access_denied,         /* the bus daemon's access rules refused */
  shmbus_errc_not_a_region,
  shmbus_errc_unknown_layout_version,
  shmbus_errc_abi_mismatch,
  shmbus_errc_region_too_short,
  shmbus_errc_region_corrupt,
  shmbus_errc_region_unsealed,
  shmbus_errc_region_lost,           /* region file truncated, or revoked by the daemon */
  shmbus_errc_no_space,
  shmbus_errc_system_error,          /* also: out of memory, the daemon unreachable */
  shmbus_errc_rate_limited,
  shmbus_errc_lease_held,
  shmbus_errc_no_such_topic,
  /* Caller misuse: a NULL or foreign handle, a NULL output pointer, a loan of another
     publisher, a loan already published, a read-only topic for a publisher. */
  shmbus_errc_misuse,
  /* Request/response services (C++ only for now) */
  shmbus_errc_server_gone,
  shmbus_errc_call_cancelled,
  shmbus_errc_too_many_calls,
  /* Durable topics (C++ only for now) */
  shmbus_errc_lost_history
} shmbus_errc;

/* A short, static name of `code` ("pool exhausted"); "unknown error" for no code. */
const char* shmbus_errc_name(shmbus_errc code);
/* The message of this thread's last failed call: one line naming what was wrong (the topic,
   the sizes, the socket...). Valid until this thread's next failing call; "" before any. */
const char* shmbus_last_error_message(void);

/* ---- Topics ------------------------------------------------------------------------------ */

typedef struct shmbus_topic shmbus_topic_t;

typedef struct shmbus_size_class {
  uint64_t chunk_size; /* usable bytes of each chunk */
  uint32_t count;      /* chunks of this size */
} shmbus_size_class;

typedef enum shmbus_slow_subscriber_policy {
  shmbus_policy_block = 0,        /* publish waits up to block_timeout_ns */
  shmbus_policy_drop_oldest = 1,  /* the slow subscriber loses the oldest (sample lost_before) */
  shmbus_policy_fail_publish = 2  /* publish returns shmbus_errc_subscriber_queue_full */
} shmbus_slow_subscriber_policy;

/* A topic's configuration: shmbus::TopicConfig (include/shmbus/config.hpp says what each field
   means). Fill it with shmbus_topic_config_init(), then change what you need. `struct_size`
   lets later versions append fields: leave it as init set it. */
typedef struct shmbus_topic_config {
  size_t struct_size;
  const char* name;                        /* 1..255 bytes; required */
  const shmbus_size_class* size_classes;   /* NULL: one class of 256 chunks of 4096 bytes */
  size_t size_class_count;
  uint32_t queue_depth;                    /* 64 */
  uint32_t history_depth;                  /* 0 */
  shmbus_slow_subscriber_policy policy;    /* drop_oldest */
  int64_t block_timeout_ns;                /* 1 s */
  uint32_t max_publishers;                 /* 8 */
  uint32_t max_subscribers;                /* 64 */
  uint32_t max_loans_per_publisher;        /* 32 */
  uint32_t max_held_per_subscriber;        /* 32 */
  uint64_t max_message_size;               /* 0: the largest chunk */
  int stamp_publish_time;                  /* 0; nonzero: shmbus_sample_info's publish_time_ns */
} shmbus_topic_config;

void shmbus_topic_config_init(shmbus_topic_config* config);

/* Where a new daemonless topic's region lives (shmbus::RegionOptions). NULL: a sealed memfd. */
typedef struct shmbus_region_options {
  size_t struct_size;
  int file_backed;          /* 0: anonymous memfd; nonzero: a file <directory>/<name>.shmbus */
  const char* directory;    /* for file_backed: the bus directory */
  const char* bus_name;     /* "default" */
  unsigned file_mode;       /* 0600 */
  int payload_in_region;    /* 0: per-publisher sealed payload pools (least privilege) */
} shmbus_region_options;

void shmbus_region_options_init(shmbus_region_options* options);

/* Creates and initialises a topic without a daemon. Errors: invalid_config, no_space,
   system_error. */
shmbus_errc shmbus_topic_create(const shmbus_topic_config* config, const shmbus_region_options* options,
                                shmbus_topic_t** topic);
/* Maps the region behind `fd` (duplicated: the caller keeps its own), e.g. one inherited from
   a parent. Errors: not_a_region, unknown_layout_version, abi_mismatch, region_too_short,
   region_corrupt, region_unsealed, system_error. */
shmbus_errc shmbus_topic_open_fd(int fd, shmbus_topic_t** topic);
/* Maps a file-backed region (as Topic::open_file: for files no daemon serves). Errors as
   open_fd, plus lease_held. */
shmbus_errc shmbus_topic_open_file(const char* path, shmbus_topic_t** topic);
void shmbus_topic_free(shmbus_topic_t** topic);

/* The topic's name, valid while the handle is. */
shmbus_errc shmbus_topic_name(const shmbus_topic_t* topic, const char** name);
/* The region's file descriptor, owned by the topic, to hand to another process. */
shmbus_errc shmbus_topic_fd(const shmbus_topic_t* topic, int* fd);
/* Chunks of the pool that are free, and all of them, over every size class. */
shmbus_errc shmbus_topic_free_chunks(const shmbus_topic_t* topic, uint32_t* free_chunks, uint32_t* total_chunks);
/* Subscribers registered in the topic now (e.g. to wait for one before publishing). */
shmbus_errc shmbus_topic_subscriber_count(const shmbus_topic_t* topic, uint32_t* subscribers);
/* Gives back what slots of provably dead processes hold (Topic::reclaim_dead_owners); safe at
   any time. `reclaimed` (may be NULL): slots reclaimed. */
shmbus_errc shmbus_topic_reclaim_dead_owners(shmbus_topic_t* topic, size_t* reclaimed);

/* ---- The bus daemon ---------------------------------------------------------------------- */

typedef struct shmbus_client shmbus_client_t;

typedef enum shmbus_role { shmbus_role_publisher = 0, shmbus_role_subscriber = 1 } shmbus_role;

/* shmbus::ClientOptions; fill with shmbus_client_options_init(). */
typedef struct shmbus_client_options {
  size_t struct_size;
  const char* bus;          /* "default" */
  const char* socket;       /* NULL: $SHMBUS_SOCKET, else the bus's socket (client.hpp) */
  const char* name;         /* shown by `shmbus clients`; NULL: the process name */
  int64_t timeout_ms;       /* per control request: 5000 */
  int reconnect;            /* 1: reconnect after a daemon restart, follow revoked topics */
} shmbus_client_options;

void shmbus_client_options_init(shmbus_client_options* options);

/* Connects to the bus daemon (options NULL: the defaults). Errors: access_denied (the socket
   refused us), system_error (no daemon answered: the message names each socket tried). */
shmbus_errc shmbus_client_create(const shmbus_client_options* options, shmbus_client_t** client);
/* Tells the daemon to forget this client's registrations, then disconnects. */
void shmbus_client_free(shmbus_client_t** client);

/* Opens (creating if needed) topic config->name in `role`. The daemon's per-topic settings may
   override the configuration. Errors: access_denied, type_mismatch, invalid_config,
   rate_limited, system_error. */
shmbus_errc shmbus_client_open_topic(shmbus_client_t* client, const shmbus_topic_config* config,
                                     shmbus_role role, shmbus_topic_t** topic);
/* Opens a topic the bus already has; never creates one. Errors: no_such_topic, as above. */
shmbus_errc shmbus_client_open_existing_topic(shmbus_client_t* client, const char* name, shmbus_role role,
                                              shmbus_topic_t** topic);

/* ---- Publishing -------------------------------------------------------------------------- */

typedef struct shmbus_publisher shmbus_publisher_t;
typedef struct shmbus_loan shmbus_loan_t;

/* A publisher without the daemon's clean-up. Errors: too_many_publishers, misuse (a read-only
   topic), region_lost. */
shmbus_errc shmbus_publisher_create(shmbus_topic_t* topic, shmbus_publisher_t** publisher);
/* A publisher registered with the daemon: when this process dies, the daemon gives back its
   loans and slot. `topic` must come from this client, opened as publisher. */
shmbus_errc shmbus_client_publisher(shmbus_client_t* client, shmbus_topic_t* topic, shmbus_publisher_t** publisher);
/* Free or publish its loans first. */
void shmbus_publisher_free(shmbus_publisher_t** publisher);

/* Loans a chunk of at least `size` bytes: `*data` is where to write, `*capacity` (may be NULL)
   how much fits. Never blocks. Errors: message_too_large, pool_exhausted, too_many_loans,
   region_lost. */
shmbus_errc shmbus_publisher_loan(shmbus_publisher_t* publisher, size_t size, shmbus_loan_t** loan, void** data,
                                  size_t* capacity);
/* The written part of a loan: publish all of it. */
#define SHMBUS_WHOLE_LOAN ((size_t)-1)
/* Publishes the first `used` bytes of *loan (SHMBUS_WHOLE_LOAN: all) and sets *loan to NULL,
   also on failure (the chunk then goes back to the pool). Errors: subscriber_queue_full,
   timeout, region_lost; misuse for a NULL *loan (published already), a loan of another
   publisher, or `used` beyond the loan (then *loan is kept). */
shmbus_errc shmbus_publisher_publish(shmbus_publisher_t* publisher, shmbus_loan_t** loan, size_t used);
/* Copies `size` bytes into a new loan and publishes it (a convenience, not zero copy).
   Errors: those of loan and publish. */
shmbus_errc shmbus_publisher_publish_copy(shmbus_publisher_t* publisher, const void* bytes, size_t size);
/* Gives an unpublished loan's chunk back to the pool. */
void shmbus_loan_free(shmbus_loan_t** loan);
/* The loan's bytes again. */
shmbus_errc shmbus_loan_data(const shmbus_loan_t* loan, void** data, size_t* capacity);

/* ---- Subscribing ------------------------------------------------------------------------- */

typedef struct shmbus_subscriber shmbus_subscriber_t;
typedef struct shmbus_sample shmbus_sample_t;

typedef enum shmbus_wait_mode {
  shmbus_wait_busy_poll = 0, /* spin: lowest latency, burns a core */
  shmbus_wait_block = 1,     /* sleep on a futex at once */
  shmbus_wait_adaptive = 2   /* spin for spin_time_ns, then sleep */
} shmbus_wait_mode;

/* shmbus::SubscriberOptions; fill with shmbus_subscriber_options_init(). */
typedef struct shmbus_subscriber_options {
  size_t struct_size;
  shmbus_wait_mode wait_mode; /* adaptive */
  int64_t spin_time_ns;       /* 50 us */
  int with_history;           /* 1: start with the topic's retained history */
} shmbus_subscriber_options;

void shmbus_subscriber_options_init(shmbus_subscriber_options* options);

/* A subscriber without the daemon's clean-up (options NULL: the defaults). Errors:
   too_many_subscribers, misuse (a read-only topic), region_lost. */
shmbus_errc shmbus_subscriber_create(shmbus_topic_t* topic, const shmbus_subscriber_options* options,
                                     shmbus_subscriber_t** subscriber);
/* A subscriber registered with the daemon (see shmbus_client_publisher). */
shmbus_errc shmbus_client_subscriber(shmbus_client_t* client, shmbus_topic_t* topic,
                                     const shmbus_subscriber_options* options, shmbus_subscriber_t** subscriber);
/* Its samples stay valid until released. */
void shmbus_subscriber_free(shmbus_subscriber_t** subscriber);

/* Takes the next message in order. Errors: no_data (nothing new), too_many_held, region_lost,
   malformed_message. */
shmbus_errc shmbus_subscriber_take(shmbus_subscriber_t* subscriber, shmbus_sample_t** sample);
/* Waits up to timeout_ns (negative: for good) for a message, then takes it. Errors: timeout,
   and those of take. */
shmbus_errc shmbus_subscriber_take_wait(shmbus_subscriber_t* subscriber, int64_t timeout_ns, shmbus_sample_t** sample);
/* Waits until take would return a message. Errors: timeout, region_lost. */
shmbus_errc shmbus_subscriber_wait(shmbus_subscriber_t* subscriber, int64_t timeout_ns);
/* *has_data: nonzero when take would return a message now. */
shmbus_errc shmbus_subscriber_has_data(const shmbus_subscriber_t* subscriber, int* has_data);
/* A descriptor readable while data is available, for poll/epoll; owned by the subscriber.
   After waking, read its 8 bytes, then take until no_data. Starts a helper thread on the
   first call. Errors: system_error. */
shmbus_errc shmbus_subscriber_event_fd(shmbus_subscriber_t* subscriber, int* fd);
/* Messages lost so far (overwritten under drop-oldest, or in a revoked region). */
shmbus_errc shmbus_subscriber_lost(const shmbus_subscriber_t* subscriber, uint64_t* lost);

/* The message's bytes, read in place; valid and unchanged until the sample is released. */
shmbus_errc shmbus_sample_data(const shmbus_sample_t* sample, const void** data, size_t* size);
typedef struct shmbus_sample_info {
  uint64_t sequence;        /* the topic's message number */
  uint64_t lost_before;     /* messages this subscriber lost just before this one */
  uint64_t publish_time_ns; /* CLOCK_MONOTONIC at publish, or 0 without stamp_publish_time */
} shmbus_sample_info;
shmbus_errc shmbus_sample_get_info(const shmbus_sample_t* sample, shmbus_sample_info* info);
/* Gives the sample back (its chunk may then be reused) and sets *sample to NULL. Errors: misuse
   for a NULL *sample (released already). */
shmbus_errc shmbus_sample_release(shmbus_sample_t** sample);

#ifdef __cplusplus
}
#endif

#endif /* SHMBUS_SHMBUS_H */
