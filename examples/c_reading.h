/* The message of examples/c_publisher.c and examples/raw_sub.cpp: a plain C struct, published
 * as raw bytes (no schema). Both sides compile this header, so they agree on the layout; a
 * real system would add a version field, as every shared struct of shmbus has. */
#ifndef SHMBUS_EXAMPLES_C_READING_H
#define SHMBUS_EXAMPLES_C_READING_H

#include <stdint.h>

#define C_READING_TOPIC "c-readings"

typedef struct c_reading {
  uint64_t sequence;     /* counts from 0 per publisher run */
  uint64_t send_time_ns; /* CLOCK_MONOTONIC, stamped just before publish */
  double temperature_c;
  char sensor[16];       /* NUL-terminated */
  uint64_t check;        /* c_reading_check() of the fields above */
} c_reading;

/* A checksum the reader recomputes: a message read in place must be the one written. */
static inline uint64_t c_reading_check(const c_reading* r) {
  uint64_t h = r->sequence * 0x9E3779B97F4A7C15ull ^ r->send_time_ns;
  for (int i = 0; i < 16; ++i) h = (h ^ (unsigned char)r->sensor[i]) * 0x100000001B3ull;
  return h;
}

#endif
