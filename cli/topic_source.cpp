#include "topic_source.hpp"

#include <filesystem>

#include "shmbus/error.hpp"

namespace shmbus::cli {
namespace {

// A region file, or a topic name? Topic names may contain '/' ("camera/front"), so a slash
// alone does not make a path: an existing file, a name ending in ".shmbus" (region files
// always do; a file-backed topic "a/b" is stored as "a%b.shmbus") or an explicitly absolute
// or relative path ("/...", "./...", "../...") does. Anything else is a topic name.
bool looks_like_path(const std::string& arg) {
  std::error_code ignored;  // an unreadable or missing path is simply not an existing file
  return std::filesystem::is_regular_file(arg, ignored) || arg.ends_with(".shmbus") || arg.starts_with("/") ||
         arg.starts_with("./") || arg.starts_with("../");
}

OpenedTopic through_daemon(const std::string& name, const GlobalOptions& global, Role role) {
  std::unique_ptr<Client> client = connect(global);
  try {
    // Never creates: a tool that mistypes a name must not make a topic of it. A refusal by
    // the access rules arrives as access_denied naming the rule, before any "no such topic".
    Topic topic = client->open_existing_topic(name, role);
    return {std::move(client), std::move(topic)};
  } catch (const Error& e) {
    if (e.code() != Errc::no_such_topic) throw;
    throw Error(Errc::no_such_topic, "no topic '" + name + "' on bus '" + global.bus + "' (see: shmbus topics)");
  }
}

}  // namespace

std::unique_ptr<Client> connect(const GlobalOptions& global) {
  ClientOptions o;
  o.bus = global.bus;
  o.socket = global.socket;
  o.name = "shmbus-cli";
  o.reconnect = false;
  try {
    return std::make_unique<Client>(o);
  } catch (const Error& e) {
    // The library names every socket it tried; permission denied says what to change instead.
    if (e.code() == Errc::access_denied) throw;
    throw Error(e.code(), std::string(e.what()) + " (start it with: shmbusd --bus " + global.bus + ")");
  }
}

OpenedTopic open_topic(const std::string& arg, const GlobalOptions& global, Role role) {
  if (!looks_like_path(arg)) return through_daemon(arg, global, role);
  if (!Topic::file_is_served(arg)) return {nullptr, Topic::open_file(arg)};
  // A file a bus daemon serves (it holds a lease on it): opening it for writing would break
  // that lease and make the daemon revoke the region for everybody. Use its topic through
  // the daemon instead.
  std::string name = Topic::inspect_file(arg).name();
  try {
    return through_daemon(name, global, role);
  } catch (const Error& e) {
    throw Error(e.code(), arg + " is served by a bus daemon (it holds a file lease on it), and opening it directly "
                              "would make that daemon revoke it; reaching the daemon for topic '" + name +
                              "' failed: " + e.what() + " (give the topic name with the right --bus or --socket)");
  }
}

OpenedTopic inspect_topic(const std::string& arg, const GlobalOptions& global) {
  if (looks_like_path(arg)) return {nullptr, Topic::inspect_file(arg)};
  return through_daemon(arg, global, Role::subscriber);
}

}  // namespace shmbus::cli
