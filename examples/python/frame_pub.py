#!/usr/bin/python3
"""Publishes numpy frames, written straight into the shared chunk subscribers read.

Each frame (height x width x 4 bytes, a moving gradient) is computed by numpy directly into a
loaned chunk of the topic "camera/py" (raw bytes): no copy on the way to subscribers.
Read it from C++ with the CLI, e.g. `shmbus hz camera/py` or `shmbus echo camera/py --raw`.

    PYTHONPATH=build/python examples/python/frame_pub.py [--socket PATH] [--count 60] [--fps 30]
        [--width 2048 --height 1024] [--wait 10]
"""

import argparse
import sys
import time

import numpy as np

import shmbus


def gradient(width, height):
    """Frame 0; frame n is (frame 0 + n) mod 256, byte by byte."""
    return (np.arange(width * height * 4, dtype=np.uint64) % 256).astype(np.uint8).reshape(height, width, 4)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bus", default="default")
    ap.add_argument("--socket", default="")
    ap.add_argument("--topic", default="camera/py")
    ap.add_argument("--count", type=int, default=60)
    ap.add_argument("--fps", type=float, default=30)
    ap.add_argument("--width", type=int, default=2048)
    ap.add_argument("--height", type=int, default=1024)
    ap.add_argument("--wait", type=float, default=10, help="seconds to wait for a subscriber")
    args = ap.parse_args()

    base = gradient(args.width, args.height)
    frame_bytes = base.nbytes
    # One size class of frame-sized chunks: 8 frames is all the memory the topic ever uses.
    config = shmbus.TopicConfig(args.topic, size_classes=[(frame_bytes, 8)], queue_depth=4,
                                policy=shmbus.Policy.drop_oldest)
    with shmbus.Client(bus=args.bus, socket=args.socket, name="frame_pub.py") as client:
        topic = client.open_topic(config, shmbus.Role.publisher)
        with client.publisher(topic) as pub:
            deadline = time.monotonic() + args.wait
            while not any(c["role"] == "subscriber" for c in topic.stats()["clients"]):
                if time.monotonic() > deadline:
                    print(f"frame_pub.py: no subscriber after {args.wait} s, giving up", flush=True)
                    return 1
                time.sleep(0.02)
            print(f"frame_pub.py: publishing {args.count} frames of {frame_bytes >> 10} KiB on '{args.topic}'",
                  flush=True)
            period, next_at = 1.0 / args.fps, time.monotonic()
            for seq in range(args.count):
                loan = pub.loan(frame_bytes)
                pixels = np.frombuffer(loan, dtype=np.uint8, count=frame_bytes).reshape(base.shape)
                np.add(base, np.uint8(seq % 256), out=pixels)  # computed into shared memory
                del pixels  # no view of the chunk may outlive its publication
                pub.publish(loan, frame_bytes)
                next_at += period
                time.sleep(max(0.0, next_at - time.monotonic()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
