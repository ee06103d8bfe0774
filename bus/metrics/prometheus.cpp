// The Prometheus text exposition of topic metrics (include/shmbus/metrics.hpp). Each family is
// written whole, all topics' samples together, as the format requires one block per name.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "shmbus/metrics.hpp"

namespace shmbus {

TopicMetrics read_metrics(const Topic& topic) {
  return {topic.region_info().bus_name, topic.name(), topic.stats()};
}

std::string escape_label_value(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

namespace {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Exposition {
 public:
  // Starts a family: its HELP (no newline or backslash in ours) and TYPE lines.
  void family(const char* name, const char* type, const char* help) {
    name_ = name;
    out_ += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  }
  void sample(const Labels& labels, std::uint64_t value) {
    out_ += name_;
    char sep = '{';
    for (const auto& [k, v] : labels) {
      out_ += sep + k + "=\"" + escape_label_value(v) + "\"";
      sep = ',';
    }
    if (!labels.empty()) out_ += '}';
    out_ += ' ' + std::to_string(value) + '\n';
  }
  std::string take() { return std::move(out_); }

 private:
  std::string name_;
  std::string out_;
};

Labels topic_labels(const TopicMetrics& t) { return {{"bus", t.bus}, {"topic", t.topic}}; }

Labels slot_labels(const TopicMetrics& t, const ClientSlotInfo& c) {
  Labels l = topic_labels(t);
  l.emplace_back(c.role == ClientSlotInfo::Role::publisher ? "publisher" : "subscriber", std::to_string(c.slot));
  l.emplace_back("pid", std::to_string(c.pid));
  return l;
}

Labels with(Labels l, const char* key, std::string value) {
  l.emplace_back(key, std::move(value));
  return l;
}

}  // namespace

std::string prometheus_text(const std::vector<TopicMetrics>& topics) {
  Exposition e;
  using Role = ClientSlotInfo::Role;
  // One family: its samples from every topic's slots of `role`.
  auto per_slot = [&](Role role, const std::function<void(const TopicMetrics&, const ClientSlotInfo&)>& f) {
    for (const TopicMetrics& t : topics) {
      for (const ClientSlotInfo& c : t.stats.clients) {
        if (c.role == role) f(t, c);
      }
    }
  };
  auto count = [](const TopicMetrics& t, Role role) {
    std::uint64_t n = 0;
    for (const ClientSlotInfo& c : t.stats.clients) n += c.role == role;
    return n;
  };

  e.family("shmbus_topic_published_messages_total", "counter",
           "Messages published on the topic since its region was created (its next sequence number).");
  for (const TopicMetrics& t : topics) e.sample(topic_labels(t), t.stats.published);
  e.family("shmbus_topic_publishers", "gauge", "Publisher slots registered on the topic.");
  for (const TopicMetrics& t : topics) e.sample(topic_labels(t), count(t, Role::publisher));
  e.family("shmbus_topic_subscribers", "gauge", "Subscriber slots registered on the topic.");
  for (const TopicMetrics& t : topics) e.sample(topic_labels(t), count(t, Role::subscriber));

  e.family("shmbus_publisher_published_messages_total", "counter",
           "Messages this publisher slot published since its client registered it.");
  per_slot(Role::publisher, [&](const TopicMetrics& t, const ClientSlotInfo& c) { e.sample(slot_labels(t, c), c.messages); });
  e.family("shmbus_publisher_published_bytes_total", "counter",
           "Payload bytes this publisher slot published (every segment's used bytes).");
  per_slot(Role::publisher, [&](const TopicMetrics& t, const ClientSlotInfo& c) { e.sample(slot_labels(t, c), c.counters.bytes); });
  e.family("shmbus_publisher_lost_messages_total", "counter",
           "Publishes that failed under the topic's policy, by reason: refused (fail_publish, a subscriber queue full) or timed_out (block).");
  per_slot(Role::publisher, [&](const TopicMetrics& t, const ClientSlotInfo& c) {
    e.sample(with(slot_labels(t, c), "reason", "refused"), c.counters.refused);
    e.sample(with(slot_labels(t, c), "reason", "timed_out"), c.counters.timed_out);
  });
  e.family("shmbus_publisher_loan_failures_total", "counter",
           "Loans that failed, by reason: pool_exhausted, too_many_loans, message_too_large.");
  per_slot(Role::publisher, [&](const TopicMetrics& t, const ClientSlotInfo& c) {
    e.sample(with(slot_labels(t, c), "reason", "pool_exhausted"), c.counters.loan_pool_exhausted);
    e.sample(with(slot_labels(t, c), "reason", "too_many_loans"), c.counters.loan_too_many_loans);
    e.sample(with(slot_labels(t, c), "reason", "message_too_large"), c.counters.loan_too_large);
  });

  e.family("shmbus_subscriber_taken_messages_total", "counter",
           "Messages this subscriber slot took since its client registered it.");
  per_slot(Role::subscriber, [&](const TopicMetrics& t, const ClientSlotInfo& c) { e.sample(slot_labels(t, c), c.messages); });
  e.family("shmbus_subscriber_lost_messages_total", "counter",
           "Messages this subscriber slot lost, by reason: overwritten (drop_oldest, overtaken) or malformed (failed validation when taken).");
  per_slot(Role::subscriber, [&](const TopicMetrics& t, const ClientSlotInfo& c) {
    e.sample(with(slot_labels(t, c), "reason", "overwritten"), c.lost);
    e.sample(with(slot_labels(t, c), "reason", "malformed"), c.counters.malformed);
  });
  e.family("shmbus_subscriber_backlog_messages", "gauge", "Messages published that this subscriber slot has not taken yet.");
  per_slot(Role::subscriber, [&](const TopicMetrics& t, const ClientSlotInfo& c) { e.sample(slot_labels(t, c), c.backlog); });

  auto per_class = [&](const std::function<void(const TopicMetrics&, const SizeClassUsage&, const Labels&)>& f) {
    for (const TopicMetrics& t : topics) {
      for (const SizeClassUsage& u : t.stats.classes) f(t, u, with(topic_labels(t), "size_class", std::to_string(u.chunk_size)));
    }
  };
  e.family("shmbus_pool_capacity_chunks", "gauge",
           "Chunks of the size class (size_class: usable bytes per chunk), summed over the topic's payload pools.");
  per_class([&](const TopicMetrics&, const SizeClassUsage& u, const Labels& l) { e.sample(l, u.total); });
  e.family("shmbus_pool_chunks", "gauge",
           "Chunks of the size class by state: free, queued (in the queue or history), loaned (by publishers), held (by subscribers).");
  per_class([&](const TopicMetrics&, const SizeClassUsage& u, const Labels& l) {
    e.sample(with(l, "state", "free"), u.free);
    e.sample(with(l, "state", "queued"), u.in_ring);
    e.sample(with(l, "state", "loaned"), u.loaned);
    e.sample(with(l, "state", "held"), u.held);
  });
  e.family("shmbus_pool_high_water_chunks", "gauge",
           "Most chunks of the size class one publisher's pool had in use at once (absent where all publishers share one pool).");
  per_class([&](const TopicMetrics& t, const SizeClassUsage& u, const Labels& l) {
    if (t.stats.high_water_kept) e.sample(l, u.high_water);
  });
  return e.take();
}

}  // namespace shmbus
