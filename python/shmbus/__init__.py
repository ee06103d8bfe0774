"""shmbus: a zero-copy shared-memory data bus, from Python.

    import shmbus, numpy as np
    with shmbus.Client() as client:
        topic = client.open_topic("camera", shmbus.Role.subscriber)
        with client.subscriber(topic) as sub:
            for sample in sub:                       # waits with the GIL released
                frame = np.frombuffer(sample, np.uint8)   # read in place: no copy, read-only
                ...

A Sample is a read-only buffer over the message in shared memory; every view of it
(memoryview, numpy array) keeps it, and so its chunk, alive. A Loan is a writable buffer over
a chunk loaned from the topic's pool, published with Publisher.publish(loan). The manual is
docs/python.md.
"""

from ._shmbus import (  # noqa: F401  (the package's API)
    Client,
    Errc,
    Error,
    Loan,
    MessageLoan,
    Policy,
    Publisher,
    Role,
    Sample,
    Subscriber,
    Topic,
    TopicConfig,
    WaitMode,
    load_schema,
)

__all__ = [
    "Client", "Errc", "Error", "Loan", "MessageLoan", "Policy", "Publisher", "Role", "Sample", "Subscriber",
    "Topic", "TopicConfig", "WaitMode", "load_schema",
]
