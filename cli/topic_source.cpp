#include "topic_source.hpp"

#include <cstdlib>
#include <filesystem>
#include <unistd.h>

#include "shmbus/error.hpp"

namespace shmbus::cli {
namespace {

bool looks_like_path(const std::string& arg) {
  return arg.find('/') != std::string::npos || arg.ends_with(".shmbus") || std::filesystem::exists(arg);
}

[[noreturn]] void need_daemon(const std::string& arg, const GlobalOptions& global) {
  throw Error(Errc::system_error, "topic '" + arg + "' is not a region file, and naming topics needs the bus daemon: no shmbusd answers at " +
                                      default_socket_path(global.bus) + " (start it with: shmbusd --bus " + global.bus +
                                      "), or pass the region file's path");
}

}  // namespace

std::string default_socket_path(const std::string& bus) {
  const char* runtime = std::getenv("XDG_RUNTIME_DIR");
  std::string dir = geteuid() == 0 || runtime == nullptr ? "/run/shmbus" : std::string(runtime) + "/shmbus";
  return dir + "/" + bus + ".sock";
}

Topic open_topic(const std::string& arg, const GlobalOptions& global) {
  if (looks_like_path(arg)) return Topic::open_file(arg);
  need_daemon(arg, global);
}

Topic inspect_topic(const std::string& arg, const GlobalOptions& global) {
  if (looks_like_path(arg)) return Topic::inspect_file(arg);
  need_daemon(arg, global);
}

}  // namespace shmbus::cli
