#!/usr/bin/python3
"""Python subscriber of the C++ telemetry publisher (examples/telemetry_pub.cpp).

Waits for the topic "telemetry" that telemetry_pub creates through the bus daemon, then reads
each message through the schema recorded with the topic: no generated code in Python.

    shmbusd &
    telemetry_pub --count 1000 &
    PYTHONPATH=build/python examples/python/telemetry_sub.py [--socket PATH] [--count N] [--idle 3]
"""

import argparse
import sys
import time

import shmbus


def open_when_created(client, name, timeout):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return client.open_existing_topic(name, shmbus.Role.subscriber)
        except shmbus.Error as e:
            if e.errc != shmbus.Errc.no_such_topic or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bus", default="default")
    ap.add_argument("--socket", default="")
    ap.add_argument("--count", type=int, default=0, help="stop after N messages (0: until idle)")
    ap.add_argument("--idle", type=float, default=3.0, help="stop after this many seconds without a message")
    args = ap.parse_args()

    with shmbus.Client(bus=args.bus, socket=args.socket, name="telemetry_sub.py") as client:
        topic = open_when_created(client, "telemetry", timeout=10)
        received = lost = 0
        with client.subscriber(topic) as sub:
            while args.count == 0 or received < args.count:
                sample = sub.take_wait(args.idle)
                if sample is None:
                    break
                with sample:  # gives the chunk back at the end of the block
                    m = sample.to_dict()
                    lost += sample.lost_before
                if received % 100 == 0:
                    print(f"telemetry_sub.py: #{m['sequence']} {m['sensor']} {m['temperatureC']:.2f} C "
                          f"at ({m['position']['x']:.2f}, {m['position']['y']:.2f}, {m['position']['z']:.2f})",
                          flush=True)
                received += 1
        print(f"telemetry_sub.py: received {received} messages, lost {lost}", flush=True)
    return 0 if received > 0 and (args.count == 0 or received == args.count) else 1


if __name__ == "__main__":
    sys.exit(main())
