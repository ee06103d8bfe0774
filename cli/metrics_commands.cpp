// shmbus metrics [TOPIC...] [--dir DIR]: the topics' counters in the Prometheus text
// exposition format (docs/metrics.md), for node_exporter's textfile collector, a pushgateway,
// or a look. From the bus daemon by default; --dir reads a bus's region files with no daemon.
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

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

void metrics(const MetricsArgs& args, const GlobalOptions& global) {
  MetricsSource source(args.topics, args.dir, global);
  std::vector<std::string> errors;
  std::vector<TopicMetrics> topics = source.read(errors);
  std::cout << prometheus_text(topics) << std::flush;
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
