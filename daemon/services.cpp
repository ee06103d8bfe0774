// The daemon's request/response services: creating a service (its region and its two topics,
// which join the topic registry), listing services, re-adopting file-backed ones after a
// restart, and freeing the rows of dead servers and clients (docs/services.md).
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "control/wire.hpp"
#include "lease_watch.hpp"
#include "state.hpp"
#include "topic_admin.hpp"

namespace shmbusd {

namespace {

// The longest one topic's dead-owner reclaim may take when a connection ends (as the sweep's).
constexpr std::chrono::milliseconds kReclaimBudget{100};

constexpr std::string_view kRegionPrefix = "service%";
constexpr std::string_view kRegionSuffix = ".shmsvc";

void check_service_name(const std::string& name) {
  for (char c : name) {
    if (static_cast<unsigned char>(c) < 0x20) throw std::invalid_argument("service names have no control characters");
  }
  if (name.find('%') != std::string::npos) throw std::invalid_argument("'%' is reserved in service names");
}

}  // namespace

ServiceEntry& Daemon::State::create_service(control::ServiceConfig::Reader request, std::string request_schema,
                                            std::string response_schema, uid_t creator) {
  shmbus::ServiceConfig config = shmbus::wire::from_wire(request);
  config.request_schema = std::move(request_schema);
  config.response_schema = std::move(response_schema);
  check_service_name(config.name);
  for (const std::string& t : {shmbus::Service::request_topic_name(config.name), shmbus::Service::response_topic_name(config.name)}) {
    // A topic of that name made by openTopic alone is no service's: never adopt it as one.
    if (topics.count(t)) {
      throw shmbus::Error(shmbus::Errc::type_mismatch, "topic '" + t + "' exists already without its service");
    }
  }
  shmbus::RegionOptions region;
  region.bus_name = opts.bus;
  region.directory = opts.resolved_region_dir();
  region.file_mode = 0600;  // clients get fds over the socket, never open the files
  region.backing = opts.default_backing;
  if (request.getBacking() == control::Backing::ANONYMOUS) region.backing = shmbus::RegionOptions::Backing::anonymous;
  if (request.getBacking() == control::Backing::FILE) region.backing = shmbus::RegionOptions::Backing::file;
  shmbus::Service created = shmbus::Service::create(config, region);
  for (const shmbus::Topic* t : {&created.requests(), &created.responses()}) {
    TopicEntry entry{*t, t->config().schema, false, creator};
    entry.immutable_words = shmbus::detail::immutable_words(*t);
    TopicEntry& added = topics.emplace(t->name(), std::move(entry)).first->second;
    if (leases) leases->arm(t->name(), added);
  }
  spdlog::info("service '{}' created ({} regions)", config.name, region.backing == shmbus::RegionOptions::Backing::file ? "file" : "anonymous");
  return services.emplace(config.name, ServiceEntry{std::move(created), creator, false}).first->second;
}

std::size_t Daemon::State::reclaim_services(const std::set<std::string>& names, bool topics_too) {
  std::size_t n = 0;
  for (auto& [name, entry] : services) {
    if (!names.empty() && !names.count(name)) continue;
    if (std::size_t rows = entry.service.reclaim_dead_rows(); rows != 0) {
      spdlog::info("service '{}': freed {} row(s) of dead servers or clients", name, rows);
      n += rows;
    }
    if (!topics_too) continue;
    for (const std::string& t : {shmbus::Service::request_topic_name(name), shmbus::Service::response_topic_name(name)}) {
      if (auto it = topics.find(t); it != topics.end()) n += it->second.topic.reclaim_dead_owners(kReclaimBudget);
    }
  }
  return n;
}

void Daemon::State::scan_service_files() {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(opts.resolved_region_dir(), ec)) {
    const std::string f = entry.path().filename().string();
    if (f.starts_with(kRegionPrefix) && f.ends_with(kRegionSuffix)) pending_services.insert(entry.path());
  }
  adopt_service_files();
}

void Daemon::State::adopt_service_files() {
  // Only its two topics coming back (a lease waited for) make a waiting service adoptable:
  // until both are in the registry a sweep costs two lookups here, no scan, no system call.
  for (auto it = pending_services.begin(); it != pending_services.end();) {
    const std::filesystem::path file = *it;
    try {
      const std::string stem = file.filename().string();
      std::string name = stem.substr(kRegionPrefix.size(), stem.size() - kRegionPrefix.size() - kRegionSuffix.size());
      std::replace(name.begin(), name.end(), '%', '/');
      if (services.count(name)) {
        it = pending_services.erase(it);
        continue;
      }
      auto req = topics.find(shmbus::Service::request_topic_name(name));
      auto resp = topics.find(shmbus::Service::response_topic_name(name));
      if (req == topics.end() || resp == topics.end()) {
        ++it;  // its topics are not back yet (a lease to wait for): when the registry changes
        continue;
      }
      const int fd = open(file.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
      if (fd < 0) throw std::runtime_error(std::string("cannot open: ") + strerror(errno));
      shmbus::Service svc = [&] {
        try {
          return shmbus::Service::open(fd, req->second.topic, resp->second.topic);  // dups fd
        } catch (...) {
          close(fd);
          throw;
        }
      }();
      close(fd);
      if (svc.name() != name) throw std::runtime_error("records service '" + svc.name() + "', not '" + name + "'");
      spdlog::info("re-adopted service '{}' from {}", name, file.string());
      services.emplace(name, ServiceEntry{std::move(svc), req->second.creator_uid, true});
    } catch (const std::exception& e) {
      // Never delete it: the operator decides.
      spdlog::error("cannot re-adopt service region {}: {}", file.string(), e.what());
    }
    it = pending_services.erase(it);
  }
}

}  // namespace shmbusd
