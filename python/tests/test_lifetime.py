"""Views of samples and loans: read-only where they must be, never dangling, never writing
into a chunk subscribers read."""

import ctypes
import gc

import numpy as np
import pytest

import shmbus
from conftest import small_topic


def held_chunks(topic):
    return sum(c["held"] for c in topic.stats()["classes"])


def test_a_view_outlives_its_sample_its_subscriber_its_topic_and_its_client(daemon, topic_name):
    payload = bytes(range(256)) * 4
    with shmbus.Client(socket=daemon) as publishing:
        pub_topic = publishing.open_topic(small_topic(topic_name, count=8), shmbus.Role.publisher)
        pub = publishing.publisher(pub_topic)

        reading = shmbus.Client(socket=daemon)
        sub_topic = reading.open_topic(topic_name, shmbus.Role.subscriber)
        sub = reading.subscriber(sub_topic)
        pub.publish_bytes(payload)
        sample = sub.take_wait(5)
        view = memoryview(sample)
        array = np.frombuffer(sample, dtype=np.uint8)
        address = sample.address

        del sample
        sub.close()
        del sub, sub_topic
        reading.close()
        del reading
        gc.collect()

        # Cycle the pool many times over: a chunk given back would be loaned again and
        # overwritten; the viewed one must not be.
        for i in range(40):
            pub.publish_bytes(bytes([i % 256]) * len(payload))
        assert bytes(view) == payload
        assert array.tobytes() == payload
        assert array.ctypes.data == address
        assert held_chunks(pub_topic) == 1  # still held, for the views
        view.release()
        del array
        gc.collect()
        # The last view gone, the sample (and its subscriber's slot) is given back.
        assert held_chunks(pub_topic) == 0
        pub.close()


def test_writing_through_a_samples_view_raises(client, topic_name):
    pub = client.publisher(client.open_topic(small_topic(topic_name), shmbus.Role.publisher))
    sub = client.subscriber(client.open_topic(topic_name, shmbus.Role.subscriber))
    pub.publish_bytes(b"\x01\x02\x03\x04")
    sample = sub.take()

    view = memoryview(sample)
    assert view.readonly
    with pytest.raises(TypeError):
        view[0] = 9
    array = np.frombuffer(sample, dtype=np.uint8)
    assert not array.flags.writeable
    with pytest.raises(ValueError):
        array[0] = 9
    with pytest.raises(ValueError):
        array.setflags(write=True)
    with pytest.raises((TypeError, BufferError)):  # asks for a writable buffer
        (ctypes.c_char * 4).from_buffer(sample)
    assert bytes(sample) == b"\x01\x02\x03\x04"


def test_release_while_views_are_alive_gives_the_chunk_back_with_the_last_view(client, topic_name):
    topic = client.open_topic(small_topic(topic_name), shmbus.Role.publisher)
    pub = client.publisher(topic)
    sub = client.subscriber(client.open_topic(topic_name, shmbus.Role.subscriber))
    pub.publish_bytes(b"keep")
    sample = sub.take()
    array = np.frombuffer(sample, dtype=np.uint8)
    sample.release()
    assert not sample.valid
    with pytest.raises(BufferError):
        memoryview(sample)  # no new views of a released sample
    with pytest.raises(shmbus.Error):
        sample.to_dict()
    assert held_chunks(topic) == 1 and array.tobytes() == b"keep"
    del array
    assert held_chunks(topic) == 0


def test_a_loans_view_writes_in_place_and_none_survives_a_publish(client, topic_name):
    pub = client.publisher(client.open_topic(small_topic(topic_name), shmbus.Role.publisher))
    sub = client.subscriber(client.open_topic(topic_name, shmbus.Role.subscriber))
    loan = pub.loan(16)
    view = memoryview(loan)
    assert not view.readonly and view.nbytes >= 16
    view[:5] = b"hello"
    with pytest.raises(shmbus.Error):  # refused: the view could write after publishing
        pub.publish(loan, 5)
    del view
    pub.publish(loan, 5)
    with pytest.raises(BufferError):
        np.frombuffer(loan, dtype=np.uint8)
    assert bytes(sub.take()) == b"hello"
