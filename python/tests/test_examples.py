"""The Python examples (examples/python/) against C++ processes: the telemetry example's C++
publisher, and the CLI reading numpy frames."""

import os
import subprocess
import sys

import numpy as np

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
