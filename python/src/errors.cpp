// shmbus.Errc, shmbus.Error, and the translation of the C++ API's exceptions.
#include <kj/exception.h>

#include <iterator>
#include <stdexcept>
#include <utility>

#include "module.hpp"

namespace shmbus::python {
namespace {

// Python names of the codes: the C++ enumerators' own names. A code added to Errc without a
// row here fails to compile (the static_assert below counts them).
constexpr std::pair<Errc, const char*> kErrcNames[] = {
    {Errc::ok, "ok"},
    {Errc::pool_exhausted, "pool_exhausted"},
    {Errc::message_too_large, "message_too_large"},
    {Errc::too_many_segments, "too_many_segments"},
    {Errc::too_many_loans, "too_many_loans"},
    {Errc::too_many_held, "too_many_held"},
    {Errc::no_data, "no_data"},
    {Errc::timeout, "timeout"},
    {Errc::subscriber_queue_full, "subscriber_queue_full"},
    {Errc::malformed_message, "malformed_message"},
    {Errc::type_mismatch, "type_mismatch"},
    {Errc::invalid_config, "invalid_config"},
    {Errc::too_many_publishers, "too_many_publishers"},
    {Errc::too_many_subscribers, "too_many_subscribers"},
    {Errc::access_denied, "access_denied"},
    {Errc::not_a_region, "not_a_region"},
    {Errc::unknown_layout_version, "unknown_layout_version"},
    {Errc::abi_mismatch, "abi_mismatch"},
    {Errc::region_too_short, "region_too_short"},
    {Errc::region_corrupt, "region_corrupt"},
    {Errc::region_unsealed, "region_unsealed"},
    {Errc::region_lost, "region_lost"},
    {Errc::no_space, "no_space"},
    {Errc::system_error, "system_error"},
    {Errc::rate_limited, "rate_limited"},
    {Errc::lease_held, "lease_held"},
    {Errc::no_such_topic, "no_such_topic"},
    {Errc::misuse, "misuse"},
    {Errc::server_gone, "server_gone"},
    {Errc::call_cancelled, "call_cancelled"},
    {Errc::too_many_calls, "too_many_calls"},
    {Errc::lost_history, "lost_history"},
};
static_assert(std::size(kErrcNames) == static_cast<std::size_t>(kLastErrc) + 1);

// shmbus.Error: created once at import, owned by the module (which outlives every call).
PyObject* g_error_type = nullptr;

}  // namespace

void raise_error(Errc code, const std::string& message) {
  py::object error = py::reinterpret_borrow<py::object>(g_error_type)(message);
  error.attr("errc") = py::cast(code);
  PyErr_SetObject(g_error_type, error.ptr());
  throw py::error_already_set();
}

void bind_errors(py::module_& m) {
  py::enum_<Errc> errc(m, "Errc", "Error codes of the bus (include/shmbus/error.hpp)");
  for (const auto& [code, name] : kErrcNames) errc.value(name, code);

  g_error_type = PyErr_NewExceptionWithDoc(
      "shmbus.Error",
      "An error of the bus: str(e) says what was wrong, e.errc is the shmbus.Errc code.",
      PyExc_Exception, nullptr);
  if (!g_error_type) throw py::error_already_set();
  m.attr("Error") = py::handle(g_error_type);  // the module holds the reference

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const shmbus::Error& e) {
      try {
        raise_error(e.code(), e.what());
      } catch (const py::error_already_set& set) {
        // raise_error left the exception set in the interpreter; restore it for pybind11.
        const_cast<py::error_already_set&>(set).restore();
      }
    } catch (const kj::Exception& e) {
      // Cap'n Proto refusing a message read from shared memory (or one being built).
      try {
        raise_error(Errc::malformed_message, e.getDescription().cStr());
      } catch (const py::error_already_set& set) {
        const_cast<py::error_already_set&>(set).restore();
      }
    } catch (const std::invalid_argument& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });
}

}  // namespace shmbus::python
