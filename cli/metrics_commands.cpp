// shmbus metrics [TOPIC...] [--dir DIR]: the topics' counters in the Prometheus text
// exposition format (docs/metrics.md), for node_exporter's textfile collector, a pushgateway,
// or a look. From the bus daemon by default; --dir reads a bus's region files with no daemon.
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "metrics_source.hpp"
#include "shmbus/error.hpp"

namespace shmbus::cli {

void add_top_command(CLI::App& app, const GlobalOptions& global);  // top_command.cpp

namespace {

struct MetricsArgs {
  std::vector<std::string> topics;
  std::string dir;
};

// --json: the same counters as one JSON array, a topic per element.
nlohmann::json to_json(const std::vector<TopicMetrics>& topics) {
  nlohmann::json out = nlohmann::json::array();
  for (const TopicMetrics& t : topics) {
    nlohmann::json pubs = nlohmann::json::array(), subs = nlohmann::json::array(), classes = nlohmann::json::array();
    for (const ClientSlotInfo& c : t.stats.clients) {
      const auto& n = c.counters;
      if (c.role == ClientSlotInfo::Role::publisher) {
        pubs.push_back({{"slot", c.slot}, {"pid", c.pid}, {"published", c.messages}, {"bytes", n.bytes},
                        {"refused", n.refused}, {"timed_out", n.timed_out},
                        {"loan_failures", {{"pool_exhausted", n.loan_pool_exhausted}, {"too_many_loans", n.loan_too_many_loans},
                                           {"message_too_large", n.loan_too_large}}}});
      } else {
        subs.push_back({{"slot", c.slot}, {"pid", c.pid}, {"taken", c.messages}, {"overwritten", c.lost},
                        {"malformed", n.malformed}, {"backlog", c.backlog}});
      }
    }
    for (const SizeClassUsage& u : t.stats.classes) {
      nlohmann::json cl = {{"chunk_size", u.chunk_size}, {"total", u.total}, {"free", u.free}, {"queued", u.in_ring},
                           {"loaned", u.loaned}, {"held", u.held}};
      if (t.stats.high_water_kept) cl["high_water"] = u.high_water;
      classes.push_back(std::move(cl));
    }
    out.push_back({{"bus", t.bus}, {"topic", t.topic}, {"published", t.stats.published}, {"publishers", pubs},
                   {"subscribers", subs}, {"classes", classes}});
  }
  return out;
}

void metrics(const MetricsArgs& args, const GlobalOptions& global) {
  MetricsSource source(args.topics, args.dir, global);
  std::vector<std::string> errors;
  std::vector<TopicMetrics> topics = source.read(errors);
  if (global.json) std::cout << to_json(topics).dump(2) << "\n" << std::flush;
  else std::cout << prometheus_text(topics) << std::flush;
  // Every topic that could be read is printed; the others are named, one line each.
  for (std::size_t i = 0; i + 1 < errors.size(); ++i) std::fprintf(stderr, "shmbus: %s\n", errors[i].c_str());
  if (!errors.empty()) throw Error(Errc::invalid_config, errors.back());
}

}  // namespace

void add_metrics_commands(CLI::App& app, const GlobalOptions& global) {
  auto args = std::make_shared<MetricsArgs>();
  CLI::App* cmd = app.add_subcommand("metrics", "Counters in the Prometheus text format (all topics, or those named)");
  cmd->add_option("TOPIC", args->topics, "Topic names or region file paths (default: every topic)");
  cmd->add_option("--dir", args->dir, "Read every region file of this directory, with no daemon")->type_name("DIR");
  cmd->callback([args, &global] { metrics(*args, global); });
  add_top_command(app, global);
}

}  // namespace shmbus::cli
