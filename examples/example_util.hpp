// Small helpers shared by the examples: clock, command-line flags, opening a file-backed topic
// or service that another process is creating, waiting for a subscriber or a server, latency
// statistics, a checksum.
// Nothing here is part of the shmbus API.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <time.h>
#include <vector>

#include "shmbus/shmbus.hpp"

namespace examples {

using namespace std::chrono_literals;

// CLOCK_MONOTONIC in nanoseconds: the clock shmbus stamps messages with, and the same in
// every process of the machine.
inline std::uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

// `--name value` from the command line, or `fallback`.
inline std::string flag(int argc, char** argv, std::string_view name, std::string fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == name) return argv[i + 1];
  }
  return fallback;
}
inline std::uint64_t flag_u64(int argc, char** argv, std::string_view name, std::uint64_t fallback) {
  std::string v = flag(argc, argv, name, "");
  return v.empty() ? fallback : std::strtoull(v.c_str(), nullptr, 10);
}
inline bool has_flag(int argc, char** argv, std::string_view name) {
  for (int i = 1; i < argc; ++i) {
    if (argv[i] == name) return true;
  }
  return false;
}

// The directory holding the examples' file-backed topics (tmpfs, so it is plain RAM).
inline std::filesystem::path bus_directory(int argc, char** argv) {
  return flag(argc, argv, "--dir", "/dev/shm/shmbus-examples");
}

// Opens a file-backed topic that another process creates, retrying until the file exists and
// is completely initialised, or `timeout` passes (then the last error is thrown).
inline shmbus::Topic open_topic_file(const std::filesystem::path& path, std::chrono::nanoseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    try {
      return shmbus::Topic::open_file(path);
    } catch (const shmbus::Error&) {
      // Absent (system_error), still being created (not_a_region, region_corrupt), ...
      if (std::chrono::steady_clock::now() >= deadline) throw;
    }
    std::this_thread::sleep_for(20ms);
  }
}

// Waits until at least `n` subscribers are registered on the topic, so that none of the
// messages that follow is published before anyone listens. False on timeout.
inline bool wait_for_subscribers(const shmbus::Topic& topic, std::size_t n, std::chrono::nanoseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const shmbus::TopicStats stats = topic.stats();
    auto subscribers = std::count_if(stats.clients.begin(), stats.clients.end(), [](const auto& c) {
      return c.role == shmbus::ClientSlotInfo::Role::subscriber;
    });
    if (static_cast<std::size_t>(subscribers) >= n) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
}

// The file-backed service `config.name` in `dir`: opened when another server created it
// already, else created with `config` (the first server to start creates it).
inline shmbus::Service open_or_create_service_files(const std::filesystem::path& dir, const shmbus::ServiceConfig& config) {
  try {
    return shmbus::Service::open_files(dir, config.name);
  } catch (const shmbus::Error&) {
    shmbus::RegionOptions where;
    where.backing = shmbus::RegionOptions::Backing::file;
    where.directory = dir;
    return shmbus::Service::create(config, where);
  }
}

// Opens the file-backed service `name` in `dir` that a server process creates, retrying until
// it exists and a server registered, or `timeout` passes (then nullopt).
inline std::optional<shmbus::Service> wait_for_server(const std::filesystem::path& dir, const std::string& name,
                                                      std::chrono::nanoseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::optional<shmbus::Service> svc;
  for (;;) {
    try {
      if (!svc) svc = shmbus::Service::open_files(dir, name);
    } catch (const shmbus::Error&) {
      // Not created yet, or still being created.
    }
    if (svc && !svc->servers().empty()) return svc;
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(50ms);
  }
}

// True when `p` lies inside this process's mapping of the topic's payload (the publisher's
// pool, or the region file): the reader sees the publisher's bytes where they were written,
// not a copy.
inline bool in_mapping(const shmbus::Topic& topic, const void* p) { return topic.locate_payload(p).has_value(); }

// 64-bit FNV-1a over 8-byte words (a tail shorter than a word is mixed in byte by byte).
inline std::uint64_t checksum(std::span<const std::uint8_t> bytes) {
  std::uint64_t h = 0xcbf29ce484222325u;
  std::size_t i = 0;
  for (; i + 8 <= bytes.size(); i += 8) {
    std::uint64_t w;
    std::memcpy(&w, bytes.data() + i, 8);
    h = (h ^ w) * 0x100000001b3u;
  }
  for (; i < bytes.size(); ++i) h = (h ^ bytes[i]) * 0x100000001b3u;
  return h;
}

// Latency samples in nanoseconds, summarised as min / median / p99 / max.
class LatencyStats {
 public:
  void add(std::uint64_t ns) { samples_.push_back(ns); }
  std::size_t count() const { return samples_.size(); }
  void print(const char* label) const {
    if (samples_.empty()) {
      std::printf("%s: no samples\n", label);
      return;
    }
    std::vector<std::uint64_t> s = samples_;
    std::sort(s.begin(), s.end());
    auto us = [](std::uint64_t ns) { return static_cast<double>(ns) / 1000.0; };
    std::printf("%s: %zu messages, latency min %.1f us, median %.1f us, p99 %.1f us, max %.1f us\n", label,
                s.size(), us(s.front()), us(s[s.size() / 2]), us(s[(s.size() * 99 + 99) / 100 - 1]), us(s.back()));
  }

 private:
  std::vector<std::uint64_t> samples_;
};

}  // namespace examples
