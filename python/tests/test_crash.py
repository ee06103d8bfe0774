"""Faults: a killed Python process's chunks come back; a malformed message is an error, not a
crash."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

import shmbus
from conftest import small_topic, stop, wait_until

CHILD = textwrap.dedent("""
    import sys, time, shmbus
    socket, name = sys.argv[1], sys.argv[2]
    client = shmbus.Client(socket=socket, name="doomed")
    pub = client.publisher(client.open_topic(name, shmbus.Role.publisher))
    sub = client.subscriber(client.open_topic(name, shmbus.Role.subscriber))
    loans = [pub.loan(64) for _ in range(3)]        # loaned, never published
    for i in range(2):
        pub.publish_bytes(bytes([i]) * 32)
    samples = [sub.take_wait(5) for _ in range(2)]  # held, never released
    views = [memoryview(s) for s in samples]
    print("ready", flush=True)
    time.sleep(60)
""")


def usage(topic):
    classes = topic.stats()["classes"]
    return sum(c["loaned"] for c in classes), sum(c["held"] for c in classes)


def test_a_killed_python_processs_loans_and_samples_are_reclaimed(daemon, client, topic_name):
    topic = client.open_topic(small_topic(topic_name, count=16), shmbus.Role.subscriber)
    child = subprocess.Popen([sys.executable, "-c", CHILD, daemon, topic_name], stdout=subprocess.PIPE,
                             env=dict(os.environ))
    try:
        assert child.stdout.readline().strip() == b"ready"
        assert usage(topic) == (3, 2)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        assert child.returncode == -signal.SIGKILL
        wait_until(lambda: usage(topic) == (0, 0), 10, "the daemon to reclaim the dead process's chunks")
    finally:
        stop(child)
    # Nothing is lost: every chunk is free, or holds one of the two messages still queued.
    (pool,) = topic.stats()["classes"]
    assert pool["free"] + pool["in_ring"] == pool["total"] and pool["in_ring"] == 2


def test_a_malformed_message_on_a_typed_topic_raises_malformed_message(client, topic_name):
    typed = typed_config(client, topic_name)
    pub = client.publisher(client.open_topic(typed, shmbus.Role.publisher))
    sub = client.subscriber(client.open_topic(topic_name, shmbus.Role.subscriber))
    # Raw bytes on a typed topic: a hostile or broken publisher. A segment table claiming more
    # than the chunk holds, then garbage pointers.
    pub.publish_bytes(b"\xff\xff\xff\x7f" * 4 + b"\xfe" * 48)
    pub.publish_dict({"sequence": 7, "sensor": "ok"})
    bad, good = sub.take_wait(5), sub.take_wait(5)
    with pytest.raises(shmbus.Error) as e:
        bad.to_dict()
    assert e.value.errc == shmbus.Errc.malformed_message
    assert topic_name in str(e.value)
    assert good.to_dict()["sequence"] == 7  # the interpreter and the subscriber carry on


def typed_config(client, name):
    """A typed topic config with the schema the C++ example records (read from its topic)."""
    from test_typed import telemetry_schema
    type_id, schema = telemetry_schema(client)
    return small_topic(name, chunk=256, count=32, type_id=type_id, schema=schema)
