// The counters of the JetStream and service rules in the bridge's status file, beside the
// topics' counters: "jetstream_exports" (per durable log), "jetstream_imports" (per local log),
// "service_exports" and "service_imports" (per service).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "jetstream_exporter.hpp"
#include "jetstream_importer.hpp"
#include "service_exporter.hpp"
#include "service_importer.hpp"

namespace shmbus::bridge {

inline std::string with_rule_status(const std::string& status_json, const JetStreamExporter& js_exporter,
                                    const JetStreamImporter& js_importer, const ServiceExporter& service_exporter,
                                    const ServiceImporter& service_importer) {
  nlohmann::json j = nlohmann::json::parse(status_json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return status_json;
  j["jetstream_exports"] = js_exporter.status();
  j["jetstream_imports"] = js_importer.status();
  j["service_exports"] = service_exporter.status();
  j["service_imports"] = service_importer.status();
  return j.dump(1);
}

}  // namespace shmbus::bridge
