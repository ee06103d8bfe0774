#include "control/wire.hpp"

namespace shmbus::wire {

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

const char* role_name(control::Role role) {
  return role == control::Role::PUBLISHER ? "publish" : "subscribe";
}

void to_wire(const TopicConfig& c, control::TopicConfig::Builder out) {
  out.setName(c.name);
  auto classes = out.initSizeClasses(static_cast<unsigned>(c.size_classes.size()));
  for (unsigned i = 0; i < c.size_classes.size(); ++i) {
    classes[i].setChunkSize(c.size_classes[i].chunk_size);
    classes[i].setCount(c.size_classes[i].count);
  }
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

TopicConfig from_wire(control::TopicConfig::Reader in) {
  TopicConfig c;
  c.name = in.getName();
  if (in.getSizeClasses().size() != 0) {
    c.size_classes.clear();
    for (auto sc : in.getSizeClasses()) c.size_classes.push_back({sc.getChunkSize(), sc.getCount()});
  }
  if (in.getQueueDepth()) c.queue_depth = in.getQueueDepth();
  c.history_depth = in.getHistoryDepth();
  c.policy = from_wire(in.getPolicy(), c.policy);
  if (in.getBlockTimeoutNs()) c.block_timeout = std::chrono::nanoseconds(in.getBlockTimeoutNs());
  if (in.getMaxPublishers()) c.max_publishers = in.getMaxPublishers();
  if (in.getMaxSubscribers()) c.max_subscribers = in.getMaxSubscribers();
  if (in.getMaxLoansPerPublisher()) c.max_loans_per_publisher = in.getMaxLoansPerPublisher();
  if (in.getMaxHeldPerSubscriber()) c.max_held_per_subscriber = in.getMaxHeldPerSubscriber();
  if (in.getMaxSegments()) c.max_segments = in.getMaxSegments();
  c.max_message_size = in.getMaxMessageSize();
  c.type_id = in.getTypeId();
  c.stamp_publish_time = in.getStampPublishTime();
  return c;
}

}  // namespace shmbus::wire
