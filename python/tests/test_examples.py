"""The Python examples (examples/python/) against C++ processes: the telemetry example's C++
publisher, and the CLI reading numpy frames."""

import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import binary, stop, wait_until

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "python")


def run_example(name, *args, **kw):
    return subprocess.Popen([sys.executable, os.path.join(EXAMPLES, name), *args], env=dict(os.environ), **kw)


def test_the_python_telemetry_subscriber_reads_the_cpp_publisher(daemon):
    sub = run_example("telemetry_sub.py", "--socket", daemon, "--count", "50", "--idle", "5",
                      stdout=subprocess.PIPE, text=True)
    pub = subprocess.Popen([binary("TELEMETRY_PUB"), "--socket", daemon, "--count", "50", "--rate", "2000",
                            "--wait", "20"], stdout=subprocess.DEVNULL)
    try:
        assert pub.wait(30) == 0
        out, _ = sub.communicate(timeout=30)
    finally:
        stop(pub)
        stop(sub)
    assert sub.returncode == 0, out
    assert "received 50 messages" in out


def test_numpy_frames_published_from_python_are_read_by_the_cpp_cli(daemon, client):
    width, height, count = 64, 32, 3
    pub = run_example("frame_pub.py", "--socket", daemon, "--topic", "camera/pytest", "--count", str(count),
                      "--fps", "50", "--width", str(width), "--height", str(height), "--wait", "20",
                      stdout=subprocess.DEVNULL)
    echo = None
    try:
        wait_until(lambda: "camera/pytest" in client.topic_names(), 20, "frame_pub.py to create its topic")
        echo = subprocess.Popen([binary("SHMBUS_CLI"), "--socket", daemon, "echo", "camera/pytest", "--raw",
                                 "--count", str(count), "--timeout", "20"], stdout=subprocess.PIPE)
        out, _ = echo.communicate(timeout=30)
        assert pub.wait(30) == 0
    finally:
        stop(pub)
        if echo:
            stop(echo)
    assert echo.returncode == 0
    base = (np.arange(width * height * 4, dtype=np.uint64) % 256).astype(np.uint8)
    expected = b"".join((base + np.uint8(seq)).tobytes() for seq in range(count))
    assert out == expected


def fnv_checksum(data):
    """examples::checksum() of example_util.hpp: FNV-style over little-endian 8-byte words."""
    h, mask = 0xcbf29ce484222325, (1 << 64) - 1
    whole = len(data) // 8 * 8
    for word in np.frombuffer(data[:whole], dtype="<u8").tolist():
        h = ((h ^ word) * 0x100000001b3) & mask
    for byte in data[whole:]:
        h = ((h ^ byte) * 0x100000001b3) & mask
    return h


def test_typed_numpy_frames_from_python_are_checked_in_place_by_the_cpp_frame_sub(tmp_path):
    import time

    import shmbus
    capnp_file = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "telemetry.capnp")
    request = subprocess.run(["capnp", "compile", "-o-", capnp_file], stdout=subprocess.PIPE, check=True).stdout
    type_id, schema = shmbus.load_schema(request, "CameraFrame")
    width, height, count = 64, 32, 3
    size = width * height * 4
    config = shmbus.TopicConfig("camera", size_classes=[(size + 4096, 8)], queue_depth=4, type_id=type_id,
                                schema=schema)
    topic = shmbus.Topic.create(config, directory=str(tmp_path))
    sub = subprocess.Popen([binary("FRAME_SUB"), "--dir", str(tmp_path), "--count", str(count), "--idle", "5"],
                           stdout=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: any(c["role"] == "subscriber" for c in topic.stats()["clients"]), 10, "frame_sub")
        with shmbus.Publisher(topic) as pub:
            for seq in range(count):
                pixels = ((np.arange(size) + seq) % 256).astype(np.uint8)
                fields = {"sequence": seq, "width": width, "height": height, "bytesPerPixel": 4,
                          "checksum": str(fnv_checksum(pixels.tobytes())), "sendTimeNs": str(time.monotonic_ns())}
                loan = pub.loan_message(fields, "pixels", size)
                frame = np.frombuffer(loan, dtype=np.uint8)
                assert frame.ctypes.data == loan.address and frame.size == size
                frame[:] = pixels  # into the message, in the chunk frame_sub reads
                with pytest.raises(shmbus.Error):
                    pub.publish(loan)  # refused while the view is alive
                del frame
                pub.publish(loan)
        out, _ = sub.communicate(timeout=30)
    finally:
        stop(sub)
    assert sub.returncode == 0, out
    assert out.count("checksum ok") == count and "NOT IN THE MAPPING" not in out
