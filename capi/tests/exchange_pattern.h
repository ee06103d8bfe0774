/* The messages capi_process_test.c and capi_cpp_peer exchange, in C that both compile. Message
 * i is kExchangeMessageSize bytes: i as a native uint64, then (i * 7 + k) & 0xff at byte k. */
#ifndef SHMBUS_CAPI_TESTS_EXCHANGE_PATTERN_H
#define SHMBUS_CAPI_TESTS_EXCHANGE_PATTERN_H

#include <stdint.h>
#include <string.h>

enum { kExchangeMessageSize = 64 };

static inline void write_exchange_message(void* dst, uint64_t i) {
  unsigned char* p = (unsigned char*)dst;
  memcpy(p, &i, sizeof i);
  for (unsigned k = sizeof i; k < kExchangeMessageSize; ++k) p[k] = (unsigned char)((i * 7 + k) & 0xff);
}

static inline int exchange_message_is(const void* src, uint64_t i) {
  unsigned char want[kExchangeMessageSize];
  write_exchange_message(want, i);
  return memcmp(src, want, kExchangeMessageSize) == 0;
}

#endif
