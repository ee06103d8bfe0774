// The daemon's registry: creating and re-adopting topic regions, and giving back what dead
// clients held.
#include <spdlog/spdlog.h>

#include <sys/stat.h>
#include <unistd.h>

#include "control/wire.hpp"
#include "file_lease_probe.hpp"
#include "lease_watch.hpp"
#include "state.hpp"
#include "topic_admin.hpp"

namespace shmbusd {

ClientState::~ClientState() {
  if (peer.pidfd >= 0) close(peer.pidfd);
}

void refuse(const ClientState& client, control::RefusalCode code, const std::string& reason) {
  spdlog::warn("{}: refused ({}): {}", client.tag(), shmbus::wire::refusal_name(code), reason);
  kj::throwFatalException(shmbus::wire::refusal(code, reason));
}

namespace {

void check_name(const std::string& name) {
  if (name.empty() || name.size() > 255) throw std::invalid_argument("topic names are 1..255 bytes");
  for (char c : name) {
    if (static_cast<unsigned char>(c) < 0x20) throw std::invalid_argument("topic names have no control characters");
  }
  if (name.find('%') != std::string::npos) throw std::invalid_argument("'%' is reserved in topic names");
}

}  // namespace

TopicEntry& Daemon::State::open_or_create(control::TopicConfig::Reader request, std::string type_schema,
                                          uid_t creator) {
  std::string name = request.getName();
  if (auto it = topics.find(name); it != topics.end()) {
    std::uint64_t have = it->second.topic.config().type_id;
    if (request.getTypeId() != 0 && have != 0 && request.getTypeId() != have) {
      throw shmbus::Error(shmbus::Errc::type_mismatch, "topic '" + name + "' carries type id " + std::to_string(have) +
                                                           ", not " + std::to_string(request.getTypeId()));
    }
    return it->second;
  }
  check_name(name);
  shmbus::TopicConfig config = shmbus::wire::merge_request(opts.defaults, request);
  config.name = name;
  config.schema = std::move(type_schema);  // recorded in the region, so tools need no daemon to decode
  shmbus::RegionOptions region;
  region.bus_name = opts.bus;
  region.directory = opts.resolved_region_dir();
  region.file_mode = 0600;  // clients get the fd over the socket, never open the file
  region.backing = opts.default_backing;
  if (request.getBacking() == control::Backing::ANONYMOUS) region.backing = shmbus::RegionOptions::Backing::anonymous;
  if (request.getBacking() == control::Backing::FILE) region.backing = shmbus::RegionOptions::Backing::file;
  if (const TopicSettings* s = settings_for(opts, name)) {
    apply(*s, config);
    if (s->backing) region.backing = *s->backing;
  }
  shmbus::Topic created = shmbus::Topic::create(config, region);
  TopicEntry entry{created, created.config().schema, false, creator};
  entry.immutable_words = shmbus::detail::immutable_words(created);
  spdlog::info("topic '{}' created ({} region, {} bytes{}{})", name,
               entry.topic.path().empty() ? "anonymous" : "file", entry.topic.mapping_size(),
               entry.topic.path().empty() ? "" : " at ", entry.topic.path().string());
  TopicEntry& added = topics.emplace(name, std::move(entry)).first->second;
  if (leases) leases->arm(name, added);
  return added;
}

std::size_t Daemon::State::reclaim(ClientState& client, pid_t dead_pid) {
  std::size_t n = 0;
  for (auto it = client.regs.begin(); it != client.regs.end();) {
    auto t = topics.find(it->topic);
    if (t == topics.end()) {
      it = client.regs.erase(it);
      continue;
    }
    shmbus::Topic& topic = t->second.topic;
    if (dead_pid != 0) {
      // Only slots the dead process itself owns: the connection may live on in a child.
      bool owned = false;
      for (const shmbus::ClientSlotInfo& ci : topic.stats().clients) {
        owned |= ci.slot == it->slot && ci.pid == dead_pid &&
                 (ci.role == shmbus::ClientSlotInfo::Role::publisher) == it->publisher;
      }
      if (!owned) {
        ++it;
        continue;
      }
    }
    bool done = shmbus::detail::reclaim_slot(topic, it->publisher ? shmbus::ClientSlotInfo::Role::publisher
                                                 : shmbus::ClientSlotInfo::Role::subscriber,
                                   it->slot, it->generation);
    if (done) {
      ++n;
      spdlog::info("{}: reclaimed {} slot {} (generation {}) of topic '{}'", client.tag(),
                   it->publisher ? "publisher" : "subscriber", it->slot, it->generation, it->topic);
    }
    it = client.regs.erase(it);
  }
  return n;
}

void Daemon::State::reload_rules() {
  if (opts.config_file.empty()) {
    spdlog::info("SIGHUP: no config file, access rules stay the built-in default");
    return;
  }
  try {
    Options fresh = opts;
    load_config_file(opts.config_file, fresh);
    opts.rules = std::move(fresh.rules);
    spdlog::info("reloaded {} access rule(s) from {}", opts.rules.rules.size(), opts.config_file.string());
  } catch (const std::exception& e) {
    spdlog::error("reload failed, keeping the previous access rules: {}", e.what());
  }
}

void Daemon::State::adopt_region_files() {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(opts.resolved_region_dir(), ec)) {
    if (entry.path().extension() != ".shmbus") continue;
    // A previous daemon killed while its clients ran left its lease on the description they
    // share. Opening the path would break it and wait for lease-break-time; the clients hand
    // that description back when they reconnect (adopt_handed_file), so wait for them.
    if (shmbus::detail::file_has_lease(entry.path())) {
      spdlog::info("{} still carries the previous daemon's file lease; waiting for its clients to hand it back",
                   entry.path().string());
      pending_adopt.emplace(entry.path(), std::chrono::steady_clock::now());
      continue;
    }
    if (!adopt_region_file(entry.path(), std::chrono::milliseconds(200))) {
      pending_adopt.emplace(entry.path(), std::chrono::steady_clock::now());
    }
  }
}

void Daemon::State::retry_pending_adoptions() {
  std::vector<std::filesystem::path> files;  // adopting one erases it from pending_adopt
  for (const auto& [file, since] : pending_adopt) files.push_back(file);
  for (const std::filesystem::path& file : files) {
    if (!std::filesystem::exists(file)) {
      pending_adopt.erase(file);
      continue;
    }
    // Nobody handed it back in time (its clients do not reconnect through shmbus::Client):
    // open the path, starting the kernel's lease-break-time countdown, and retry until then.
    if (shmbus::detail::file_has_lease(file) && std::chrono::steady_clock::now() - pending_adopt[file] < kHandBackWait) {
      continue;
    }
    if (adopt_region_file(file, std::chrono::milliseconds(0))) pending_adopt.erase(file);
  }
}

std::optional<std::filesystem::path> Daemon::State::pending_file_of(int fd) const {
  struct stat handed {};
  if (fstat(fd, &handed) != 0 || !S_ISREG(handed.st_mode)) return std::nullopt;
  for (const auto& [file, since] : pending_adopt) {
    struct stat st {};
    if (stat(file.c_str(), &st) == 0 && st.st_dev == handed.st_dev && st.st_ino == handed.st_ino) return file;
  }
  return std::nullopt;
}

std::map<std::string, TopicEntry>::iterator Daemon::State::adopt(const std::string& name, shmbus::Topic topic,
                                                                 const std::filesystem::path& file,
                                                                 uid_t fallback_owner) {
  pending_adopt.erase(file);
  struct stat st {};
  uid_t owner = stat(file.c_str(), &st) == 0 ? st.st_uid : fallback_owner;
  std::string schema = topic.config().schema;
  auto it = topics.emplace(name, TopicEntry{std::move(topic), std::move(schema), true, owner}).first;
  if (leases) leases->arm(name, it->second);
  return it;
}

bool Daemon::State::adopt_region_file(const std::filesystem::path& file, std::chrono::milliseconds lease_wait) {
  try {
    shmbus::Topic topic = shmbus::Topic::open_file(file, lease_wait);
    std::string name = topic.name();
    if (topics.count(name)) {
      spdlog::warn("region {} repeats topic '{}'; ignored", file.string(), name);
      return true;
    }
    spdlog::info("re-adopted topic '{}' from {}", name, file.string());
    adopt(name, std::move(topic), file, 0);
    return true;
  } catch (const shmbus::Error& e) {
    if (e.code() == shmbus::Errc::lease_held) {
      if (!pending_adopt.count(file)) {
        spdlog::info("cannot re-adopt {} yet: {}; retrying every sweep", file.string(), e.what());
      }
      return false;
    }
    spdlog::error("cannot re-adopt {}: {}", file.string(), e.what());
  } catch (const std::exception& e) {
    // Never delete it: it may be someone's data. The operator decides.
    spdlog::error("cannot re-adopt {}: {}", file.string(), e.what());
  }
  return true;
}

}  // namespace shmbusd
