// shmbus.Loan and shmbus.Sample: buffer exporters over shared memory.
//
// The buffer protocol is implemented by hand (not pybind11's def_buffer) for two things
// pybind11's does not give: a count of live views (bf_releasebuffer), so that a chunk is
// never released or published under a view, and a refusal of writable views of a sample
// (PyBuffer_FillInfo with readonly=1 raises BufferError for a PyBUF_WRITABLE request).
#include "module.hpp"
#include "objects.hpp"
#include "typed.hpp"

namespace shmbus::python {
namespace {

template <typename T>
T* object_of(PyObject* obj) noexcept {
  try {
    return py::handle(obj).cast<T*>();
  } catch (...) {
    return nullptr;
  }
}

int sample_getbuffer(PyObject* obj, Py_buffer* view, int flags) {
  Sample* s = object_of<Sample>(obj);
  if (!s || !s->raw.valid() || s->release_pending) {
    PyErr_SetString(PyExc_BufferError, "shmbus.Sample: released, its message is gone");
    view->obj = nullptr;
    return -1;
  }
  auto bytes = s->raw.data();
  // readonly=1: a request for a writable view fails here with BufferError.
  if (PyBuffer_FillInfo(view, obj, const_cast<std::byte*>(bytes.data()), static_cast<Py_ssize_t>(bytes.size()),
                        /*readonly=*/1, flags) != 0) {
    return -1;
  }
  ++s->exports;
  return 0;
}

void sample_releasebuffer(PyObject* obj, Py_buffer*) {
  Sample* s = object_of<Sample>(obj);
  if (!s) return;
  if (--s->exports == 0 && s->release_pending) s->raw = RawSample{};
}

int loan_getbuffer(PyObject* obj, Py_buffer* view, int flags) {
  Loan* l = object_of<Loan>(obj);
  if (!l || !l->raw.valid() || l->discard_pending) {
    PyErr_SetString(PyExc_BufferError, "shmbus.Loan: published or discarded, its chunk is no longer yours");
    view->obj = nullptr;
    return -1;
  }
  auto bytes = l->raw.data();
  if (PyBuffer_FillInfo(view, obj, bytes.data(), static_cast<Py_ssize_t>(bytes.size()), /*readonly=*/0, flags) != 0) {
    return -1;
  }
  ++l->exports;
  return 0;
}

void loan_releasebuffer(PyObject* obj, Py_buffer*) {
  Loan* l = object_of<Loan>(obj);
  if (!l) return;
  if (--l->exports == 0 && l->discard_pending) l->finish();
}

void install_buffer_slots(py::handle type, getbufferproc get, releasebufferproc release) {
  // pybind11 gives a class declared with py::buffer_protocol() its own PyBufferProcs.
  PyBufferProcs* procs = reinterpret_cast<PyTypeObject*>(type.ptr())->tp_as_buffer;
  procs->bf_getbuffer = get;
  procs->bf_releasebuffer = release;
}

std::uintptr_t address_of(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }

}  // namespace

void Loan::finish() noexcept {
  raw = RawLoan{};
  if (owner) {
    --owner->open_loans;
    owner = nullptr;
  }
}

void bind_buffers(py::module_& m) {
  py::class_<Loan> loan(m, "Loan", py::buffer_protocol(),
                        "A chunk loaned from a topic's pool: a writable buffer, then Publisher.publish(loan)");
  loan.def("__len__", [](const Loan& l) { return l.raw.valid() ? l.raw.data().size() : 0; })
      .def_property_readonly("nbytes", [](const Loan& l) { return l.raw.valid() ? l.raw.data().size() : 0; })
      .def_property_readonly("address", [](const Loan& l) { return address_of(l.raw.data().data()); },
                             "address of the chunk's first payload byte in this process (0 once published)")
      .def_property_readonly("chunk", [](const Loan& l) { return l.raw.chunk(); })
      .def_property_readonly("valid", [](const Loan& l) { return l.raw.valid() && !l.discard_pending; },
                             "False once published or discarded")
      .def_property_readonly("views", [](const Loan& l) { return l.exports; }, "live buffer views")
      .def("discard",
           [](Loan& l) {
             if (l.exports > 0) l.discard_pending = true;  // the last view's release gives it back
             else l.finish();
           },
           "Gives the chunk back unpublished (once the last view of it is gone)")
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](Loan& l, const py::args&) {
        if (l.raw.valid()) {  // left the block unpublished
          if (l.exports > 0) l.discard_pending = true;
          else l.finish();
        }
      });
  install_buffer_slots(loan, loan_getbuffer, loan_releasebuffer);

  py::class_<Sample> sample(m, "Sample", py::buffer_protocol(),
                            "A message read in place: a read-only buffer over shared memory");
  sample.def("__len__", [](const Sample& s) { return s.raw.valid() ? s.raw.data().size() : 0; })
      .def_property_readonly("nbytes", [](const Sample& s) { return s.raw.valid() ? s.raw.data().size() : 0; })
      .def_property_readonly("address", [](const Sample& s) { return address_of(s.raw.data().data()); },
                             "address of the message's first byte in this process's mapping (0 once released)")
      .def_property_readonly("sequence", [](const Sample& s) { return s.raw.sequence(); })
      .def_property_readonly("lost_before", [](const Sample& s) { return s.raw.lost_before(); })
      .def_property_readonly("publish_time_ns", [](const Sample& s) { return s.raw.valid() ? s.raw.publish_time_ns() : 0; })
      .def_property_readonly("chunk", [](const Sample& s) { return s.raw.chunk(); })
      .def_property_readonly("valid", [](const Sample& s) { return s.raw.valid() && !s.release_pending; })
      .def_property_readonly("views", [](const Sample& s) { return s.exports; }, "live buffer views")
      .def_property_readonly("topic", [](const Sample& s) -> py::object {
        if (!s.raw.valid()) return py::none();
        return py::cast(s.raw.topic());
      })
      .def("to_dict", &sample_to_dict,
           "Typed topics: the message as a dict, decoded through the topic's recorded schema")
      .def("release",
           [](Sample& s) {
             if (s.exports > 0) s.release_pending = true;  // the last view's release does it
             else s.raw = RawSample{};
           },
           "Gives the chunk back to the pool now, or when the last view of it is gone")
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](Sample& s, const py::args&) {
        if (s.exports > 0) s.release_pending = true;
        else s.raw = RawSample{};
      });
  install_buffer_slots(sample, sample_getbuffer, sample_releasebuffer);
}

}  // namespace shmbus::python
