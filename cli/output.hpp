// Human-readable tables for the CLI's default output.
#pragma once

#include <string>
#include <vector>

namespace shmbus::cli {

class Table {
 public:
  explicit Table(std::vector<std::string> headings) : rows_{std::move(headings)} {}
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  // Left-aligned columns separated by two spaces, headings first.
  std::string render() const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

// "4096", "64 KiB", "8 MiB": sizes as people read them.
std::string human_bytes(std::uint64_t bytes);
std::string hex_preview(const void* data, std::size_t size, std::size_t max_bytes = 32);

}  // namespace shmbus::cli
