// The extension module `shmbus._shmbus`: the package python/shmbus re-exports it.
#include "module.hpp"

PYBIND11_MODULE(_shmbus, m) {
  m.doc() = "shmbus: zero-copy shared-memory data bus (extension module; import shmbus instead)";
  shmbus::python::bind_errors(m);
  shmbus::python::bind_topic(m);
  shmbus::python::bind_buffers(m);
  shmbus::python::bind_pubsub(m);
  shmbus::python::bind_client(m);
  shmbus::python::bind_message_loan(m);
  shmbus::python::bind_bench_support(m);
}
