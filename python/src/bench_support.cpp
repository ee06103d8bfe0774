// shmbus._shmbus._cpp_take_ns: the C++ take measured the way bench/python_bench.py measures the
// Python one, in the same process and on the same subscriber, so that their difference is the
// cost of the binding alone. For benchmarks only (the leading underscore keeps it out of the API).
#include <pybind11/stl.h>

#include <chrono>
#include <vector>

#include "module.hpp"
#include "objects.hpp"

namespace shmbus::python {

void bind_bench_support(py::module_& m) {
  m.def(
      "_cpp_take_ns",
      [](Publisher& publisher, Subscriber& subscriber, std::size_t message_bytes, std::size_t batch, std::size_t rounds) {
        RawPublisher& pub = publisher.get();
        RawSubscriber& sub = subscriber.get();
        const std::vector<std::byte> message(message_bytes, std::byte{0x5a});
        std::vector<double> per_take_ns;
        py::gil_scoped_release unlocked;
        for (std::size_t r = 0; r < rounds; ++r) {
          for (std::size_t i = 0; i < batch; ++i) {
            if (!pub.publish_copy(message)) throw Error(Errc::misuse, "_cpp_take_ns: publish failed");
          }
          const auto start = std::chrono::steady_clock::now();
          for (std::size_t i = 0; i < batch; ++i) {
            Result<RawSample> s = sub.take();  // released at the end of the iteration
            if (!s) throw Error(s.code(), "_cpp_take_ns: take failed");
          }
          const auto took = std::chrono::steady_clock::now() - start;
          per_take_ns.push_back(std::chrono::duration<double, std::nano>(took).count() / static_cast<double>(batch));
        }
        return per_take_ns;
      },
      py::arg("publisher"), py::arg("subscriber"), py::arg("message_bytes"), py::arg("batch"), py::arg("rounds"),
      "Per round: mean ns of one C++ take + release over `batch` queued messages");
}

}  // namespace shmbus::python
