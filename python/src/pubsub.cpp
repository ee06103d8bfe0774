// shmbus.Publisher, shmbus.Subscriber and shmbus.WaitMode.
#include <pybind11/stl.h>

#include <chrono>

#include "module.hpp"
#include "objects.hpp"
#include "typed.hpp"

namespace shmbus::python {
namespace {

// While a call runs on a Subscriber (the GIL may be released): a second call from another
// thread is refused instead of racing the first.
class OneCallAtATime {
 public:
  explicit OneCallAtATime(Subscriber& s) : s_(s) {
    // acquire, pairing with the release below: this call sees everything the previous one did.
    if (s_.busy.exchange(true, std::memory_order_acquire)) {
      raise_error(Errc::misuse, "shmbus.Subscriber: already in use by another thread (one thread at a time)");
    }
  }
  ~OneCallAtATime() { s_.busy.store(false, std::memory_order_release); }

 private:
  Subscriber& s_;
};

py::object wrap_sample(RawSample&& raw, const Subscriber& sub) {
  auto s = std::make_unique<Sample>();
  s->raw = std::move(raw);
  s->codec = sub.codec;
  return py::cast(std::move(s));
}

// take_wait: waits in slices so that Ctrl-C (a signal handler the interpreter must run)
// interrupts a long wait; the GIL is released while waiting. None on timeout.
py::object take_wait(Subscriber& sub, std::optional<double> timeout_s) {
  OneCallAtATime guard(sub);
  RawSubscriber& raw = sub.get();
  using clock = std::chrono::steady_clock;
  const bool forever = !timeout_s;
  if (timeout_s && !(*timeout_s >= 0)) throw std::invalid_argument("take_wait: timeout must be >= 0 seconds or None");
  const auto deadline = forever ? clock::time_point::max()
                                : clock::now() + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(*timeout_s));
  constexpr auto kSlice = std::chrono::milliseconds(100);
  for (;;) {
    const auto now = clock::now();
    const auto slice = forever ? kSlice : std::min<clock::duration>(kSlice, std::max(deadline - now, clock::duration::zero()));
    Result<RawSample> r = Errc::timeout;
    {
      py::gil_scoped_release unlocked;
      r = raw.take_wait(slice);
    }
    if (r) return wrap_sample(std::move(r.value()), sub);
    if (r.code() != Errc::timeout && r.code() != Errc::no_data) raise_status(r.code(), raw.topic(), "take_wait");
    if (!forever && clock::now() >= deadline) return py::none();
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();
  }
}

SubscriberOptions subscriber_options(WaitMode mode, double spin_time_s, bool with_history) {
  SubscriberOptions o;
  o.wait_mode = mode;
  o.spin_time = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(spin_time_s));
  o.with_history = with_history;
  return o;
}

}  // namespace

RawPublisher& Publisher::get() {
  if (!raw) raise_error(Errc::misuse, "shmbus.Publisher: closed");
  return *raw;
}

RawSubscriber& Subscriber::get() {
  if (!raw) raise_error(Errc::misuse, "shmbus.Subscriber: closed");
  return *raw;
}

void raise_status(Errc code, const Topic& topic, const char* what) {
  raise_error(code, "topic '" + topic.name() + "': " + what + ": " + errc_name(code));
}

std::unique_ptr<Subscriber> make_subscriber(RawSubscriber&& raw, py::object client) {
  auto s = std::make_unique<Subscriber>();
  s->raw = std::make_unique<RawSubscriber>(std::move(raw));
  s->client = std::move(client);
  s->codec = codec_of(s->raw->topic().config());
  return s;
}

std::unique_ptr<Publisher> make_publisher(RawPublisher&& raw, py::object client) {
  auto p = std::make_unique<Publisher>();
  p->raw = std::make_unique<RawPublisher>(std::move(raw));
  p->client = std::move(client);
  return p;
}

void bind_pubsub(py::module_& m) {
  py::enum_<WaitMode>(m, "WaitMode", "How take_wait() waits")
      .value("busy_poll", WaitMode::busy_poll)
      .value("block", WaitMode::block)
      .value("adaptive", WaitMode::adaptive);

  py::class_<Publisher>(m, "Publisher", "Publishes on a topic: loan, write in place, publish")
      .def(py::init([](const Topic& topic) {
             py::gil_scoped_release unlocked;
             return make_publisher(RawPublisher(topic), py::none());
           }),
           py::arg("topic"), "A publisher without a daemon (on a Topic made by Topic.create/open_file)")
      .def(
          "loan",
          [](py::object self, std::size_t size) {
            Publisher& p = self.cast<Publisher&>();
            RawPublisher& raw = p.get();
            Result<RawLoan> r = raw.loan(size);
            if (!r) {
              const Errc code = r.code();
              std::string why = code == Errc::pool_exhausted || code == Errc::message_too_large
                                    ? raw.explain(code, size)
                                    : "topic '" + raw.topic().name() + "': loan of " + std::to_string(size) + " bytes: " + errc_name(code);
              raise_error(code, why);
            }
            auto l = std::make_unique<Loan>();
            l->raw = std::move(r.value());
            l->publisher = self;
            l->owner = &p;
            ++p.open_loans;
            return l;
          },
          py::arg("size"), "A chunk of at least `size` bytes: a writable buffer until published")
      .def(
          "publish",
          [](Publisher& p, Loan& loan, std::optional<std::size_t> used) {
            RawPublisher& raw = p.get();
            if (loan.owner != &p && loan.raw.valid()) raise_error(Errc::misuse, "publish: the loan was made by another publisher");
            if (!loan.raw.valid() || loan.discard_pending) {
              raise_error(Errc::misuse, "publish: the loan was already published or discarded");
            }
            if (loan.exports > 0) {
              // A view alive after publish could write into a chunk subscribers read.
              raise_error(Errc::misuse, "publish: the loan still has " + std::to_string(loan.exports) +
                                            " buffer view(s) (memoryview/numpy array): drop them first (del, or "
                                            "write through a temporary: numpy.frombuffer(loan, ...)[:] = data)");
            }
            if (used && *used > loan.raw.data().size()) {
              throw std::invalid_argument("publish: used=" + std::to_string(*used) + " is more than the loan's " +
                                          std::to_string(loan.raw.data().size()) + " bytes");
            }
            Status st = used ? raw.publish(std::move(loan.raw), *used) : raw.publish(std::move(loan.raw));
            loan.finish();
            if (!st) raise_status(st.code(), raw.topic(), "publish");
          },
          py::arg("loan"), py::arg("used") = py::none(),
          "Publishes the loan's first `used` bytes (all by default); the loan is spent")
      .def(
          "publish_bytes",
          [](Publisher& p, const py::buffer& data) {
            RawPublisher& raw = p.get();
            py::buffer_info info = data.request();
            if (info.ndim > 1 && info.strides.back() != info.itemsize) {
              throw std::invalid_argument("publish_bytes: the buffer must be contiguous");
            }
            const auto bytes = std::span<const std::byte>(static_cast<const std::byte*>(info.ptr),
                                                          static_cast<std::size_t>(info.size * info.itemsize));
            Status st = raw.publish_copy(bytes);
            if (!st) raise_status(st.code(), raw.topic(), "publish_bytes");
          },
          py::arg("data"), "Copies `data` (any buffer) into a new message and publishes it")
      .def("publish_dict", &publish_dict, py::arg("message"),
           "Typed topics: builds the message from a dict (as `shmbus pub --json`) and publishes it")
      .def_property_readonly("topic", [](Publisher& p) { return p.get().topic(); })
      .def_property_readonly("slot", [](Publisher& p) { return p.get().slot(); })
      .def_property_readonly("open_loans", [](const Publisher& p) { return p.open_loans; })
      .def("close",
           [](Publisher& p) {
             if (p.open_loans > 0) {
               raise_error(Errc::misuse, "shmbus.Publisher.close: " + std::to_string(p.open_loans) +
                                             " loan(s) still out: publish or discard them first");
             }
             p.raw.reset();
           })
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](py::object self, const py::args&) { self.attr("close")(); });

  py::class_<Subscriber>(m, "Subscriber", "Takes a topic's messages in order; read them in place")
      .def(py::init([](const Topic& topic, WaitMode wait_mode, double spin_time, bool with_history) {
             auto options = subscriber_options(wait_mode, spin_time, with_history);
             py::gil_scoped_release unlocked;
             RawSubscriber raw(topic, options);
             py::gil_scoped_acquire locked;
             return make_subscriber(std::move(raw), py::none());
           }),
           py::arg("topic"), py::arg("wait_mode") = WaitMode::adaptive, py::arg("spin_time") = 50e-6,
           py::arg("with_history") = true)
      .def(
          "take",
          [](Subscriber& s) -> py::object {
            OneCallAtATime guard(s);
            RawSubscriber& raw = s.get();
            Result<RawSample> r = raw.take();
            if (r) return wrap_sample(std::move(r.value()), s);
            if (r.code() == Errc::no_data) return py::none();
            raise_status(r.code(), raw.topic(), "take");
          },
          "The next message, or None when there is none")
      .def("take_wait", &take_wait, py::arg("timeout") = py::none(),
           "Waits (GIL released) up to `timeout` seconds (None: for good) for the next message; None on timeout")
      .def(
          "wait",
          [](Subscriber& s, double timeout_s) {
            OneCallAtATime guard(s);
            RawSubscriber& raw = s.get();
            Status st;
            {
              py::gil_scoped_release unlocked;
              st = raw.wait(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(timeout_s)));
            }
            if (st) return true;
            if (st.code() == Errc::timeout) return false;
            raise_status(st.code(), raw.topic(), "wait");
          },
          py::arg("timeout"), "True once take() would return a message; False after `timeout` seconds")
      .def("has_data", [](Subscriber& s) { return s.get().has_data(); })
      .def("fileno", [](Subscriber& s) { return s.get().event_fd(); },
           "An fd readable while data is available (for selectors / asyncio add_reader): after it "
           "wakes you, os.read(fd, 8), then take() until None")
      .def_property_readonly("lost", [](Subscriber& s) { return s.get().lost(); })
      .def_property_readonly("topic", [](Subscriber& s) { return s.get().topic(); })
      .def_property_readonly("slot", [](Subscriber& s) { return s.get().slot(); })
      .def_property_readonly("typed", [](const Subscriber& s) { return s.codec != nullptr; })
      .def("__iter__", [](py::object self) { return self; })
      .def("__next__", [](Subscriber& s) { return take_wait(s, std::nullopt); })
      .def("close",
           [](Subscriber& s) {
             OneCallAtATime guard(s);
             s.raw.reset();  // samples still out keep the mapping (they own a reference)
           })
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](py::object self, const py::args&) { self.attr("close")(); });
}

}  // namespace shmbus::python
