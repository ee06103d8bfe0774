// The pieces of the `shmbus._shmbus` extension module, one file each, and what they share.
//
// The module wraps the C++ API (include/shmbus/*.hpp) directly; the Python package
// (python/shmbus/__init__.py) re-exports it. docs/python.md is the user's manual.
#pragma once

#include <pybind11/pybind11.h>

#include <string>

#include "shmbus/error.hpp"

namespace shmbus::python {

namespace py = pybind11;

// errors.cpp: the Errc enum, shmbus.Error (an Exception with .errc) and the translation of
// C++ exceptions (shmbus::Error, kj::Exception, std::invalid_argument) into Python ones.
void bind_errors(py::module_& m);
// Raises shmbus.Error(message) with .errc = code; never returns.
[[noreturn]] void raise_error(Errc code, const std::string& message);

// topic.cpp: TopicConfig, Topic (and the enums of its configuration).
void bind_topic(py::module_& m);
// buffers.cpp: Loan and Sample, the buffer exporters over shared memory.
void bind_buffers(py::module_& m);
// pubsub.cpp: Publisher and Subscriber.
void bind_pubsub(py::module_& m);
// client.cpp: Client, the connection to the bus daemon.
void bind_client(py::module_& m);
// message_loan.cpp: MessageLoan, Publisher.loan_message, load_schema (after bind_pubsub).
void bind_message_loan(py::module_& m);
// bench_support.cpp: _cpp_take_ns, the C++ reference of bench/python_bench.py.
void bind_bench_support(py::module_& m);

}  // namespace shmbus::python
