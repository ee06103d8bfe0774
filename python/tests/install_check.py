"""The install check (scripts/test.sh, step 2): the installed package, imported by a clean
interpreter, exchanges one message through a running bus daemon.

    /usr/bin/python3 -I python/tests/install_check.py PREFIX/lib/python3/dist-packages SOCKET

-I ignores PYTHONPATH and the user's site directory, so the package can come only from the
directory given (put first on sys.path here).
"""

import os
import sys

package_dir, socket = sys.argv[1], sys.argv[2]
sys.path.insert(0, package_dir)

import numpy as np  # noqa: E402  (Debian's python3-numpy, beside the package)

import shmbus  # noqa: E402

assert os.path.realpath(shmbus.__file__).startswith(os.path.realpath(package_dir)), shmbus.__file__
with shmbus.Client(socket=socket, name="install_check") as client:
    config = shmbus.TopicConfig("install/python", size_classes=[(4096, 8)], queue_depth=4)
    pub = client.publisher(client.open_topic(config, shmbus.Role.publisher))
    sub = client.subscriber(client.open_topic("install/python", shmbus.Role.subscriber))
    loan = pub.loan(16)
    np.frombuffer(loan, dtype=np.uint8, count=16)[:] = np.arange(16, dtype=np.uint8)
    pub.publish(loan, 16)
    sample = sub.take_wait(5)
    assert sample is not None and bytes(sample) == bytes(range(16)), sample
    sample.release()
    sub.close()
    pub.close()
print(f"install_check.py: shmbus from {os.path.dirname(shmbus.__file__)} exchanged a message")
