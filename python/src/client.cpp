// shmbus.Client and shmbus.Role: the connection to the bus daemon.
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include "module.hpp"
#include "objects.hpp"
#include "shmbus/client.hpp"

namespace shmbus::python {

namespace {

struct PyClient {
  std::unique_ptr<Client> client;  // null once closed
  Client& get() {
    if (!client) raise_error(Errc::misuse, "shmbus.Client: closed");
    return *client;
  }
};

}  // namespace

void bind_client(py::module_& m) {
  py::enum_<Role>(m, "Role", "Which side of a topic a process takes")
      .value("publisher", Role::publisher)
      .value("subscriber", Role::subscriber);

  py::class_<PyClient>(m, "Client", "A connection to the bus daemon shmbusd (include/shmbus/client.hpp)")
      .def(py::init([](const std::string& bus, const std::optional<std::filesystem::path>& socket,
                       const std::string& name, double timeout, bool reconnect) {
             ClientOptions o;
             o.bus = bus;
             if (socket) o.socket = *socket;
             o.name = name;
             o.timeout = std::chrono::milliseconds(static_cast<std::int64_t>(timeout * 1000));
             o.reconnect = reconnect;
             py::gil_scoped_release unlocked;
             return PyClient{std::make_unique<Client>(std::move(o))};
           }),
           py::arg("bus") = "default", py::arg("socket") = py::none(), py::arg("name") = "",
           py::arg("timeout") = 5.0, py::arg("reconnect") = true,
           "Connects to the bus daemon (socket: explicit path; else $SHMBUS_SOCKET, else the bus's socket)")
      .def(
          "open_topic",
          [](PyClient& c, const TopicConfig& config, Role role) {
            Client& client = c.get();
            py::gil_scoped_release unlocked;
            return client.open_topic(config, role);
          },
          py::arg("config"), py::arg("role"), "Opens (creating if needed) the topic config.name")
      .def(
          "open_topic",
          [](PyClient& c, const std::string& name, Role role) {
            Client& client = c.get();
            py::gil_scoped_release unlocked;
            return client.open_topic(name, role);
          },
          py::arg("name"), py::arg("role"), "Opens (creating with the daemon's defaults) the topic `name`")
      .def(
          "open_existing_topic",
          [](PyClient& c, const std::string& name, Role role) {
            Client& client = c.get();
            py::gil_scoped_release unlocked;
            return client.open_existing_topic(name, role);
          },
          py::arg("name"), py::arg("role"), "Opens a topic the bus already has (else Error(no_such_topic))")
      .def(
          "publisher",
          [](py::object self, const Topic& topic) {
            Client& client = self.cast<PyClient&>().get();
            std::optional<RawPublisher> raw;
            {
              py::gil_scoped_release unlocked;
              raw.emplace(client.publisher(topic));
            }
            return make_publisher(std::move(*raw), self);
          },
          py::arg("topic"), "A publisher registered with the daemon (reclaimed if this process dies)")
      .def(
          "subscriber",
          [](py::object self, const Topic& topic, WaitMode wait_mode, double spin_time, bool with_history) {
            Client& client = self.cast<PyClient&>().get();
            SubscriberOptions o;
            o.wait_mode = wait_mode;
            o.spin_time = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(spin_time));
            o.with_history = with_history;
            std::optional<RawSubscriber> raw;
            {
              py::gil_scoped_release unlocked;
              raw.emplace(client.subscriber(topic, o));
            }
            return make_subscriber(std::move(*raw), self);
          },
          py::arg("topic"), py::arg("wait_mode") = WaitMode::adaptive, py::arg("spin_time") = 50e-6,
          py::arg("with_history") = true, "A subscriber registered with the daemon (reclaimed if this process dies)")
      .def("status",
           [](PyClient& c) {
             BusStatusInfo s;
             {
               Client& client = c.get();
               py::gil_scoped_release unlocked;
               s = client.status();
             }
             py::dict d;
             d["bus_name"] = s.bus_name;
             d["daemon_pid"] = s.daemon_pid;
             d["protocol_version"] = s.protocol_version;
             d["topics"] = s.topics;
             d["clients"] = s.clients;
             d["socket_path"] = s.socket_path;
             return d;
           })
      .def("topic_names",
           [](PyClient& c) {
             std::vector<TopicListing> listing;
             {
               Client& client = c.get();
               py::gil_scoped_release unlocked;
               listing = client.list_topics();
             }
             std::vector<std::string> names;
             for (const auto& t : listing) names.push_back(t.config.name);
             return names;
           })
      .def_property_readonly("connected", [](PyClient& c) { return c.get().connected(); })
      .def_property_readonly("socket_path", [](PyClient& c) { return c.get().socket_path(); })
      .def("close",
           [](PyClient& c) {
             // Publishers and subscribers made through it keep working, no longer looked after
             // by the daemon (~Client() tells it to forget their registrations first).
             py::gil_scoped_release unlocked;
             c.client.reset();
           })
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](PyClient& c, const py::args&) {
        py::gil_scoped_release unlocked;
        c.client.reset();
      });
}

}  // namespace shmbus::python
