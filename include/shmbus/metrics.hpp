// shmbus metrics: the counters a topic region keeps in shared memory, per topic, publisher,
// subscriber and pool size class, and their Prometheus text exposition (docs/metrics.md lists
// every metric, its labels and meaning).
//
// The counters are written by the clients themselves, each by one writer with relaxed stores,
// so reading them takes no lock and never disturbs the data path; they are mutable shared
// memory that any client of the topic may write, so they are statistics to display, never
// facts to act on. A slot's counters start at 0 when a client registers it: Prometheus sees
// a counter reset, and the `pid` label tells the registrations apart.
//
// Thread safety: free functions over values; read_metrics() may run while the topic is in use.
#pragma once

#include <string>
#include <vector>

#include "shmbus/topic.hpp"

namespace shmbus {

// One topic's metrics at one moment.
struct TopicMetrics {
  std::string bus;    // the bus the region belongs to (its header's bus name)
  std::string topic;  // the topic's name
  TopicStats stats;   // Topic::stats(): pool use, each client slot's counters
};

// Reads `topic`'s counters now (Topic::stats() plus the bus name).
TopicMetrics read_metrics(const Topic& topic);

// The Prometheus text exposition format (version 0.0.4) of `topics`: every family once, with
// # HELP and # TYPE, metric names prefixed shmbus_, counters suffixed _total, label values
// escaped. Families with no sample (no topic) are still described. Accepted by
// `promtool check metrics`.
std::string prometheus_text(const std::vector<TopicMetrics>& topics);

// A label value as the exposition format wants it: backslash, double quote and newline
// escaped (\\, \", \n). Other bytes pass as they are (topic names are UTF-8).
std::string escape_label_value(const std::string& value);

}  // namespace shmbus
