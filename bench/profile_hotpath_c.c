/* shmbus_profile_c: profile_hotpath.cpp's loop through the C API (loan, write 8 bytes,
 * publish, take, read 8 bytes, release), for instruction counts next to the C++ one:
 *   valgrind --tool=callgrind --toggle-collect='*hot_loop*' ./shmbus_profile_c [N]  */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shmbus/shmbus.h"

__attribute__((noinline)) static uint64_t hot_loop(shmbus_publisher_t* pub, shmbus_subscriber_t* sub, long n) {
  uint64_t sum = 0;
  for (long i = 0; i < n; ++i) {
    shmbus_loan_t* loan;
    void* data;
    if (shmbus_publisher_loan(pub, 64, &loan, &data, NULL) != shmbus_errc_ok) abort();
    memcpy(data, &i, 8);
    if (shmbus_publisher_publish(pub, &loan, SHMBUS_WHOLE_LOAN) != shmbus_errc_ok) abort();
    shmbus_sample_t* s;
    const void* bytes;
    size_t size;
    if (shmbus_subscriber_take(sub, &s) != shmbus_errc_ok) abort();
    shmbus_sample_data(s, &bytes, &size);
    uint64_t v;
    memcpy(&v, bytes, 8);
    sum += v;
    shmbus_sample_release(&s);
  }
  return sum;
}

int main(int argc, char** argv) {
  long n = argc > 1 ? atol(argv[1]) : 100000;
  shmbus_size_class cls = {64, 64};
  shmbus_topic_config c;
  shmbus_topic_config_init(&c);
  c.name = "profile";
  c.size_classes = &cls;
  c.size_class_count = 1;
  c.queue_depth = 4;
  c.policy = argc > 3 && strcmp(argv[3], "drop_oldest") == 0 ? shmbus_policy_drop_oldest : shmbus_policy_block;
  shmbus_topic_t* topic;
  shmbus_publisher_t* pub;
  shmbus_subscriber_t* sub;
  shmbus_subscriber_options o;
  shmbus_subscriber_options_init(&o);
  o.with_history = 0;
  if (shmbus_topic_create(&c, NULL, &topic) || shmbus_publisher_create(topic, &pub) ||
      shmbus_subscriber_create(topic, &o, &sub))
    return fprintf(stderr, "%s\n", shmbus_last_error_message()), 1;
  printf("%lu\n", (unsigned long)hot_loop(pub, sub, n));
  shmbus_subscriber_free(&sub);
  shmbus_publisher_free(&pub);
  shmbus_topic_free(&topic);
  return 0;
}
