/* A C publisher: asks the bus daemon for the raw topic "c-readings", waits for a subscriber,
 * and publishes c_reading messages (examples/c_reading.h), each written in place into a loaned
 * chunk of shared memory. examples/raw_sub.cpp (C++) reads them.
 *
 *   c_publisher [--socket PATH] [--count 1000] [--rate 1000] [--wait 10]
 *
 * Registered with the daemon, so that its loans come back should it die mid-message. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <shmbus/shmbus.h>

#include "c_reading.h"

static const char* flag(int argc, char** argv, const char* name, const char* fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (strcmp(argv[i], name) == 0) return argv[i + 1];
  return fallback;
}

static uint64_t monotonic_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_ns(uint64_t ns) {
  struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
  nanosleep(&ts, NULL);
}

/* Prints what failed, in the library's words, and says to stop. */
static int failed(const char* what, shmbus_errc code) {
  fprintf(stderr, "c_publisher: %s: %s (%s)\n", what, shmbus_errc_name(code), shmbus_last_error_message());
  return 1;
}

int main(int argc, char** argv) {
  const uint64_t count = strtoull(flag(argc, argv, "--count", "1000"), NULL, 10);
  const uint64_t rate = strtoull(flag(argc, argv, "--rate", "1000"), NULL, 10);
  const uint64_t wait_s = strtoull(flag(argc, argv, "--wait", "10"), NULL, 10);
  setvbuf(stdout, NULL, _IOLBF, 0);

  shmbus_client_options options;
  shmbus_client_options_init(&options);
  options.socket = flag(argc, argv, "--socket", NULL); /* NULL: the bus "default" */
  options.name = "c_publisher";
  shmbus_client_t* client = NULL;
  shmbus_errc err = shmbus_client_create(&options, &client);
  if (err != shmbus_errc_ok) return failed("connecting to the bus daemon", err);

  /* Whoever comes first creates the topic; raw_sub.cpp asks for the same configuration. */
  shmbus_size_class sizes = {sizeof(c_reading), 256};
  shmbus_topic_config config;
  shmbus_topic_config_init(&config);
  config.name = C_READING_TOPIC;
  config.size_classes = &sizes;
  config.size_class_count = 1;
  config.queue_depth = 64;
  shmbus_topic_t* topic = NULL;
  shmbus_publisher_t* pub = NULL;
  int rc = 1;
  if ((err = shmbus_client_open_topic(client, &config, shmbus_role_publisher, &topic)) != shmbus_errc_ok) {
    failed("opening the topic", err);
    goto done;
  }
  if ((err = shmbus_client_publisher(client, topic, &pub)) != shmbus_errc_ok) {
    failed("registering the publisher", err);
    goto done;
  }

  printf("c_publisher: topic '%s', waiting for a subscriber\n", C_READING_TOPIC);
  uint32_t subscribers = 0;
  for (uint64_t waited = 0; subscribers == 0 && waited < wait_s * 100; ++waited) {
    if ((err = shmbus_topic_subscriber_count(topic, &subscribers)) != shmbus_errc_ok) goto done;
    if (subscribers == 0) sleep_ns(10 * 1000 * 1000);
  }
  if (subscribers == 0) {
    printf("c_publisher: no subscriber after %llu s, giving up\n", (unsigned long long)wait_s);
    goto done;
  }

  const uint64_t period = 1000000000u / (rate ? rate : 1);
  uint64_t next = monotonic_ns();
  for (uint64_t i = 0; i < count; ++i) {
    shmbus_loan_t* loan = NULL;
    void* data = NULL;
    err = shmbus_publisher_loan(pub, sizeof(c_reading), &loan, &data, NULL);
    if (err == shmbus_errc_pool_exhausted) { /* subscribers hold every chunk: skip one */
      fprintf(stderr, "c_publisher: %s\n", shmbus_last_error_message());
      continue;
    }
    if (err != shmbus_errc_ok) {
      failed("loan", err);
      goto done;
    }
    c_reading* r = data; /* written in place: this is the shared memory the reader maps */
    memset(r, 0, sizeof *r);
    r->sequence = i;
    r->temperature_c = 20.0 + (double)(i % 100) / 10.0;
    snprintf(r->sensor, sizeof r->sensor, "c-sensor-%u", (unsigned)(i % 4));
    r->send_time_ns = monotonic_ns();
    r->check = c_reading_check(r);
    if ((err = shmbus_publisher_publish(pub, &loan, sizeof *r)) != shmbus_errc_ok) {
      failed("publish", err); /* the loan is gone either way: publish took it */
      goto done;
    }
    next += period;
    uint64_t now = monotonic_ns();
    if (next > now) sleep_ns(next - now);
  }
  printf("c_publisher: published %llu readings\n", (unsigned long long)count);
  rc = 0;

done:
  shmbus_publisher_free(&pub);
  shmbus_topic_free(&topic);
  shmbus_client_free(&client);
  return rc;
}
