// shmbus.TopicConfig, shmbus.Policy and shmbus.Topic.
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include "module.hpp"
#include "shmbus/topic.hpp"

namespace shmbus::python {
namespace {

py::dict stats_dict(const TopicStats& stats) {
  py::list classes;
  for (const SizeClassUsage& c : stats.classes) {
    py::dict row;
    row["chunk_size"] = c.chunk_size;
    row["total"] = c.total;
    row["free"] = c.free;
    row["in_ring"] = c.in_ring;
    row["loaned"] = c.loaned;
    row["held"] = c.held;
    classes.append(row);
  }
  py::list clients;
  for (const ClientSlotInfo& s : stats.clients) {
    py::dict row;
    row["role"] = s.role == ClientSlotInfo::Role::publisher ? "publisher" : "subscriber";
    row["slot"] = s.slot;
    row["pid"] = s.pid;
    row["messages"] = s.messages;
    row["lost"] = s.lost;
    row["backlog"] = s.backlog;
    row["chunks"] = s.chunks;
    clients.append(row);
  }
  py::dict out;
  out["published"] = stats.published;
  out["classes"] = classes;
  out["clients"] = clients;
  return out;
}

double seconds_of(std::chrono::nanoseconds d) { return std::chrono::duration<double>(d).count(); }
std::chrono::nanoseconds nanoseconds_of(double seconds) {
  if (!(seconds >= 0)) throw std::invalid_argument("a duration must be >= 0 seconds");
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(seconds));
}

}  // namespace

void bind_topic(py::module_& m) {
  py::enum_<SlowSubscriberPolicy>(m, "Policy", "What a publisher meets when a subscriber falls a queue behind")
      .value("block", SlowSubscriberPolicy::block)
      .value("drop_oldest", SlowSubscriberPolicy::drop_oldest)
      .value("fail_publish", SlowSubscriberPolicy::fail_publish);

  py::class_<TopicConfig>(m, "TopicConfig",
                          "A topic's configuration (include/shmbus/config.hpp); keyword arguments set fields")
      .def(py::init([](const std::string& name, const py::kwargs& fields) {
             TopicConfig config;
             config.name = name;
             // Set each keyword through the field's own property, so a wrong type or an unknown
             // name is refused exactly as an assignment would be.
             py::object view = py::cast(&config, py::return_value_policy::reference);
             for (const auto& [key, value] : fields) {
               if (!py::hasattr(view, key)) {
                 throw std::invalid_argument("TopicConfig has no field '" + py::str(key).cast<std::string>() + "'");
               }
               view.attr(key) = value;
             }
             return config;
           }),
           py::arg("name") = "")
      .def_readwrite("name", &TopicConfig::name)
      .def_property(
          "size_classes",
          [](const TopicConfig& c) {
            py::list out;
            for (const SizeClass& s : c.size_classes) out.append(py::make_tuple(s.chunk_size, s.count));
            return out;
          },
          [](TopicConfig& c, const std::vector<std::pair<std::uint64_t, std::uint32_t>>& classes) {
            c.size_classes.clear();
            for (const auto& [size, count] : classes) c.size_classes.push_back({size, count});
          },
          "[(chunk_size, count), ...]")
      .def_readwrite("queue_depth", &TopicConfig::queue_depth)
      .def_readwrite("history_depth", &TopicConfig::history_depth)
      .def_readwrite("policy", &TopicConfig::policy)
      .def_property(
          "block_timeout", [](const TopicConfig& c) { return seconds_of(c.block_timeout); },
          [](TopicConfig& c, double s) { c.block_timeout = nanoseconds_of(s); }, "seconds")
      .def_readwrite("max_publishers", &TopicConfig::max_publishers)
      .def_readwrite("max_subscribers", &TopicConfig::max_subscribers)
      .def_readwrite("max_loans_per_publisher", &TopicConfig::max_loans_per_publisher)
      .def_readwrite("max_held_per_subscriber", &TopicConfig::max_held_per_subscriber)
      .def_readwrite("max_segments", &TopicConfig::max_segments)
      .def_readwrite("max_message_size", &TopicConfig::max_message_size)
      .def_readwrite("type_id", &TopicConfig::type_id)
      .def_property(
          "schema", [](const TopicConfig& c) { return py::bytes(c.schema); },
          [](TopicConfig& c, const py::bytes& b) { c.schema = std::string(b); },
          "the recorded Cap'n Proto schema (bytes)")
      .def_readwrite("stamp_publish_time", &TopicConfig::stamp_publish_time)
      .def("__repr__", [](const TopicConfig& c) {
        return "<shmbus.TopicConfig '" + c.name + "' type_id=" + std::to_string(c.type_id) + ">";
      });

  py::class_<Topic>(m, "Topic", "A handle to one topic's shared region (include/shmbus/topic.hpp)")
      .def_static(
          "create",
          [](const TopicConfig& config, const std::optional<std::filesystem::path>& directory, bool payload_in_region) {
            RegionOptions options;
            if (directory) {
              options.backing = RegionOptions::Backing::file;
              options.directory = *directory;
            }
            options.payload_in_region = payload_in_region;
            return Topic::create(config, options);
          },
          py::arg("config"), py::arg("directory") = py::none(), py::arg("payload_in_region") = false,
          "Creates a topic without a daemon: anonymous (a sealed memfd), or a file in `directory`")
      .def_static(
          "open_file",
          [](const std::filesystem::path& path, double lease_wait) {
            return Topic::open_file(path, std::chrono::duration_cast<std::chrono::milliseconds>(nanoseconds_of(lease_wait)));
          },
          py::arg("path"), py::arg("lease_wait") = 2.0, py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("name", &Topic::name)
      .def_property_readonly("config", &Topic::config)
      .def_property_readonly("path", &Topic::path)
      .def_property_readonly("fd", &Topic::fd)
      .def_property_readonly("revoked", &Topic::revoked)
      .def("stats", [](const Topic& t) { return stats_dict(t.stats()); },
           "{'published', 'classes': [{chunk_size, total, free, in_ring, loaned, held}], 'clients': [...]}")
      .def("describe_pool", &Topic::describe_pool)
      .def(
          "locate_payload",
          [](const Topic& t, std::uintptr_t address) -> py::object {
            auto where = t.locate_payload(reinterpret_cast<const void*>(address));
            if (!where) return py::none();
            py::dict d;
            d["pool"] = where->pool;
            d["offset"] = where->offset;
            d["mapping_base"] = reinterpret_cast<std::uintptr_t>(where->mapping_base);
            d["mapping_size"] = where->mapping_size;
            d["writable"] = where->writable;
            return d;
          },
          py::arg("address"), "Which payload mapping of this topic holds `address` (None: none)")
      .def(
          "reclaim_dead_owners",
          [](Topic& t, double budget) { return t.reclaim_dead_owners(nanoseconds_of(budget)); },
          py::arg("budget") = 2.0, py::call_guard<py::gil_scoped_release>())
      .def("__repr__", [](const Topic& t) { return "<shmbus.Topic '" + t.name() + "'>"; });
}

}  // namespace shmbus::python
