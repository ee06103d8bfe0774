"""Fixtures of the Python package's tests: a private shmbusd, clients, and the C++ programs.

The build tree sets PYTHONPATH (the package in build/python), SHMBUSD and SHMBUS_CLI (the
binaries), TELEMETRY_PUB (the C++ example); see python/CMakeLists.txt.
"""

import itertools
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

import shmbus

_names = itertools.count()


def binary(var):
    path = os.environ.get(var)
    if not path or not os.path.exists(path):
        pytest.skip(f"${var} is not set to a built binary (run through ctest)")
    return path


def stop(proc, timeout=10):
    """Ends a child process we started (SIGTERM, then SIGKILL) and reaps it."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def topic_name(request):
    """A topic name of its own for each test."""
    return f"py/{request.node.name[:40]}/{os.getpid()}/{next(_names)}"


@pytest.fixture(scope="module")
def daemon():
    """A shmbusd of our own on a private runtime directory; yields its socket path."""
    exe = binary("SHMBUSD")
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    runtime = tempfile.mkdtemp(prefix="shmbus-pytest-", dir=base)
    proc = subprocess.Popen([exe, "--runtime-dir", runtime, "--log-level", "warn"])
    socket = os.path.join(runtime, "default.sock")
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(socket):
            assert proc.poll() is None, f"shmbusd exited with {proc.returncode}"
            assert time.monotonic() < deadline, "shmbusd did not create its socket within 10 s"
            time.sleep(0.02)
        yield socket
    finally:
        stop(proc)
        shutil.rmtree(runtime, ignore_errors=True)


@pytest.fixture
def client(daemon):
    with shmbus.Client(socket=daemon, name="pytest") as c:
        yield c


def small_topic(name, chunk=4096, count=16, **fields):
    return shmbus.TopicConfig(name, size_classes=[(chunk, count)], queue_depth=4, **fields)


def wait_until(predicate, timeout=5.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.01)
