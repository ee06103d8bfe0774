/* The "c" peer of shmbus_bench: the same messages as the "shmbus" peer, through the C API
 * (include/shmbus/shmbus.h), with the per-message work compiled as C in c_peer.c, as a C
 * program would do it. Each returns shmbus_errc_ok or the failing code. */
#ifndef SHMBUS_BENCH_C_PEER_H
#define SHMBUS_BENCH_C_PEER_H

#include <stddef.h>
#include <stdint.h>

#include "shmbus/shmbus.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Loans `size` bytes, writes seq into the first 8 (and, with fill, seq's low byte into the
   rest), publishes the whole loan: publish_seq() of bench_main.cpp. */
shmbus_errc c_peer_publish_seq(shmbus_publisher_t* pub, size_t size, uint64_t seq, int fill);
/* Takes one message (busy: spinning on take; else take_wait), gives its seq; the sample stays
   held in *sample (released by the caller, or by the next call when *sample is not NULL). */
shmbus_errc c_peer_take_one(shmbus_subscriber_t* sub, int busy, shmbus_sample_t** sample, uint64_t* seq);
/* take; on success adds the payload's byte sum to *sum and releases. no_data when empty. */
shmbus_errc c_peer_try_take_sum(shmbus_subscriber_t* sub, uint64_t* sum);

#ifdef __cplusplus
}
#endif

#endif
