// docs/usage.md's error table ("| `Errc` | when |") has a row for every shmbus::Errc in
// include/shmbus/error.hpp, one each, and no row for a code that does not exist.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

namespace {

std::string read(const std::string& relative) {
  std::ifstream in(std::string(SHMBUS_SOURCE_DIR) + "/" + relative);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The enumerators of `enum class Errc { ... };`, without `ok`.
std::set<std::string> declared_codes() {
  std::string header = read("include/shmbus/error.hpp");
  std::size_t begin = header.find("enum class Errc {");
  std::size_t end = header.find("};", begin);
  if (begin == std::string::npos || end == std::string::npos) return {};
  std::string body = header.substr(begin, end - begin);
  std::set<std::string> codes;
  std::istringstream lines(body.substr(body.find('{') + 1));
  std::string line;
  std::regex enumerator(R"(^\s*([a-z_]+)\s*(=\s*\d+)?\s*(,|//|$))");
  for (std::smatch m; std::getline(lines, line);) {
    if (std::regex_search(line, m, enumerator) && m[1] != "ok") codes.insert(m[1]);
  }
  return codes;
}

// The codes named (in backquotes) in the first column of the table under "| `Errc` | when |".
std::multiset<std::string> documented_codes() {
  std::istringstream lines(read("docs/usage.md"));
  std::string line;
  std::multiset<std::string> codes;
  bool in_table = false;
  std::regex code("`([a-z_]+)`");
  while (std::getline(lines, line)) {
    if (line.starts_with("| `Errc` |")) {
      in_table = true;
      continue;
    }
    if (!in_table) continue;
    if (!line.starts_with("|")) break;
    std::string first = line.substr(1, line.find('|', 1) - 1);
    for (std::sregex_iterator it(first.begin(), first.end(), code), e; it != e; ++it) codes.insert((*it)[1]);
  }
  return codes;
}

TEST(DocsErrorTable, UsageMdHasARowForEveryErrc) {
  std::set<std::string> declared = declared_codes();
  ASSERT_GT(declared.size(), 10u) << "could not read enum class Errc from include/shmbus/error.hpp";
  std::multiset<std::string> documented = documented_codes();
  ASSERT_FALSE(documented.empty()) << "docs/usage.md has no table headed \"| `Errc` | when |\"";
  for (const std::string& c : declared) {
    EXPECT_TRUE(documented.contains(c)) << "docs/usage.md's error table has no row for Errc::" << c
                                        << " (declared in include/shmbus/error.hpp): add \"| `" << c << "` | ... |\"";
  }
  for (const std::string& c : std::set<std::string>(documented.begin(), documented.end())) {
    EXPECT_TRUE(declared.contains(c)) << "docs/usage.md's error table has a row for `" << c
                                      << "`, which include/shmbus/error.hpp does not declare";
    EXPECT_EQ(documented.count(c), 1u) << "docs/usage.md's error table has " << documented.count(c) << " rows for `" << c << "`";
  }
}

}  // namespace
