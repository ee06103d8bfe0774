#!/usr/bin/python3
"""The Python package's costs (issue 19): take + numpy.frombuffer + release of an 8 MiB frame
against a 64 B message (zero copy: within 2x), and the Python take at 64 B against the C++ take
(at most 5 us above), measured in one process, one run, on the same subscribers.

    PYTHONPATH=build/python /usr/bin/python3 bench/python_bench.py [--rounds 200] [--batch 16]

No daemon: the topics are anonymous regions made in this process (Topic.create). Each round
queues `batch` messages (untimed), then times taking them all; the figure is the median over
rounds of the mean per message.
"""

import argparse
import statistics
import sys
import time

import numpy as np

import shmbus
from shmbus import _shmbus

MiB = 1024 * 1024


def pair(name, message_bytes, batch):
    config = shmbus.TopicConfig(name, size_classes=[(message_bytes, batch + 8)], queue_depth=batch,
                                max_held_per_subscriber=4, policy=shmbus.Policy.fail_publish)
    topic = shmbus.Topic.create(config)
    return shmbus.Publisher(topic), shmbus.Subscriber(topic, wait_mode=shmbus.WaitMode.busy_poll)


def python_take_ns(pub, sub, message_bytes, batch, rounds, with_numpy):
    per_take = []
    address_checked = False
    for _ in range(rounds):
        for _ in range(batch):
            loan = pub.loan(message_bytes)  # no copy on the publishing side either
            pub.publish(loan, message_bytes)
        start = time.perf_counter_ns()
        for _ in range(batch):
            sample = sub.take()
            if with_numpy:
                array = np.frombuffer(sample, dtype=np.uint8)
                if not address_checked:  # zero copy: the array is the chunk
                    assert array.ctypes.data == sample.address and array.nbytes == message_bytes
                    address_checked = True
                del array
            sample.release()
        per_take.append((time.perf_counter_ns() - start) / batch)
    return statistics.median(per_take)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--batch", type=int, default=16)
    args = ap.parse_args()

    small_pub, small_sub = pair("bench/py/64B", 64, args.batch)
    big_pub, big_sub = pair("bench/py/8MiB", 8 * MiB, args.batch)
    for _ in range(2):  # warm up: fault in the pools' pages, fill the caches
        python_take_ns(small_pub, small_sub, 64, args.batch, 10, True)
        python_take_ns(big_pub, big_sub, 8 * MiB, args.batch, 3, True)

    numpy_64 = python_take_ns(small_pub, small_sub, 64, args.batch, args.rounds, True)
    numpy_8m = python_take_ns(big_pub, big_sub, 8 * MiB, args.batch, args.rounds, True)
    py_64 = python_take_ns(small_pub, small_sub, 64, args.batch, args.rounds, False)
    cpp_64 = statistics.median(_shmbus._cpp_take_ns(small_pub, small_sub, 64, args.batch, args.rounds))

    print(f"python take+frombuffer+release  64 B : {numpy_64 / 1000:8.3f} us")
    print(f"python take+frombuffer+release 8 MiB : {numpy_8m / 1000:8.3f} us   ratio 8 MiB/64 B = "
          f"{numpy_8m / numpy_64:.2f} (target <= 2)")
    print(f"python take+release 64 B             : {py_64 / 1000:8.3f} us")
    print(f"C++    take+release 64 B             : {cpp_64 / 1000:8.3f} us   python - C++ = "
          f"{(py_64 - cpp_64) / 1000:.3f} us (target <= 5)")
    ok = numpy_8m <= 2 * numpy_64 and py_64 - cpp_64 <= 5000
    print("python_bench:", "within targets" if ok else "OUTSIDE TARGETS")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
