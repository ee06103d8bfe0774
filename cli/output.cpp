#include "output.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>

namespace shmbus::cli {

std::string Table::render() const {
  std::vector<std::size_t> width;
  for (const auto& row : rows_) {
    if (width.size() < row.size()) width.resize(row.size(), 0);
    for (std::size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows_) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

std::string human_bytes(std::uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  double v = static_cast<double>(bytes);
  while (v >= 1024 && u < 4 && bytes % 1024 == 0) {
    v /= 1024;
    bytes /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.0f %s", v, units[u]);
  return buf;
}

std::string hex_preview(const void* data, std::size_t size, std::size_t max_bytes) {
  const auto* p = static_cast<const std::uint8_t*>(data);
  std::string out;
  char buf[4];
  for (std::size_t i = 0; i < std::min(size, max_bytes); ++i) {
    std::snprintf(buf, sizeof buf, "%02x", p[i]);
    out += buf;
  }
  if (size > max_bytes) out += "...";
  return out;
}

}  // namespace shmbus::cli
