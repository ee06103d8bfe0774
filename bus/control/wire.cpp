#include "control/wire.hpp"

#include <capnp/schema.h>

namespace shmbus::wire {

void to_wire(const std::vector<SizeClass>& classes, capnp::List<control::SizeClass>::Builder out) {
  for (unsigned i = 0; i < classes.size(); ++i) {
    out[i].setChunkSize(classes[i].chunk_size);
    out[i].setCount(classes[i].count);
  }
}

void merge_classes(capnp::List<control::SizeClass>::Reader in, std::vector<SizeClass>& out) {
  if (in.size() == 0) return;  // unset: keep the default
  out.clear();
  for (auto c : in) out.push_back({c.getChunkSize(), c.getCount()});
}

kj::ArrayPtr<const capnp::byte> data_of(const std::string& bytes) {
  return kj::arrayPtr(reinterpret_cast<const capnp::byte*>(bytes.data()), bytes.size());
}
std::string bytes_of(capnp::Data::Reader data) { return std::string(reinterpret_cast<const char*>(data.begin()), data.size()); }

control::Policy to_wire(SlowSubscriberPolicy p) {
  switch (p) {
    case SlowSubscriberPolicy::block: return control::Policy::BLOCK;
    case SlowSubscriberPolicy::drop_oldest: return control::Policy::DROP_OLDEST;
    case SlowSubscriberPolicy::fail_publish: return control::Policy::FAIL_PUBLISH;
  }
  return control::Policy::UNSET;
}

SlowSubscriberPolicy from_wire(control::Policy p, SlowSubscriberPolicy fallback) {
  switch (p) {
    case control::Policy::BLOCK: return SlowSubscriberPolicy::block;
    case control::Policy::DROP_OLDEST: return SlowSubscriberPolicy::drop_oldest;
    case control::Policy::FAIL_PUBLISH: return SlowSubscriberPolicy::fail_publish;
    default: return fallback;
  }
}

void to_wire(const TopicConfig& c, control::TopicConfig::Builder out) {
  out.setName(c.name);
  to_wire(c.size_classes, out.initSizeClasses(static_cast<unsigned>(c.size_classes.size())));
  out.setQueueDepth(c.queue_depth);
  out.setHistoryDepth(c.history_depth);
  out.setPolicy(to_wire(c.policy));
  out.setBlockTimeoutNs(static_cast<std::uint64_t>(c.block_timeout.count()));
  out.setMaxPublishers(c.max_publishers);
  out.setMaxSubscribers(c.max_subscribers);
  out.setMaxLoansPerPublisher(c.max_loans_per_publisher);
  out.setMaxHeldPerSubscriber(c.max_held_per_subscriber);
  out.setMaxSegments(c.max_segments);
  out.setMaxMessageSize(c.max_message_size);
  out.setTypeId(c.type_id);
  out.setStampPublishTime(c.stamp_publish_time);
}

TopicConfig merge_request(TopicConfig c, control::TopicConfig::Reader r) {
  c.name = r.getName();
  merge_classes(r.getSizeClasses(), c.size_classes);
  if (r.getQueueDepth()) c.queue_depth = r.getQueueDepth();
  if (r.getHistoryDepth()) c.history_depth = r.getHistoryDepth();
  c.policy = from_wire(r.getPolicy(), c.policy);
  if (r.getBlockTimeoutNs()) c.block_timeout = std::chrono::nanoseconds(r.getBlockTimeoutNs());
  if (r.getMaxPublishers()) c.max_publishers = r.getMaxPublishers();
  if (r.getMaxSubscribers()) c.max_subscribers = r.getMaxSubscribers();
  if (r.getMaxLoansPerPublisher()) c.max_loans_per_publisher = r.getMaxLoansPerPublisher();
  if (r.getMaxHeldPerSubscriber()) c.max_held_per_subscriber = r.getMaxHeldPerSubscriber();
  if (r.getMaxSegments()) c.max_segments = r.getMaxSegments();
  if (r.getMaxMessageSize()) c.max_message_size = r.getMaxMessageSize();
  if (r.getTypeId()) c.type_id = r.getTypeId();
  if (r.getStampPublishTime()) c.stamp_publish_time = true;
  return c;
}

// TopicConfig's defaults for the fields a reply may carry as 0 (history, message size, type,
// stamping) are 0 / false themselves, so merging over them reads a reply exactly.
TopicConfig from_wire(control::TopicConfig::Reader in) { return merge_request(TopicConfig{}, in); }

control::Role to_wire(Role r) { return r == Role::publisher ? control::Role::PUBLISHER : control::Role::SUBSCRIBER; }
Role from_wire(control::Role r) { return r == control::Role::PUBLISHER ? Role::publisher : Role::subscriber; }

const char* role_name(control::Role role) { return role == control::Role::PUBLISHER ? "publish" : "subscribe"; }

void to_wire(const SlotRef& ref, control::SlotRef::Builder out) {
  out.setTopic(ref.topic);
  out.setRole(to_wire(ref.role));
  out.setSlot(ref.slot);
  out.setGeneration(ref.generation);
}

SlotRef from_wire(control::SlotRef::Reader in) {
  return {in.getTopic(), from_wire(in.getRole()), in.getSlot(), in.getGeneration()};
}

void to_wire(const TopicListing& l, control::TopicInfo::Builder o) {
  const auto backing = l.anonymous ? control::Backing::ANONYMOUS : control::Backing::FILE;
  to_wire(l.config, o.initConfig());
  o.getConfig().setBacking(backing);
  o.setTypeSchema(data_of(l.config.schema));
  o.setBacking(backing);
  o.setPath(l.path.string());
  o.setRegionSize(l.region_size);
  o.setPublished(l.published);
  auto classes = o.initClasses(static_cast<unsigned>(l.classes.size()));
  for (unsigned i = 0; i < l.classes.size(); ++i) {
    const SizeClassUsage& u = l.classes[i];
    classes[i].setChunkSize(u.chunk_size);
    classes[i].setTotal(u.total);
    classes[i].setFree(u.free);
    classes[i].setInRing(u.in_ring);
    classes[i].setLoaned(u.loaned);
    classes[i].setHeld(u.held);
  }
  auto slots = o.initSlots(static_cast<unsigned>(l.slots.size()));
  for (unsigned i = 0; i < l.slots.size(); ++i) {
    const SlotListing& s = l.slots[i];
    slots[i].setRole(to_wire(s.role));
    slots[i].setSlot(s.slot);
    slots[i].setPid(s.pid);
    slots[i].setMessages(s.messages);
    slots[i].setLost(s.lost);
    slots[i].setBacklog(s.backlog);
    slots[i].setChunksHeld(s.chunks_held);
    slots[i].setClientId(s.client_id);
  }
  o.setCreatorUid(l.creator_uid);
  o.setAdopted(l.adopted);
  o.setRevoked(l.revoked);
  o.setLeased(l.leased);
}

TopicListing from_wire(control::TopicInfo::Reader t) {
  TopicListing l;
  l.config = from_wire(t.getConfig());
  l.config.schema = bytes_of(t.getTypeSchema());
  l.anonymous = t.getBacking() != control::Backing::FILE;
  l.path = std::string(t.getPath());
  l.region_size = t.getRegionSize();
  l.published = t.getPublished();
  for (auto c : t.getClasses()) {
    l.classes.push_back({c.getChunkSize(), c.getTotal(), c.getFree(), c.getInRing(), c.getLoaned(), c.getHeld()});
  }
  for (auto s : t.getSlots()) {
    l.slots.push_back({from_wire(s.getRole()), s.getSlot(), s.getPid(), s.getMessages(), s.getLost(), s.getBacklog(),
                       s.getChunksHeld(), s.getClientId()});
  }
  l.creator_uid = t.getCreatorUid();
  l.adopted = t.getAdopted();
  l.revoked = t.getRevoked();
  l.leased = t.getLeased();
  return l;
}

void to_wire(const ClientListing& c, std::span<const SlotRef> registrations, control::ClientInfo::Builder o) {
  o.setId(c.id);
  o.setPid(c.pid);
  o.setUid(c.uid);
  o.setGid(c.gid);
  o.setName(c.name);
  o.setConnectedForMs(c.connected_ms);
  auto regs = o.initRegistrations(static_cast<unsigned>(registrations.size()));
  for (unsigned i = 0; i < registrations.size(); ++i) to_wire(registrations[i], regs[i]);
}

ClientListing from_wire(control::ClientInfo::Reader c) {
  ClientListing l{c.getId(), c.getPid(), c.getUid(), c.getGid(), c.getName(), c.getConnectedForMs(), {}};
  for (auto r : c.getRegistrations()) l.registrations.push_back({r.getTopic(), from_wire(r.getRole()), r.getSlot()});
  return l;
}

void to_wire(const BusStatusInfo& s, control::BusStatus::Builder o) {
  o.setBusName(s.bus_name);
  o.setDaemonPid(s.daemon_pid);
  o.setDaemonUid(s.daemon_uid);
  o.setProtocolVersion(s.protocol_version);
  o.setEpoch(s.epoch);
  o.setUptimeMs(s.uptime_ms);
  o.setSocketPath(s.socket_path);
  o.setRegionDir(s.region_dir);
  o.setTopics(s.topics);
  o.setClients(s.clients);
  o.setRulesSource(s.rules_source);
}

BusStatusInfo from_wire(control::BusStatus::Reader s) {
  BusStatusInfo info;
  info.bus_name = s.getBusName();
  info.daemon_pid = s.getDaemonPid();
  info.daemon_uid = s.getDaemonUid();
  info.protocol_version = s.getProtocolVersion();
  info.epoch = s.getEpoch();
  info.uptime_ms = s.getUptimeMs();
  info.topics = s.getTopics();
  info.clients = s.getClients();
  info.socket_path = s.getSocketPath();
  info.region_dir = s.getRegionDir();
  info.rules_source = s.getRulesSource();
  return info;
}

const char* refusal_name(control::RefusalCode code) {
  // The schema's own enumerant names, so the text form cannot drift from control.capnp.
  auto enumerants = capnp::Schema::from<control::RefusalCode>().getEnumerants();
  auto index = static_cast<unsigned>(code);
  return index < enumerants.size() ? enumerants[index].getProto().getName().cStr() : "unspecified";
}

kj::Exception refusal(control::RefusalCode code, std::string_view message) {
  return kj::Exception(kj::Exception::Type::FAILED, __FILE__, __LINE__,
                       kj::str("[", refusal_name(code), "] ", kj::StringPtr(message.data(), message.size())));
}

Refusal read_refusal(std::string_view text) {
  // KJ prefixes an exception that crossed the connection with this.
  constexpr std::string_view kRemote = "remote exception: ";
  if (text.starts_with(kRemote)) text.remove_prefix(kRemote.size());
  Refusal r;
  r.message = std::string(text);
  if (!text.starts_with('[')) return r;
  const std::size_t close = text.find("] ");
  if (close == std::string_view::npos) return r;
  const std::string name(text.substr(1, close - 1));
  KJ_IF_MAYBE (e, capnp::Schema::from<control::RefusalCode>().findEnumerantByName(name)) {
    r.code = static_cast<control::RefusalCode>(e->getOrdinal());
    r.message = std::string(text.substr(close + 2));
  }
  return r;
}

Errc to_errc(control::RefusalCode code) {
  switch (code) {
    case control::RefusalCode::ACCESS_DENIED: return Errc::access_denied;
    case control::RefusalCode::NO_SUCH_TOPIC: return Errc::no_such_topic;
    case control::RefusalCode::EXISTS_WITH_OTHER_CONFIG: return Errc::type_mismatch;
    case control::RefusalCode::RATE_LIMITED: return Errc::rate_limited;
    case control::RefusalCode::UNSPECIFIED:
    case control::RefusalCode::BAD_REQUEST:
    case control::RefusalCode::INVALID_CONFIG:
    case control::RefusalCode::UNSUPPORTED_VERSION: return Errc::invalid_config;
  }
  return Errc::invalid_config;
}

}  // namespace shmbus::wire
