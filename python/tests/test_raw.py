"""Raw messages: loans and samples as buffers over shared memory, round trips with C++
processes, waiting, the event fd, errors carrying their Errc."""

import os
import selectors
import subprocess
import threading
import time

import numpy as np
import pytest

import shmbus
from conftest import binary, small_topic, stop, wait_until


def pub_sub(client, name, **fields):
    pub_topic = client.open_topic(small_topic(name, **fields), shmbus.Role.publisher)
    sub_topic = client.open_topic(name, shmbus.Role.subscriber)
    return client.publisher(pub_topic), client.subscriber(sub_topic)


def test_a_numpy_frame_written_into_a_loan_is_read_in_place_by_the_subscriber(client, topic_name):
    pub, sub = pub_sub(client, topic_name)
    frame = np.arange(1024, dtype=np.uint32)
    loan = pub.loan(frame.nbytes)
    np.frombuffer(loan, dtype=np.uint32, count=frame.size)[:] = frame  # writes the chunk in place
    pub.publish(loan, frame.nbytes)

    sample = sub.take()
    assert sample is not None and len(sample) == frame.nbytes
    received = np.frombuffer(sample, dtype=np.uint32)
    assert np.array_equal(received, frame)
    # Zero copy: the array's data is the chunk itself, in this process's read-only mapping of
    # the publisher's pool.
    assert received.ctypes.data == sample.address
    where = sub.topic.locate_payload(sample.address)
    assert where is not None and where["writable"] is False
    assert memoryview(sample).readonly
    assert bytes(sample) == frame.tobytes()
    assert sub.take() is None  # nothing more


def test_a_loan_published_twice_raises_misuse(client, topic_name):
    pub, _ = pub_sub(client, topic_name)
    loan = pub.loan(8)
    pub.publish(loan)
    with pytest.raises(shmbus.Error) as e:
        pub.publish(loan)
    assert e.value.errc == shmbus.Errc.misuse
    assert "already published" in str(e.value)
    with pytest.raises(BufferError):  # and its chunk is no longer writable through it
        memoryview(loan)


def test_publish_refuses_a_loan_with_a_live_view_until_the_view_is_gone(client, topic_name):
    pub, sub = pub_sub(client, topic_name)
    loan = pub.loan(4)
    view = memoryview(loan)
    view[:4] = b"abcd"
    with pytest.raises(shmbus.Error) as e:
        pub.publish(loan, 4)
    assert e.value.errc == shmbus.Errc.misuse and "view" in str(e.value)
    assert sub.take() is None  # nothing was published
    view.release()
    pub.publish(loan, 4)
    assert bytes(sub.take()) == b"abcd"


def test_messages_published_by_the_cpp_cli_arrive_in_python(daemon, client, topic_name):
    cli = binary("SHMBUS_CLI")
    topic = client.open_topic(small_topic(topic_name), shmbus.Role.subscriber)
    with client.subscriber(topic) as sub:
        subprocess.run([cli, "--socket", daemon, "pub", topic_name, "hello from C++", "--count", "3"],
                       check=True, timeout=30)
        got = [bytes(sub.take_wait(5)) for _ in range(3)]
    assert got == [b"hello from C++"] * 3


def test_messages_published_from_python_arrive_in_the_cpp_cli(daemon, client, topic_name):
    cli = binary("SHMBUS_CLI")
    topic = client.open_topic(small_topic(topic_name), shmbus.Role.publisher)
    echo = subprocess.Popen([cli, "--socket", daemon, "echo", topic_name, "--raw", "--count", "2", "--timeout", "20"],
                            stdout=subprocess.PIPE)
    try:
        wait_until(lambda: any(c["role"] == "subscriber" for c in topic.stats()["clients"]), 10, "the echo subscriber")
        with client.publisher(topic) as pub:
            pub.publish_bytes(b"first|")
            loan = pub.loan(6)
            np.frombuffer(loan, dtype=np.uint8, count=6)[:] = np.frombuffer(b"second", dtype=np.uint8)
            pub.publish(loan, 6)
        out, _ = echo.communicate(timeout=20)
    finally:
        stop(echo)
    assert echo.returncode == 0
    assert out == b"first|second"


def test_take_wait_releases_the_gil_while_it_waits(client, topic_name):
    pub, sub = pub_sub(client, topic_name)

    def publish_later():  # runs only if the waiting thread let go of the GIL
        time.sleep(0.2)
        pub.publish_bytes(b"late")

    t = threading.Thread(target=publish_later)
    start = time.monotonic()
    t.start()
    sample = sub.take_wait(10)
    t.join()
    assert sample is not None and bytes(sample) == b"late"
    assert time.monotonic() - start < 5


def test_take_wait_returns_none_after_its_timeout(client, topic_name):
    _, sub = pub_sub(client, topic_name)
    start = time.monotonic()
    assert sub.take_wait(0.2) is None
    assert 0.15 < time.monotonic() - start < 3


def test_iteration_yields_messages_in_order(client, topic_name):
    pub, sub = pub_sub(client, topic_name)
    for i in range(3):
        pub.publish_bytes(bytes([i]))
    got = []
    for sample in sub:
        got.append(bytes(sample))
        sample.release()
        if len(got) == 3:
            break
    assert got == [b"\x00", b"\x01", b"\x02"]


def test_the_event_fd_wakes_a_selector_when_a_message_arrives(client, topic_name):
    pub, sub = pub_sub(client, topic_name)
    with selectors.DefaultSelector() as sel:
        sel.register(sub.fileno(), selectors.EVENT_READ)
        assert sel.select(timeout=0.1) == []  # nothing yet
        pub.publish_bytes(b"wake")
        events = sel.select(timeout=5)
        assert len(events) == 1
        os.read(sub.fileno(), 8)
        assert bytes(sub.take()) == b"wake"


def test_errors_carry_their_errc_and_say_what_was_wrong(client, topic_name):
    with pytest.raises(shmbus.Error) as e:
        client.open_existing_topic(topic_name + "/absent", shmbus.Role.subscriber)
    assert e.value.errc == shmbus.Errc.no_such_topic
    assert "absent" in str(e.value)

    pub, _ = pub_sub(client, topic_name)
    with pytest.raises(shmbus.Error) as e:
        pub.loan(1 << 20)  # larger than the topic's chunks
    assert e.value.errc == shmbus.Errc.message_too_large

    loans = []
    with pytest.raises(shmbus.Error) as e:
        for _ in range(64):
            loans.append(pub.loan(16))
    assert e.value.errc in (shmbus.Errc.pool_exhausted, shmbus.Errc.too_many_loans)
    with pytest.raises(shmbus.Error) as e:
        pub.close()  # loans are out
    assert e.value.errc == shmbus.Errc.misuse
    for loan in loans:
        loan.discard()
    pub.close()
    with pytest.raises(shmbus.Error) as e:
        pub.loan(8)
    assert e.value.errc == shmbus.Errc.misuse and "closed" in str(e.value)

    with pytest.raises(ValueError):
        shmbus.TopicConfig("x", no_such_field=1)


def test_asyncio_add_reader_on_the_event_fd_receives_messages_published_by_a_thread(client, topic_name):
    import asyncio

    pub, sub = pub_sub(client, topic_name)

    async def receive(count):
        loop = asyncio.get_running_loop()
        got, done = [], loop.create_future()

        def on_readable():
            os.read(sub.fileno(), 8)
            while (sample := sub.take()) is not None:
                got.append(bytes(sample))
            if len(got) >= count and not done.done():
                done.set_result(None)

        loop.add_reader(sub.fileno(), on_readable)
        try:
            publisher = threading.Thread(target=lambda: [pub.publish_bytes(b"m%d" % i) or time.sleep(0.01)
                                                         for i in range(count)])
            publisher.start()
            await asyncio.wait_for(done, 10)
            publisher.join()
        finally:
            loop.remove_reader(sub.fileno())
        return got

    assert asyncio.run(receive(5)) == [b"m0", b"m1", b"m2", b"m3", b"m4"]


def test_topics_without_a_daemon_anonymous_and_file_backed(tmp_path):
    anonymous = shmbus.Topic.create(small_topic("py/no-daemon"))
    assert str(anonymous.path) in ("", ".")  # a memfd: no file anywhere
    with shmbus.Publisher(anonymous) as pub, shmbus.Subscriber(anonymous) as sub:
        pub.publish_bytes(b"anon")
        assert bytes(sub.take()) == b"anon"

    created = shmbus.Topic.create(small_topic("py/file"), directory=str(tmp_path))
    assert created.path and os.path.exists(created.path)
    opened = shmbus.Topic.open_file(created.path)  # as a second process would
    with shmbus.Publisher(created) as pub, shmbus.Subscriber(opened) as sub:
        pub.publish_bytes(b"file")
        assert bytes(sub.take_wait(5)) == b"file"
    with pytest.raises(shmbus.Error) as e:
        shmbus.Topic.open_file(str(tmp_path / "absent.shmbus"))
    assert "absent.shmbus" in str(e.value)


def test_a_subscriber_waiting_in_one_thread_refuses_a_call_from_another(client, topic_name):
    pub, sub = pub_sub(client, topic_name)
    waiter = threading.Thread(target=sub.take_wait, args=(1.0,))
    waiter.start()
    try:
        time.sleep(0.2)  # the waiter is inside take_wait, the GIL released
        with pytest.raises(shmbus.Error) as e:
            sub.take()
        assert e.value.errc == shmbus.Errc.misuse and "thread" in str(e.value)
        with pytest.raises(shmbus.Error):
            sub.close()
    finally:
        waiter.join()
    sub.close()  # free once the waiter is done


def test_a_client_without_arguments_finds_the_daemon_through_shmbus_socket(daemon, monkeypatch):
    monkeypatch.setenv("SHMBUS_SOCKET", daemon)
    with shmbus.Client() as c:
        assert str(c.socket_path) == daemon and c.connected
