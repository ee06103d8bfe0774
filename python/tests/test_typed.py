"""Typed topics without generated code: Sample.to_dict() and Publisher.publish_dict() through
the schema recorded with the topic, against the C++ telemetry example and `shmbus echo`."""

import json
import math
import subprocess
import time

import pytest

import shmbus
from conftest import binary, small_topic, stop, wait_until


def open_when_created(client, name, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return client.open_existing_topic(name, shmbus.Role.subscriber)
        except shmbus.Error as e:
            if e.errc != shmbus.Errc.no_such_topic or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def telemetry_schema(client):
    """(type_id, schema) of the C++ example's Telemetry type, as telemetry_pub records it."""
    try:
        topic = client.open_existing_topic("telemetry", shmbus.Role.subscriber)
    except shmbus.Error:
        # telemetry_pub creates the topic, then gives up at once for want of a subscriber.
        subprocess.run([binary("TELEMETRY_PUB"), "--socket", str(client.socket_path), "--count", "0", "--wait", "0"],
                       stdout=subprocess.DEVNULL, timeout=30)
        topic = client.open_existing_topic("telemetry", shmbus.Role.subscriber)
    assert topic.config.type_id != 0 and topic.config.schema
    return topic.config.type_id, topic.config.schema


def test_the_cpp_telemetry_publishers_messages_decode_to_dicts(daemon, client):
    count = 20
    pub = subprocess.Popen([binary("TELEMETRY_PUB"), "--socket", daemon, "--count", str(count), "--rate", "2000",
                            "--wait", "20"], stdout=subprocess.DEVNULL)
    try:
        topic = open_when_created(client, "telemetry")
        with client.subscriber(topic, with_history=False) as sub:
            messages = []
            while len(messages) < count:
                sample = sub.take_wait(10)
                assert sample is not None, f"only {len(messages)} of {count} messages arrived"
                messages.append(sample.to_dict())
        assert pub.wait(20) == 0
    finally:
        stop(pub)
    assert [m["sequence"] for m in messages] == list(range(count))  # ints, not JSON's strings
    for m in messages:
        assert m["sensor"] == "imu0"
        assert math.isclose(m["temperatureC"], 21.5 + math.sin(m["sequence"] / 50.0))
        assert m["position"] == {"x": m["sequence"] * 0.01, "y": 1.0, "z": -0.5}
        assert m["sendTimeNs"] > 0


def test_a_dict_published_from_python_is_decoded_by_shmbus_echo(daemon, client, topic_name):
    type_id, schema = telemetry_schema(client)
    config = small_topic(topic_name, chunk=256, count=32, type_id=type_id, schema=schema)
    topic = client.open_topic(config, shmbus.Role.publisher)
    echo = subprocess.Popen([binary("SHMBUS_CLI"), "--socket", daemon, "--json", "echo", topic_name, "--count", "1",
                             "--timeout", "20"], stdout=subprocess.PIPE)
    try:
        wait_until(lambda: any(c["role"] == "subscriber" for c in topic.stats()["clients"]), 10, "echo to subscribe")
        with client.publisher(topic) as pub:
            pub.publish_dict({"sequence": 42, "sensor": "py", "temperatureC": -3.25,
                              "position": {"x": 1.5, "y": 0, "z": 2}})
        out, _ = echo.communicate(timeout=20)
    finally:
        stop(echo)
    assert echo.returncode == 0
    message = json.loads(out)["message"]
    assert int(message["sequence"]) == 42  # Cap'n Proto's JSON writes 64-bit ints as strings
    assert message["sensor"] == "py" and message["temperatureC"] == -3.25
    assert message["position"] == {"x": 1.5, "y": 0, "z": 2}


def test_publish_dict_names_a_field_the_type_does_not_have_and_publishes_nothing(client, topic_name):
    type_id, schema = telemetry_schema(client)
    topic = client.open_topic(small_topic(topic_name, chunk=256, type_id=type_id, schema=schema),
                              shmbus.Role.publisher)
    pub = client.publisher(topic)
    sub = client.subscriber(client.open_topic(topic_name, shmbus.Role.subscriber))
    with pytest.raises(ValueError, match="sensr"):
        pub.publish_dict({"sequence": 1, "sensr": "typo"})
    with pytest.raises(ValueError):
        pub.publish_dict({"sequence": "not a number"})
    assert sub.take() is None
    assert sum(c["loaned"] for c in topic.stats()["classes"]) == 0  # the failed loans went back
    pub.publish_dict({"sequence": 2})
    assert sub.take().to_dict()["sequence"] == 2


def test_dict_calls_on_a_raw_topic_say_it_is_raw(client, topic_name):
    pub = client.publisher(client.open_topic(small_topic(topic_name), shmbus.Role.publisher))
    sub = client.subscriber(client.open_topic(topic_name, shmbus.Role.subscriber))
    assert not sub.typed
    with pytest.raises(shmbus.Error, match="raw bytes") as e:
        pub.publish_dict({"a": 1})
    assert e.value.errc == shmbus.Errc.misuse
    pub.publish_bytes(b"x")
    with pytest.raises(shmbus.Error, match="raw bytes"):
        sub.take().to_dict()
