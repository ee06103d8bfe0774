/* c_peer.h: the C API's per-message work for shmbus_bench, in C. */
#include "c_peer.h"

#include <immintrin.h>
#include <string.h>

shmbus_errc c_peer_publish_seq(shmbus_publisher_t* pub, size_t size, uint64_t seq, int fill) {
  shmbus_loan_t* loan;
  void* data;
  size_t cap;
  shmbus_errc e = shmbus_publisher_loan(pub, size, &loan, &data, &cap);
  if (e != shmbus_errc_ok) return e;
  if (fill) memset(data, (int)(seq & 0xff), size);
  if (size >= 8) memcpy(data, &seq, 8);
  return shmbus_publisher_publish(pub, &loan, SHMBUS_WHOLE_LOAN);
}

shmbus_errc c_peer_take_one(shmbus_subscriber_t* sub, int busy, shmbus_sample_t** sample, uint64_t* seq) {
  if (*sample != NULL) shmbus_sample_release(sample);
  shmbus_errc e;
  if (busy) {
    for (uint32_t i = 1;; ++i) {
      e = shmbus_subscriber_take(sub, sample);
      if (e != shmbus_errc_no_data) break;
      _mm_pause();
      if ((i & 0xfffff) == 0 && (e = shmbus_subscriber_wait(sub, 10000000000LL)) != shmbus_errc_ok) return e;
    }
  } else {
    e = shmbus_subscriber_take_wait(sub, 10000000000LL, sample);
  }
  if (e != shmbus_errc_ok) return e;
  const void* data;
  size_t size;
  shmbus_sample_data(*sample, &data, &size);
  *seq = 0;
  if (size >= 8) memcpy(seq, data, 8);
  return shmbus_errc_ok;
}

static uint64_t sum_bytes(const void* p, size_t n) {
  const uint64_t* w = (const uint64_t*)p;
  uint64_t a = 0, b = 0, c = 0, d = 0;
  size_t words = n / 8, i = 0;
  for (; i + 4 <= words; i += 4) {
    a += w[i];
    b += w[i + 1];
    c += w[i + 2];
    d += w[i + 3];
  }
  for (; i < words; ++i) a += w[i];
  const unsigned char* bytes = (const unsigned char*)p;
  for (size_t j = words * 8; j < n; ++j) a += bytes[j];
  return a + b + c + d;
}

shmbus_errc c_peer_try_take_sum(shmbus_subscriber_t* sub, uint64_t* sum) {
  shmbus_sample_t* s;
  shmbus_errc e = shmbus_subscriber_take(sub, &s);
  if (e != shmbus_errc_ok) return e;
  const void* data;
  size_t size;
  shmbus_sample_data(s, &data, &size);
  *sum += sum_bytes(data, size);
  return shmbus_sample_release(&s);
}
