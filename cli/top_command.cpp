// shmbus top [TOPIC...] [--dir DIR] [--once | -n N]: a live view of the topics, refreshed each
// second like top(1): message rate, bandwidth, drops and pool use. Plain ANSI (home + clear)
// on a terminal; with --once, -n or a pipe, frames are printed one after another.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "metrics_source.hpp"
#include "output.hpp"
#include "shmbus/error.hpp"

namespace shmbus::cli {
namespace {

struct TopArgs {
  std::vector<std::string> topics;
  std::string dir;
  bool once = false;
  int frames = 0;  // 0: until interrupted
  double interval = 1.0;
};

// One slot's counters that top turns into rates, keyed by (topic, role, slot, pid): a slot a
// new client registered starts again from 0, and a vanished one drops out.
using SlotKey = std::tuple<std::string, int, std::uint32_t, pid_t>;
struct SlotCounts {
  std::uint64_t bytes = 0, drops = 0;
};

struct Sample {
  std::chrono::steady_clock::time_point at;
  std::map<std::string, std::uint64_t> published;  // per topic
  std::map<SlotKey, SlotCounts> slots;
};

Sample sample_of(const std::vector<TopicMetrics>& topics) {
  Sample s;
  s.at = std::chrono::steady_clock::now();
  for (const TopicMetrics& t : topics) {
    s.published[t.topic] = t.stats.published;
    for (const ClientSlotInfo& c : t.stats.clients) {
      const auto& n = c.counters;
      SlotCounts sc{n.bytes, c.lost + n.malformed + n.refused + n.timed_out};
      s.slots[{t.topic, static_cast<int>(c.role), c.slot, c.pid}] = sc;
    }
  }
  return s;
}

// Growth of a counter between two samples; a slot new in `now` counts from 0.
std::uint64_t growth(std::uint64_t before, std::uint64_t now) { return now >= before ? now - before : now; }

std::string rate(double per_second) {
  char buf[32];
  if (per_second >= 1e6) std::snprintf(buf, sizeof buf, "%.1fM", per_second / 1e6);
  else if (per_second >= 1e4) std::snprintf(buf, sizeof buf, "%.1fk", per_second / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0f", per_second);
  return buf;
}

// One frame: a table, or with --json one line {"topics": [...], "errors": [...]}.
// Bytes per second with a binary unit and one decimal: "62.5 KiB/s".
std::string bandwidth(double per_second) {
  const char* units[] = {"B", "KiB", "MiB", "GiB"};
  int u = 0;
  while (per_second >= 1024 && u < 3) {
    per_second /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s/s" : "%.1f %s/s", per_second, units[u]);
  return buf;
}

std::string frame(const std::vector<TopicMetrics>& topics, const Sample& before, const Sample& now,
                  const std::vector<std::string>& errors, bool json) {
  const double seconds = std::chrono::duration<double>(now.at - before.at).count();
  Table table({"TOPIC", "PUBS", "SUBS", "MSG/S", "BYTES/S", "DROPS/S", "DROPS", "POOL USED", "HIGH"});
  nlohmann::json rows = nlohmann::json::array();
  for (const TopicMetrics& t : topics) {
    std::size_t pubs = 0, subs = 0;
    std::uint64_t bytes = 0, drops_delta = 0, drops_total = 0;
    for (const ClientSlotInfo& c : t.stats.clients) {
      (c.role == ClientSlotInfo::Role::publisher ? pubs : subs)++;
      const SlotCounts& n = now.slots.at({t.topic, static_cast<int>(c.role), c.slot, c.pid});
      auto it = before.slots.find({t.topic, static_cast<int>(c.role), c.slot, c.pid});
      const SlotCounts b = it == before.slots.end() ? SlotCounts{} : it->second;
      bytes += growth(b.bytes, n.bytes);
      drops_delta += growth(b.drops, n.drops);
      drops_total += n.drops;
    }
    auto pb = before.published.find(t.topic);
    std::uint64_t msgs = pb == before.published.end() ? 0 : growth(pb->second, t.stats.published);
    std::uint64_t used = 0, total = 0, high = 0;
    for (const SizeClassUsage& u : t.stats.classes) {
      used += u.total - std::min(u.total, u.free);
      total += u.total;
      high += u.high_water;
    }
    std::string pool = std::to_string(used) + "/" + std::to_string(total);
    if (total != 0) pool += " (" + std::to_string(used * 100 / total) + "%)";
    rows.push_back({{"topic", t.topic}, {"publishers", pubs}, {"subscribers", subs}, {"rate_hz", msgs / seconds},
                    {"bytes_per_s", bytes / seconds}, {"drops_per_s", drops_delta / seconds}, {"drops", drops_total},
                    {"pool_used", used}, {"pool_total", total}});
    if (t.stats.high_water_kept) rows.back()["high_water"] = high;
    table.add({t.topic, std::to_string(pubs), std::to_string(subs), rate(msgs / seconds), bandwidth(bytes / seconds),
               rate(drops_delta / seconds), std::to_string(drops_total), pool,
               t.stats.high_water_kept ? std::to_string(high) : "-"});
  }
  if (json) return nlohmann::json({{"topics", rows}, {"errors", errors}}).dump() + "\n";
  std::ostringstream o;
  o << table.render();
  for (const std::string& e : errors) o << "! " << e << "\n";
  return o.str();
}

void top(const TopArgs& args, const GlobalOptions& global) {
  if (args.interval <= 0 || args.interval > 3600) throw Error(Errc::invalid_config, "--interval must be in (0, 3600] seconds");
  MetricsSource source(args.topics, args.dir, global);
  const int frames = args.once ? 1 : args.frames;
  const bool ansi = frames == 0 && !global.json && isatty(STDOUT_FILENO);
  const auto interval = std::chrono::duration<double>(args.interval);
  std::vector<std::string> errors;
  Sample before = sample_of(source.read(errors));
  for (int n = 0; frames == 0 || n < frames; ++n) {
    std::this_thread::sleep_for(interval);
    errors.clear();
    std::vector<TopicMetrics> topics = source.read(errors);
    Sample now = sample_of(topics);
    std::string text = frame(topics, before, now, errors, global.json);
    if (ansi) std::cout << "\x1b[H\x1b[2J";
    else if (n != 0 && !global.json) std::cout << "\n";
    std::cout << text << std::flush;
    before = std::move(now);
  }
}

}  // namespace

void add_top_command(CLI::App& app, const GlobalOptions& global) {
  auto args = std::make_shared<TopArgs>();
  CLI::App* cmd = app.add_subcommand("top", "Live view of the topics: rates, bandwidth, drops, pool use (each second)");
  cmd->add_option("TOPIC", args->topics, "Topic names or region file paths (default: every topic)");
  cmd->add_option("--dir", args->dir, "Read every region file of this directory, with no daemon")->type_name("DIR");
  cmd->add_flag("--once", args->once, "Print one frame (rates over one interval) and exit");
  cmd->add_option("-n,--frames", args->frames, "Print N frames and exit (0: until interrupted)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--interval", args->interval, "Seconds between frames (default 1)")->type_name("SECONDS");
  cmd->callback([args, &global] { top(*args, global); });
}

}  // namespace shmbus::cli
