// The C++ objects behind shmbus.Publisher, Loan, Subscriber and Sample, and how they keep each
// other alive.
//
// Lifetime rules (docs/python.md, "Lifetimes"):
// - A Sample owns its RawSample, which owns a reference to its subscriber's core, and so to
//   the mapping of the topic: a Sample (and every memoryview or numpy array of it, whose
//   buffer `obj` is the Sample) stays readable after its Subscriber, Topic and Client are gone.
// - A Loan holds its Publisher object (a RawLoan must not outlive its RawPublisher), and a
//   Publisher refuses close() while it has loans out.
// - Buffers are counted (`exports`): release()/discard() while views exist only marks the
//   sample or loan, and the last view's release does it. A chunk never goes back to the pool,
//   and a loan is never published, while a view could still read or write it.
#pragma once

#include <pybind11/pybind11.h>

#include <atomic>
#include <memory>
#include <string>

#include "shmbus/raw.hpp"

namespace shmbus::codec {
class MessageCodec;
}

namespace shmbus::python {

namespace py = pybind11;

struct Publisher {
  std::unique_ptr<RawPublisher> raw;  // null once closed
  py::object client;                  // the shmbus.Client it was made through, or None
  std::size_t open_loans = 0;         // Loans neither published nor discarded
  std::shared_ptr<const codec::MessageCodec> codec;  // made at the first publish_dict()

  RawPublisher& get();  // raises Error(misuse) once closed
};

struct Loan {
  RawLoan raw;              // invalid once published or discarded
  py::object publisher;     // the shmbus.Publisher: keeps `owner` alive
  Publisher* owner = nullptr;
  int exports = 0;          // live buffer views
  bool discard_pending = false;  // discard() asked while views were alive

  // Gives the chunk back (if still loaned) and stops counting this loan as open.
  void finish() noexcept;
  ~Loan() { finish(); }
};

struct Subscriber {
  std::unique_ptr<RawSubscriber> raw;  // null once closed
  py::object client;
  std::shared_ptr<const codec::MessageCodec> codec;  // null for raw topics
  // Set while a call runs (the GIL is released while it waits): a RawSubscriber belongs to
  // one thread at a time, so a second thread's call (or a close()) is refused, not raced.
  std::atomic<bool> busy{false};

  RawSubscriber& get();
};

struct Sample {
  RawSample raw;            // invalid once released
  std::shared_ptr<const codec::MessageCodec> codec;
  int exports = 0;
  bool release_pending = false;  // release() asked while views were alive
};

// Wrap a C++ publisher/subscriber; `client`: the shmbus.Client it was made through, or None.
std::unique_ptr<Publisher> make_publisher(RawPublisher&& raw, py::object client);
std::unique_ptr<Subscriber> make_subscriber(RawSubscriber&& raw, py::object client);

// Raises Error(code) for a failed hot-path call: "topic 'NAME': WHAT: <code's text>".
[[noreturn]] void raise_status(Errc code, const Topic& topic, const char* what);

}  // namespace shmbus::python
