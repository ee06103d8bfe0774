/* The C API from C, in one process: every function, and every error path it documents (bad
 * handle, closed (lost) topic, full pool, message too large, timeout...). Multi-process
 * exchanges are in capi_process_test.c. */
#define _GNU_SOURCE
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

/* ---- helpers ---- */

/* Room for the ring's 64 references (the default queue_depth) and 32 loans or samples. */
static shmbus_size_class small_class = {256, 96};

/* A fresh daemonless topic "capi/<tag>/<pid>" with one class of `small_class`. */
static shmbus_errc make_topic(const char* tag, shmbus_topic_config* cfg, shmbus_topic_t** topic) {
  static char name[128];
  snprintf(name, sizeof name, "capi/%s/%d", tag, (int)getpid());
  if (cfg->struct_size == 0) shmbus_topic_config_init(cfg);
  cfg->name = name;
  if (cfg->size_classes == NULL) {
    cfg->size_classes = &small_class;
    cfg->size_class_count = 1;
  }
  return shmbus_topic_create(cfg, NULL, topic);
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int contains(const char* haystack, const char* needle) { return strstr(haystack, needle) != NULL; }

/* ---- tests ---- */

static int error_codes_have_the_cpp_librarys_names(void) {
  /* The values are pinned against shmbus::Errc at build time; here, each has a name. */
  for (int code = shmbus_errc_ok; code <= shmbus_errc_lost_history; ++code)
    CHECK(strcmp(shmbus_errc_name((shmbus_errc)code), "unknown error") != 0);
  CHECK(strcmp(shmbus_errc_name((shmbus_errc)(shmbus_errc_lost_history + 1)), "unknown error") == 0);
  CHECK(strcmp(shmbus_errc_name((shmbus_errc)-1), "unknown error") == 0);
  CHECK(strcmp(shmbus_errc_name(shmbus_errc_pool_exhausted), "pool exhausted") == 0);
  CHECK(strcmp(shmbus_errc_name(shmbus_errc_misuse), "call not allowed here") == 0);
  return 0;
}

static int a_published_message_is_taken_in_place_with_its_sequence(void) {
  shmbus_topic_config cfg = {0};
  shmbus_topic_t* topic = NULL;
  CHECK_OK(make_topic("roundtrip", &cfg, &topic));
  const char* name = NULL;
  CHECK_OK(shmbus_topic_name(topic, &name));
  CHECK(contains(name, "capi/roundtrip/"));
  int fd = -1;
  CHECK_OK(shmbus_topic_fd(topic, &fd));
  CHECK(fd >= 0);

  shmbus_publisher_t* pub = NULL;
  shmbus_subscriber_t* sub = NULL;
  uint32_t subscribers = 9;
  CHECK_OK(shmbus_topic_subscriber_count(topic, &subscribers));
  CHECK(subscribers == 0);
  CHECK_OK(shmbus_publisher_create(topic, &pub));
  CHECK_OK(shmbus_subscriber_create(topic, NULL, &sub));
  CHECK_OK(shmbus_topic_subscriber_count(topic, &subscribers));
  CHECK(subscribers == 1);
  for (uint64_t i = 0; i < 20; ++i) {
    shmbus_loan_t* loan = NULL;
    void* data = NULL;
    size_t cap = 0;
    CHECK_OK(shmbus_publisher_loan(pub, 100, &loan, &data, &cap));
    CHECK(loan != NULL && data != NULL && cap >= 100 && cap <= 256);
    void* again = NULL;
    CHECK_OK(shmbus_loan_data(loan, &again, NULL));
    CHECK(again == data);
    snprintf((char*)data, cap, "message %llu", (unsigned long long)i);
    CHECK_OK(shmbus_publisher_publish(pub, &loan, strlen((char*)data) + 1));
    CHECK(loan == NULL);

    shmbus_sample_t* s = NULL;
    const void* bytes = NULL;
    size_t size = 0;
    CHECK_OK(shmbus_subscriber_take(sub, &s));
    CHECK_OK(shmbus_sample_data(s, &bytes, &size));
    char want[32];
    snprintf(want, sizeof want, "message %llu", (unsigned long long)i);
    CHECK(size == strlen(want) + 1 && strcmp((const char*)bytes, want) == 0);
    shmbus_sample_info info;
    CHECK_OK(shmbus_sample_get_info(s, &info));
    CHECK(info.sequence == i && info.lost_before == 0 && info.publish_time_ns == 0);
    CHECK_OK(shmbus_sample_release(&s));
    CHECK(s == NULL);
  }
  /* publish_copy, and a whole loan. */
  CHECK_OK(shmbus_publisher_publish_copy(pub, "copied", 7));
  shmbus_loan_t* loan = NULL;
  void* data = NULL;
  size_t cap = 0;
  CHECK_OK(shmbus_publisher_loan(pub, 10, &loan, &data, &cap));
  memset(data, 'w', cap);
  CHECK_OK(shmbus_publisher_publish(pub, &loan, SHMBUS_WHOLE_LOAN));
  shmbus_sample_t* s = NULL;
  const void* bytes = NULL;
  size_t size = 0;
  CHECK_OK(shmbus_subscriber_take(sub, &s));
  CHECK_OK(shmbus_sample_data(s, &bytes, &size));
  CHECK(size == 7 && memcmp(bytes, "copied", 7) == 0);
  CHECK_OK(shmbus_sample_release(&s));
  CHECK_OK(shmbus_subscriber_take(sub, &s));
  CHECK_OK(shmbus_sample_data(s, &bytes, &size));
  CHECK(size == cap && ((const char*)bytes)[cap - 1] == 'w');
  CHECK_OK(shmbus_sample_release(&s));
  CHECK_ERRC(shmbus_subscriber_take(sub, &s), shmbus_errc_no_data);
  CHECK(s == NULL);

  shmbus_subscriber_free(&sub);
  shmbus_publisher_free(&pub);
  shmbus_topic_free(&topic);
  CHECK(sub == NULL && pub == NULL && topic == NULL);
  return 0;
}

static int stamped_topics_give_the_publish_time(void) {
  shmbus_topic_config cfg = {0};
  shmbus_topic_config_init(&cfg);
  cfg.stamp_publish_time = 1;
  shmbus_topic_t* topic = NULL;
  CHECK_OK(make_topic("stamped", &cfg, &topic));
  shmbus_publisher_t* pub = NULL;
  shmbus_subscriber_t* sub = NULL;
  CHECK_OK(shmbus_publisher_create(topic, &pub));
  CHECK_OK(shmbus_subscriber_create(topic, NULL, &sub));
  int64_t before = now_ns();
  CHECK_OK(shmbus_publisher_publish_copy(pub, "t", 1));
  int64_t after = now_ns();
  shmbus_sample_t* s = NULL;
  CHECK_OK(shmbus_subscriber_take(sub, &s));
  shmbus_sample_info info;
  CHECK_OK(shmbus_sample_get_info(s, &info));
  CHECK((int64_t)info.publish_time_ns >= before && (int64_t)info.publish_time_ns <= after);
  CHECK_OK(shmbus_sample_release(&s));
  shmbus_subscriber_free(&sub);
  shmbus_publisher_free(&pub);
  shmbus_topic_free(&topic);
  return 0;
}

static int null_and_foreign_handles_are_misuse_never_a_crash(void) {
  shmbus_topic_config cfg = {0};
  shmbus_topic_t* topic = NULL;
  CHECK_OK(make_topic("badhandles", &cfg, &topic));
  shmbus_publisher_t* pub = NULL;
  shmbus_subscriber_t* sub = NULL;
  CHECK_OK(shmbus_publisher_create(topic, &pub));
  CHECK_OK(shmbus_subscriber_create(topic, NULL, &sub));
  /* Handles of one type passed as another. */
  shmbus_publisher_t* topic_as_pub = (shmbus_publisher_t*)(void*)topic;
  shmbus_subscriber_t* pub_as_sub = (shmbus_subscriber_t*)(void*)pub;
  shmbus_topic_t* sub_as_topic = (shmbus_topic_t*)(void*)sub;
  shmbus_loan_t* loan = NULL;
  shmbus_sample_t* s = NULL;
  void* data = NULL;
  const void* cdata = NULL;
  size_t size = 0;
  int i = 0;
  uint32_t u1 = 0, u2 = 0;
  uint64_t u64 = 0;
  const char* str = NULL;
  shmbus_sample_info info;

  CHECK_ERRC(shmbus_publisher_loan(NULL, 8, &loan, &data, &size), shmbus_errc_misuse);
  CHECK(contains(shmbus_last_error_message(), "shmbus_publisher_loan"));
  CHECK(contains(shmbus_last_error_message(), "publisher handle"));
  CHECK_ERRC(shmbus_publisher_loan(topic_as_pub, 8, &loan, &data, &size), shmbus_errc_misuse);
  CHECK_ERRC(shmbus_publisher_loan(pub, 8, NULL, &data, &size), shmbus_errc_misuse);
  CHECK_ERRC(shmbus_publisher_loan(pub, 8, &loan, NULL, &size), shmbus_errc_misuse);
  CHECK(loan == NULL);
  CHECK_ERRC(shmbus_publisher_publish(NULL, &loan, 1), shmbus_errc_misuse);
  CHECK_ERRC(shmbus_publisher_publish(pub, NULL, 1), shmbus_errc_misuse);
  CHECK_ERRC(shmbus_publisher_publish(pub, &loan, 1), shmbus_errc_misuse); /* *loan NULL */
  CHECK_ERRC(shmbus_publisher_publish(pub, (shmbus_loan_t**)(void*)&topic, 1), shmbus_errc_misuse);
  CHECK_ERRC(shmbus_publisher_publish_copy(NULL, "x", 1), shmbus_errc_misuse);
  CHECK_ERRC(shmbus_publisher_publish_copy(pub, NULL, 1), shmbus_errc_misuse);
  CHECK_ERRC(shmbus_loan_data(NULL, &data, &size), shmbus_errc_misuse);
  CHECK_ERRC(shmbus_subscriber_take(NULL, &s), shmbus_errc_misuse);
  CHECK_ERRC(shmbus_subscriber_take(pub_as_sub, &s), shmbus_errc_misuse);
  CHECK_ERRC(shmbus_subscriber_take(sub, NULL), shmbus_errc_misuse);
  CHECK_ERRC(shmbus_subscriber_take_wait(NULL, 0, &s), shmbus_errc_misuse);
  CHECK_ERRC(shmbus_subscriber_take_wait(sub, 0, NULL), shmbus_errc_misuse);
  CHECK_ERRC(shmbus_subscriber_wait(pub_as_sub, 0), shmbus_errc_misuse);
  CHECK_ERRC(shmbus_subscriber_has_data(NULL, &i), shmbus_errc_misuse);
  CHECK_ERRC(shmbus_subscriber_has_data(sub, NULL), shmbus_errc_misuse);
  CHECK_ERRC(shmbus_subscriber_event_fd(NULL, &i), shmbus_errc_misuse);
  CHECK_ERRC(shmbus_subscriber_event_fd(sub, NULL), shmbus_errc_misuse);
  CHECK_ERRC(shmbus_subscriber_lost(NULL, &u64), shmbus_errc_misuse);
  CHECK_ERRC(shmbus_subscriber_lost(sub, NULL), shmbus_errc_misuse);
  CHECK_ERRC(shmbus_sample_data(NULL, &cdata, &size), shmbus_errc_misuse);
  CHECK_ERRC(shmbus_sample_get_info(NULL, &info), shmbus_errc_misuse);
  CHECK_ERRC(shmbus_sample_release(NULL), shmbus_errc_misuse);
  CHECK_ERRC(shmbus_sample_release(&s), shmbus_errc_misuse); /* *sample NULL */
  CHECK_ERRC(shmbus_topic_name(NULL, &str), shmbus_errc_misuse);
  CHECK_ERRC(shmbus_topic_name(sub_as_topic, &str), shmbus_errc_misuse);
  CHECK_ERRC(shmbus_topic_name(topic, NULL), shmbus_errc_misuse);
  CHECK_ERRC(shmbus_topic_fd(NULL, &i), shmbus_errc_misuse);
  CHECK_ERRC(shmbus_topic_free_chunks(NULL, &u1, &u2), shmbus_errc_misuse);
  CHECK_ERRC(shmbus_topic_free_chunks(topic, NULL, &u2), shmbus_errc_misuse);
  CHECK_ERRC(shmbus_topic_reclaim_dead_owners(NULL, NULL), shmbus_errc_misuse);
  CHECK_ERRC(shmbus_topic_subscriber_count(NULL, &u1), shmbus_errc_misuse);
  CHECK_ERRC(shmbus_topic_subscriber_count(topic, NULL), shmbus_errc_misuse);
  CHECK_ERRC(shmbus_topic_create(&cfg, NULL, NULL), shmbus_errc_misuse);
  CHECK_ERRC(shmbus_topic_open_fd(-1, NULL), shmbus_errc_misuse);
  CHECK_ERRC(shmbus_topic_open_file(NULL, &topic), shmbus_errc_misuse);
  CHECK_ERRC(shmbus_publisher_create(NULL, &pub), shmbus_errc_misuse);
  CHECK_ERRC(shmbus_publisher_create(sub_as_topic, &pub), shmbus_errc_misuse);
  CHECK_ERRC(shmbus_publisher_create(topic, NULL), shmbus_errc_misuse);
  CHECK_ERRC(shmbus_subscriber_create(NULL, NULL, &sub), shmbus_errc_misuse);
  CHECK_ERRC(shmbus_subscriber_create(topic, NULL, NULL), shmbus_errc_misuse);
  CHECK_ERRC(shmbus_client_create(NULL, NULL), shmbus_errc_misuse);
  CHECK_ERRC(shmbus_client_open_topic(NULL, &cfg, shmbus_role_publisher, &topic), shmbus_errc_misuse);
  CHECK_ERRC(shmbus_client_open_existing_topic(NULL, "x", shmbus_role_publisher, &topic), shmbus_errc_misuse);
  CHECK_ERRC(shmbus_client_publisher(NULL, topic, &pub), shmbus_errc_misuse);
  CHECK_ERRC(shmbus_client_subscriber(NULL, topic, NULL, &sub), shmbus_errc_misuse);
  /* Nothing above changed the handles. */
  CHECK(topic != NULL && pub != NULL && sub != NULL);
  /* Freeing NULL, a NULL address, or a foreign handle does nothing. */
  shmbus_topic_free(NULL);
  shmbus_publisher_free(&topic_as_pub);
  CHECK(topic_as_pub != NULL);
  shmbus_loan_free(&loan);
  shmbus_client_free(NULL);
  /* The handles still work. */
  CHECK_OK(shmbus_publisher_publish_copy(pub, "ok", 3));
  CHECK_OK(shmbus_subscriber_take(sub, &s));
  CHECK_OK(shmbus_sample_release(&s));
  /* Freeing through the same variable twice: the second is nothing. */
  shmbus_subscriber_free(&sub);
  shmbus_subscriber_free(&sub);
  shmbus_publisher_free(&pub);
  shmbus_publisher_free(&pub);
  shmbus_topic_free(&topic);
  shmbus_topic_free(&topic);
  return 0;
}

static int a_loan_is_published_once_and_a_sample_released_once(void) {
  shmbus_topic_config cfg = {0};
  shmbus_topic_t* topic = NULL;
  CHECK_OK(make_topic("once", &cfg, &topic));
  shmbus_publisher_t* pub = NULL;
  shmbus_publisher_t* other = NULL;
  shmbus_subscriber_t* sub = NULL;
  CHECK_OK(shmbus_publisher_create(topic, &pub));
  CHECK_OK(shmbus_publisher_create(topic, &other));
  CHECK_OK(shmbus_subscriber_create(topic, NULL, &sub));
  shmbus_loan_t* loan = NULL;
  void* data = NULL;
  size_t cap = 0;
  CHECK_OK(shmbus_publisher_loan(pub, 8, &loan, &data, &cap));
  memcpy(data, "once", 5);
  /* Another publisher's loan, or more bytes than loaned: refused, the loan kept. */
  CHECK_ERRC(shmbus_publisher_publish(other, &loan, 5), shmbus_errc_misuse);
  CHECK(contains(shmbus_last_error_message(), "another publisher"));
  CHECK(loan != NULL);
  CHECK_ERRC(shmbus_publisher_publish(pub, &loan, cap + 1), shmbus_errc_misuse);
  CHECK(loan != NULL);
  shmbus_loan_t* copy = loan;
  CHECK_OK(shmbus_publisher_publish(pub, &loan, 5));
  CHECK(loan == NULL);
  CHECK_ERRC(shmbus_publisher_publish(pub, &loan, 5), shmbus_errc_misuse);
  CHECK(contains(shmbus_last_error_message(), "published once"));
  /* A stale copy of the published handle is caught too (it is tagged dead or recycled;
     here no other loan took it over). */
  CHECK_ERRC(shmbus_publisher_publish(pub, &copy, 5), shmbus_errc_misuse);

  shmbus_sample_t* s = NULL;
  CHECK_OK(shmbus_subscriber_take(sub, &s));
  shmbus_sample_t* scopy = s;
  CHECK_OK(shmbus_sample_release(&s));
  CHECK_ERRC(shmbus_sample_release(&s), shmbus_errc_misuse);
  CHECK_ERRC(shmbus_sample_release(&scopy), shmbus_errc_misuse);
  /* Exactly one message went out. */
  CHECK_ERRC(shmbus_subscriber_take(sub, &s), shmbus_errc_no_data);

  /* An unpublished loan given back returns its chunk. */
  uint32_t free_before = 0, total = 0, free_during = 0, free_after = 0;
  CHECK_OK(shmbus_topic_free_chunks(topic, &free_before, &total));
  CHECK_OK(shmbus_publisher_loan(pub, 8, &loan, &data, NULL));
  CHECK_OK(shmbus_topic_free_chunks(topic, &free_during, &total));
  CHECK(free_during == free_before - 1);
  shmbus_loan_free(&loan);
  CHECK(loan == NULL);
  CHECK_OK(shmbus_topic_free_chunks(topic, &free_after, &total));
  CHECK(free_after == free_before);
  CHECK_ERRC(shmbus_subscriber_take(sub, &s), shmbus_errc_no_data);

  shmbus_subscriber_free(&sub);
  shmbus_publisher_free(&other);
  shmbus_publisher_free(&pub);
  shmbus_topic_free(&topic);
  return 0;
}

static int a_full_pool_is_pool_exhausted_and_the_message_names_the_holder(void) {
  shmbus_topic_config cfg = {0};
  shmbus_topic_config_init(&cfg);
  shmbus_size_class four = {128, 4};
  cfg.size_classes = &four;
  cfg.size_class_count = 1;
  cfg.queue_depth = 2;
  shmbus_topic_t* topic = NULL;
  CHECK_OK(make_topic("fullpool", &cfg, &topic));
  shmbus_publisher_t* pub = NULL;
  CHECK_OK(shmbus_publisher_create(topic, &pub));
  shmbus_loan_t* loans[4];
  void* data = NULL;
  for (int i = 0; i < 4; ++i) CHECK_OK(shmbus_publisher_loan(pub, 64, &loans[i], &data, NULL));
  uint32_t free_chunks = 99, total = 0;
  CHECK_OK(shmbus_topic_free_chunks(topic, &free_chunks, &total));
  CHECK(free_chunks == 0 && total == 4);
  shmbus_loan_t* fifth = NULL;
  CHECK_ERRC(shmbus_publisher_loan(pub, 64, &fifth, &data, NULL), shmbus_errc_pool_exhausted);
  CHECK(fifth == NULL);
  const char* msg = shmbus_last_error_message();
  CHECK(contains(msg, "shmbus_publisher_loan: "));
  CHECK(contains(msg, "capi/fullpool/"));
  char pid[32];
  snprintf(pid, sizeof pid, "%d", (int)getpid());
  CHECK(contains(msg, pid)); /* who holds the chunks */
  for (int i = 0; i < 4; ++i) shmbus_loan_free(&loans[i]);
  CHECK_OK(shmbus_publisher_loan(pub, 64, &fifth, &data, NULL));
  shmbus_loan_free(&fifth);
  shmbus_publisher_free(&pub);
  shmbus_topic_free(&topic);
  return 0;
}

static int loan_limits_give_too_many_loans_and_message_too_large(void) {
  shmbus_topic_config cfg = {0};
  shmbus_topic_config_init(&cfg);
  cfg.max_loans_per_publisher = 2;
  shmbus_topic_t* topic = NULL;
  CHECK_OK(make_topic("limits", &cfg, &topic));
  shmbus_publisher_t* pub = NULL;
  CHECK_OK(shmbus_publisher_create(topic, &pub));
  shmbus_loan_t *a = NULL, *b = NULL, *c = NULL;
  void* data = NULL;
  CHECK_ERRC(shmbus_publisher_loan(pub, 257, &a, &data, NULL), shmbus_errc_message_too_large);
  CHECK(contains(shmbus_last_error_message(), "257"));
  CHECK_OK(shmbus_publisher_loan(pub, 1, &a, &data, NULL));
  CHECK_OK(shmbus_publisher_loan(pub, 1, &b, &data, NULL));
  CHECK_ERRC(shmbus_publisher_loan(pub, 1, &c, &data, NULL), shmbus_errc_too_many_loans);
  CHECK(c == NULL);
  char big[300] = {0};
  CHECK_ERRC(shmbus_publisher_publish_copy(pub, big, 10), shmbus_errc_too_many_loans);
  shmbus_loan_free(&a);
  CHECK_ERRC(shmbus_publisher_publish_copy(pub, big, sizeof big), shmbus_errc_message_too_large);
  shmbus_loan_free(&b);
  shmbus_publisher_free(&pub);
  shmbus_topic_free(&topic);
  return 0;
}

static int an_empty_topic_gives_no_data_and_waits_time_out(void) {
  shmbus_topic_config cfg = {0};
  shmbus_topic_t* topic = NULL;
  CHECK_OK(make_topic("empty", &cfg, &topic));
  shmbus_subscriber_options opts;
  shmbus_subscriber_options_init(&opts);
  opts.wait_mode = shmbus_wait_block;
  shmbus_subscriber_t* sub = NULL;
  CHECK_OK(shmbus_subscriber_create(topic, &opts, &sub));
  shmbus_sample_t* s = NULL;
  int has = 7;
  CHECK_OK(shmbus_subscriber_has_data(sub, &has));
  CHECK(has == 0);
  CHECK_ERRC(shmbus_subscriber_take(sub, &s), shmbus_errc_no_data);
  CHECK(contains(shmbus_last_error_message(), "shmbus_subscriber_take: no data"));
  int64_t start = now_ns();
  CHECK_ERRC(shmbus_subscriber_take_wait(sub, 30 * 1000 * 1000, &s), shmbus_errc_timeout);
  int64_t waited = now_ns() - start;
  CHECK(waited >= 30 * 1000 * 1000 && waited < 2000 * 1000 * 1000LL);
  CHECK(s == NULL);
  start = now_ns();
  CHECK_ERRC(shmbus_subscriber_wait(sub, 20 * 1000 * 1000), shmbus_errc_timeout);
  CHECK(now_ns() - start >= 20 * 1000 * 1000);
  /* With a message there, no waiting. */
  shmbus_publisher_t* pub = NULL;
  CHECK_OK(shmbus_publisher_create(topic, &pub));
  CHECK_OK(shmbus_publisher_publish_copy(pub, "x", 1));
  CHECK_OK(shmbus_subscriber_has_data(sub, &has));
  CHECK(has == 1);
  CHECK_OK(shmbus_subscriber_wait(sub, 0));
  CHECK_OK(shmbus_subscriber_take_wait(sub, -1, &s));
  CHECK_OK(shmbus_sample_release(&s));
  shmbus_publisher_free(&pub);
  shmbus_subscriber_free(&sub);
  shmbus_topic_free(&topic);
  return 0;
}

static int held_samples_are_bounded_by_max_held(void) {
  shmbus_topic_config cfg = {0};
  shmbus_topic_config_init(&cfg);
  cfg.max_held_per_subscriber = 2;
  shmbus_topic_t* topic = NULL;
  CHECK_OK(make_topic("held", &cfg, &topic));
  shmbus_publisher_t* pub = NULL;
  shmbus_subscriber_t* sub = NULL;
  CHECK_OK(shmbus_publisher_create(topic, &pub));
  CHECK_OK(shmbus_subscriber_create(topic, NULL, &sub));
  for (int i = 0; i < 3; ++i) CHECK_OK(shmbus_publisher_publish_copy(pub, "h", 1));
  shmbus_sample_t *a = NULL, *b = NULL, *c = NULL;
  CHECK_OK(shmbus_subscriber_take(sub, &a));
  CHECK_OK(shmbus_subscriber_take(sub, &b));
  CHECK_ERRC(shmbus_subscriber_take(sub, &c), shmbus_errc_too_many_held);
  CHECK_OK(shmbus_sample_release(&a));
  CHECK_OK(shmbus_subscriber_take(sub, &c));
  shmbus_sample_info info;
  CHECK_OK(shmbus_sample_get_info(c, &info));
  CHECK(info.sequence == 2); /* nothing skipped by the refused take */
  CHECK_OK(shmbus_sample_release(&b));
  CHECK_OK(shmbus_sample_release(&c));
  shmbus_publisher_free(&pub);
  shmbus_subscriber_free(&sub);
  shmbus_topic_free(&topic);
  return 0;
}

static int slow_subscriber_policies_fail_or_drop(void) {
  shmbus_topic_config cfg = {0};
  shmbus_topic_config_init(&cfg);
  cfg.queue_depth = 2;
  cfg.policy = shmbus_policy_fail_publish;
  shmbus_topic_t* topic = NULL;
  CHECK_OK(make_topic("failpolicy", &cfg, &topic));
  shmbus_publisher_t* pub = NULL;
  shmbus_subscriber_t* sub = NULL;
  CHECK_OK(shmbus_publisher_create(topic, &pub));
  CHECK_OK(shmbus_subscriber_create(topic, NULL, &sub));
  CHECK_OK(shmbus_publisher_publish_copy(pub, "1", 1));
  CHECK_OK(shmbus_publisher_publish_copy(pub, "2", 1));
  shmbus_loan_t* loan = NULL;
  void* data = NULL;
  CHECK_OK(shmbus_publisher_loan(pub, 1, &loan, &data, NULL));
  CHECK_ERRC(shmbus_publisher_publish(pub, &loan, 1), shmbus_errc_subscriber_queue_full);
  CHECK(loan == NULL); /* consumed: its chunk went back to the pool */
  uint32_t free_chunks = 0, total = 0;
  CHECK_OK(shmbus_topic_free_chunks(topic, &free_chunks, &total));
  CHECK(free_chunks == total - 2);
  shmbus_subscriber_free(&sub);
  shmbus_publisher_free(&pub);
  shmbus_topic_free(&topic);

  shmbus_topic_config_init(&cfg);
  cfg.queue_depth = 2;
  cfg.policy = shmbus_policy_drop_oldest;
  CHECK_OK(make_topic("droppolicy", &cfg, &topic));
  CHECK_OK(shmbus_publisher_create(topic, &pub));
  CHECK_OK(shmbus_subscriber_create(topic, NULL, &sub));
  for (int i = 0; i < 5; ++i) CHECK_OK(shmbus_publisher_publish_copy(pub, "d", 1));
  shmbus_sample_t* s = NULL;
  CHECK_OK(shmbus_subscriber_take(sub, &s));
  shmbus_sample_info info;
  CHECK_OK(shmbus_sample_get_info(s, &info));
  CHECK(info.sequence == 3 && info.lost_before == 3);
  uint64_t lost = 0;
  CHECK_OK(shmbus_subscriber_lost(sub, &lost));
  CHECK(lost == 3);
  CHECK_OK(shmbus_sample_release(&s));
  shmbus_subscriber_free(&sub);
  shmbus_publisher_free(&pub);
  shmbus_topic_free(&topic);
  return 0;
}

static int a_sample_outlives_its_subscriber_and_topic_handles(void) {
  shmbus_topic_config cfg = {0};
  shmbus_topic_t* topic = NULL;
  CHECK_OK(make_topic("outlive", &cfg, &topic));
  shmbus_publisher_t* pub = NULL;
  shmbus_subscriber_t* sub = NULL;
  CHECK_OK(shmbus_publisher_create(topic, &pub));
  CHECK_OK(shmbus_subscriber_create(topic, NULL, &sub));
  CHECK_OK(shmbus_publisher_publish_copy(pub, "still here", 11));
  shmbus_sample_t* s = NULL;
  CHECK_OK(shmbus_subscriber_take(sub, &s));
  shmbus_subscriber_free(&sub);
  shmbus_topic_free(&topic);
  const void* bytes = NULL;
  size_t size = 0;
  CHECK_OK(shmbus_sample_data(s, &bytes, &size));
  CHECK(size == 11 && strcmp((const char*)bytes, "still here") == 0);
  CHECK_OK(shmbus_sample_release(&s));
  shmbus_publisher_free(&pub);
  return 0;
}

static int the_event_fd_turns_readable_when_a_message_arrives(void) {
  shmbus_topic_config cfg = {0};
  shmbus_topic_t* topic = NULL;
  CHECK_OK(make_topic("eventfd", &cfg, &topic));
  shmbus_publisher_t* pub = NULL;
  shmbus_subscriber_t* sub = NULL;
  CHECK_OK(shmbus_publisher_create(topic, &pub));
  CHECK_OK(shmbus_subscriber_create(topic, NULL, &sub));
  int fd = -1;
  CHECK_OK(shmbus_subscriber_event_fd(sub, &fd));
  CHECK(fd >= 0);
  struct pollfd p = {fd, POLLIN, 0};
  CHECK(poll(&p, 1, 20) == 0); /* nothing yet */
  CHECK_OK(shmbus_publisher_publish_copy(pub, "e", 1));
  CHECK(poll(&p, 1, 5000) == 1 && (p.revents & POLLIN));
  uint64_t count = 0;
  CHECK(read(fd, &count, sizeof count) == (ssize_t)sizeof count);
  shmbus_sample_t* s = NULL;
  CHECK_OK(shmbus_subscriber_take(sub, &s));
  CHECK_OK(shmbus_sample_release(&s));
  shmbus_subscriber_free(&sub);
  shmbus_publisher_free(&pub);
  shmbus_topic_free(&topic);
  return 0;
}

static int bad_configs_and_foreign_regions_are_refused_with_a_reason(void) {
  shmbus_topic_t* topic = NULL;
  shmbus_topic_config cfg;
  memset(&cfg, 0, sizeof cfg); /* not init'ed: struct_size 0 */
  cfg.name = "capi/uninit";
  CHECK_ERRC(shmbus_topic_create(&cfg, NULL, &topic), shmbus_errc_misuse);
  CHECK(contains(shmbus_last_error_message(), "shmbus_topic_config_init"));
  CHECK_ERRC(shmbus_topic_create(NULL, NULL, &topic), shmbus_errc_misuse);
  shmbus_topic_config_init(&cfg);
  CHECK_ERRC(shmbus_topic_create(&cfg, NULL, &topic), shmbus_errc_invalid_config); /* no name */
  CHECK(contains(shmbus_last_error_message(), "name"));
  cfg.name = "capi/badclasses";
  cfg.size_class_count = 1; /* but no array */
  CHECK_ERRC(shmbus_topic_create(&cfg, NULL, &topic), shmbus_errc_invalid_config);
  shmbus_size_class zero = {0, 4};
  cfg.size_classes = &zero;
  CHECK_ERRC(shmbus_topic_create(&cfg, NULL, &topic), shmbus_errc_invalid_config);
  CHECK(strlen(shmbus_last_error_message()) > strlen("shmbus_topic_create: "));
  cfg.size_classes = NULL;
  cfg.size_class_count = 0;
  cfg.policy = (shmbus_slow_subscriber_policy)9;
  CHECK_ERRC(shmbus_topic_create(&cfg, NULL, &topic), shmbus_errc_invalid_config);
  cfg.policy = shmbus_policy_block;
  shmbus_region_options ropts;
  memset(&ropts, 0, sizeof ropts);
  CHECK_ERRC(shmbus_topic_create(&cfg, &ropts, &topic), shmbus_errc_misuse);
  shmbus_region_options_init(&ropts);
  ropts.file_backed = 1; /* no directory */
  CHECK_ERRC(shmbus_topic_create(&cfg, &ropts, &topic), shmbus_errc_invalid_config);
  CHECK(topic == NULL);
  shmbus_subscriber_options sopts;
  memset(&sopts, 0, sizeof sopts);
  CHECK_OK(shmbus_topic_create(&cfg, NULL, &topic));
  shmbus_subscriber_t* sub = NULL;
  CHECK_ERRC(shmbus_subscriber_create(topic, &sopts, &sub), shmbus_errc_misuse);
  shmbus_subscriber_options_init(&sopts);
  sopts.wait_mode = (shmbus_wait_mode)7;
  CHECK_ERRC(shmbus_subscriber_create(topic, &sopts, &sub), shmbus_errc_invalid_config);
  CHECK(sub == NULL);
  shmbus_topic_free(&topic);

  /* A file that is no region. */
  char path[] = "/tmp/capi-notaregion-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  char junk[8192];
  memset(junk, 'j', sizeof junk);
  CHECK(write(fd, junk, sizeof junk) == (ssize_t)sizeof junk);
  shmbus_errc by_file = shmbus_topic_open_file(path, &topic);
  shmbus_errc by_fd = shmbus_topic_open_fd(fd, &topic);
  close(fd);
  unlink(path);
  CHECK_ERRC(by_file, shmbus_errc_not_a_region);
  CHECK_ERRC(by_fd, shmbus_errc_not_a_region);
  CHECK(topic == NULL);
  CHECK_ERRC(shmbus_topic_open_file("/nonexistent/capi.shmbus", &topic), shmbus_errc_system_error);
  CHECK(contains(shmbus_last_error_message(), "/nonexistent/capi.shmbus"));
  return 0;
}

/* A "closed" topic: its region file truncated under it. Every call then says region_lost. */
static int a_truncated_topic_file_gives_region_lost_not_a_crash(void) {
  char dir[] = "/tmp/capi-lost-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  shmbus_topic_config cfg;
  shmbus_topic_config_init(&cfg);
  cfg.name = "lost";
  shmbus_region_options ropts;
  shmbus_region_options_init(&ropts);
  ropts.file_backed = 1;
  ropts.directory = dir;
  shmbus_topic_t* topic = NULL;
  CHECK_OK(shmbus_topic_create(&cfg, &ropts, &topic));
  shmbus_publisher_t* pub = NULL;
  shmbus_subscriber_t* sub = NULL;
  CHECK_OK(shmbus_publisher_create(topic, &pub));
  CHECK_OK(shmbus_subscriber_create(topic, NULL, &sub));
  CHECK_OK(shmbus_publisher_publish_copy(pub, "before", 7));
  char file[256];
  snprintf(file, sizeof file, "%s/lost.shmbus", dir);
  CHECK(truncate(file, 4096) == 0);
  shmbus_errc pub_err = shmbus_errc_ok, sub_err = shmbus_errc_ok;
  for (int i = 0; i < 100000 && pub_err == shmbus_errc_ok; ++i)
    pub_err = shmbus_publisher_publish_copy(pub, "after", 6);
  shmbus_sample_t* s = NULL;
  for (int i = 0; i < 100000 && (sub_err == shmbus_errc_ok || sub_err == shmbus_errc_no_data); ++i) {
    sub_err = shmbus_subscriber_take(sub, &s);
    if (sub_err == shmbus_errc_ok) shmbus_sample_release(&s);
  }
  CHECK_ERRC(pub_err, shmbus_errc_region_lost);
  CHECK_ERRC(sub_err, shmbus_errc_region_lost);
  shmbus_loan_t* loan = NULL;
  void* data = NULL;
  CHECK_ERRC(shmbus_publisher_loan(pub, 8, &loan, &data, NULL), shmbus_errc_region_lost);
  CHECK_ERRC(shmbus_subscriber_take(sub, &s), shmbus_errc_region_lost);
  CHECK_ERRC(shmbus_subscriber_take_wait(sub, 1000, &s), shmbus_errc_region_lost);
  shmbus_subscriber_free(&sub);
  shmbus_publisher_free(&pub);
  shmbus_topic_free(&topic);
  unlink(file);
  rmdir(dir);
  return 0;
}

static void* release_there(void* sample) {
  shmbus_sample_t* s = sample;
  return (void*)(intptr_t)shmbus_sample_release(&s);
}

static int samples_are_released_from_any_thread(void) {
  shmbus_topic_config cfg = {0};
  shmbus_topic_t* topic = NULL;
  CHECK_OK(make_topic("threads", &cfg, &topic));
  shmbus_publisher_t* pub = NULL;
  shmbus_subscriber_t* sub = NULL;
  CHECK_OK(shmbus_publisher_create(topic, &pub));
  CHECK_OK(shmbus_subscriber_create(topic, NULL, &sub));
  uint32_t free_before = 0, total = 0, free_after = 0;
  for (int i = 0; i < 50; ++i) {
    CHECK_OK(shmbus_publisher_publish_copy(pub, "t", 1));
    shmbus_sample_t* s = NULL;
    CHECK_OK(shmbus_subscriber_take(sub, &s));
    if (i == 0) CHECK_OK(shmbus_topic_free_chunks(topic, &free_before, &total));
    pthread_t th;
    void* rc = NULL;
    CHECK(pthread_create(&th, NULL, release_there, s) == 0);
    CHECK(pthread_join(th, &rc) == 0);
    CHECK((shmbus_errc)(intptr_t)rc == shmbus_errc_ok);
  }
  /* Released: only the ring's references remain (queue_depth 64 > 50 messages). */
  CHECK_OK(shmbus_topic_free_chunks(topic, &free_after, &total));
  CHECK(free_after == total - 50 && free_before == total - 1);
  shmbus_subscriber_free(&sub);
  shmbus_publisher_free(&pub);
  shmbus_topic_free(&topic);
  return 0;
}

int main(int argc, char** argv) {
  static const test_case tests[] = {
      {"error_codes_have_the_cpp_librarys_names", error_codes_have_the_cpp_librarys_names},
      {"a_published_message_is_taken_in_place_with_its_sequence", a_published_message_is_taken_in_place_with_its_sequence},
      {"stamped_topics_give_the_publish_time", stamped_topics_give_the_publish_time},
      {"null_and_foreign_handles_are_misuse_never_a_crash", null_and_foreign_handles_are_misuse_never_a_crash},
      {"a_loan_is_published_once_and_a_sample_released_once", a_loan_is_published_once_and_a_sample_released_once},
      {"a_full_pool_is_pool_exhausted_and_the_message_names_the_holder",
       a_full_pool_is_pool_exhausted_and_the_message_names_the_holder},
      {"loan_limits_give_too_many_loans_and_message_too_large", loan_limits_give_too_many_loans_and_message_too_large},
      {"an_empty_topic_gives_no_data_and_waits_time_out", an_empty_topic_gives_no_data_and_waits_time_out},
      {"held_samples_are_bounded_by_max_held", held_samples_are_bounded_by_max_held},
      {"slow_subscriber_policies_fail_or_drop", slow_subscriber_policies_fail_or_drop},
      {"a_sample_outlives_its_subscriber_and_topic_handles", a_sample_outlives_its_subscriber_and_topic_handles},
      {"the_event_fd_turns_readable_when_a_message_arrives", the_event_fd_turns_readable_when_a_message_arrives},
      {"bad_configs_and_foreign_regions_are_refused_with_a_reason",
       bad_configs_and_foreign_regions_are_refused_with_a_reason},
      {"a_truncated_topic_file_gives_region_lost_not_a_crash", a_truncated_topic_file_gives_region_lost_not_a_crash},
      {"samples_are_released_from_any_thread", samples_are_released_from_any_thread},
  };
  return run_tests(tests, sizeof tests / sizeof tests[0], argc, argv);
}
